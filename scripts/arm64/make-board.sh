#!/usr/bin/env bash
# A "board view" of the arm64 root for qemu-user: `scripts/arm64/make-board.sh ROOT DEST pi4|pi5`
# makes DEST with symlinks to ROOT's bin, etc, lib, sbin and usr, plus its own proc/cpuinfo and
# sys/devices/system/cpu/ describing a Raspberry Pi 4 (4 x Cortex-A72, 1.5 GHz) or 5
# (4 x Cortex-A76, 2.4 GHz), as their kernels show them.
#
# Why: qemu-user passes the host's /proc/cpuinfo and /sys through, so an aarch64 program sees
# an x86 CPU list. LiteRT's CPU detection (pytorch/cpuinfo, used by XNNPACK) finds no ARM core
# in it and crashes (SIGSEGV while creating the interpreter). `qemu-aarch64 -L DEST` looks up
# every absolute path under DEST first, file by file, so these files stand in for the host's
# while the program runs; the instruction set comes from `-cpu cortex-a72|cortex-a76`.
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 ROOT DEST pi4|pi5" >&2; exit 2; }
ROOT=$(cd "$1" && pwd)
DEST=$2
BOARD=$3

case $BOARD in
  pi4) MODEL="Raspberry Pi 4 Model B Rev 1.5"; HARDWARE=BCM2835; PART=0xd08; VARIANT=0x0; REVISION=3
       FEATURES="fp asimd evtstrm crc32 cpuid"; MAX_KHZ=1500000; MIN_KHZ=600000
       L1D=32K; L1I=48K; L2=1024K; L2_SHARED=0-3; L3= ;;
  pi5) MODEL="Raspberry Pi 5 Model B Rev 1.0"; HARDWARE=BCM2712; PART=0xd0b; VARIANT=0x4; REVISION=1
       FEATURES="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
       MAX_KHZ=2400000; MIN_KHZ=1500000
       L1D=64K; L1I=64K; L2=512K; L2_SHARED= ; L3=2048K ;;
  *) echo "$0: unknown board '$BOARD' (expected pi4 or pi5)" >&2; exit 2 ;;
esac

tmp=$DEST.tmp.$$
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$tmp"
# Only what the dynamic loader and Python look up by absolute path (/lib/ld-linux-aarch64.so.1,
# /usr/lib/aarch64-linux-gnu/..., /etc/ld.so.cache): /dev, /tmp, /home and the rest stay
# the host's, so the program reads and writes real files where it is told to.
for name in bin etc lib sbin usr; do
  [ -e "$ROOT/$name" ] && ln -s "$ROOT/$name" "$tmp/$name"
done

mkdir -p "$tmp/proc"
{
  for n in 0 1 2 3; do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$n" "$FEATURES"
    printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$VARIANT" "$PART" "$REVISION"
  done
  printf 'Hardware\t: %s\nRevision\t: 000000\nModel\t\t: %s\n' "$HARDWARE" "$MODEL"
} >"$tmp/proc/cpuinfo"

cpu=$tmp/sys/devices/system/cpu
mkdir -p "$cpu"
echo 3 >"$cpu/kernel_max"
for f in possible present online; do echo 0-3 >"$cpu/$f"; done
cache() {  # cache DIR LEVEL SIZE TYPE SHARED
  mkdir -p "$1"
  echo "$2" >"$1/level"; echo "$3" >"$1/size"; echo "$4" >"$1/type"; echo "$5" >"$1/shared_cpu_list"
}
for n in 0 1 2 3; do
  d=$cpu/cpu$n
  mkdir -p "$d/cpufreq" "$d/topology"
  echo "$MAX_KHZ" >"$d/cpufreq/cpuinfo_max_freq"
  echo "$MIN_KHZ" >"$d/cpufreq/cpuinfo_min_freq"
  echo 0 >"$d/topology/physical_package_id"
  echo "$n" >"$d/topology/core_id"
  echo "$n" >"$d/topology/thread_siblings_list"
  for f in cluster_cpus_list core_siblings_list package_cpus_list; do echo 0-3 >"$d/topology/$f"; done
  cache "$d/cache/index0" 1 "$L1D" Data "$n"
  cache "$d/cache/index1" 1 "$L1I" Instruction "$n"
  cache "$d/cache/index2" 2 "$L2" Unified "${L2_SHARED:-$n}"
  [ -z "$L3" ] || cache "$d/cache/index3" 3 "$L3" Unified 0-3
done

rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
