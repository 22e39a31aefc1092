#!/usr/bin/env bash
# Builds the C front end's test programs (csrc/tests/) in the configurations CI checks.
#
#   scripts/check-c.sh build KIND OUTDIR   build OUTDIR/golden_driver (front end) and
#                                          OUTDIR/dense_driver (int8 network) for KIND:
#       native   gcc -O3, the x86 reference the cross builds are compared with
#       asan     clang -fsanitize=address,undefined (any finding aborts)
#       aarch64  aarch64-linux-gnu-gcc -mcpu=cortex-a72           (Pi 4, 64-bit)
#       aarch64-a76  aarch64-linux-gnu-gcc -mcpu=cortex-a76       (Pi 5: dot-product NEON)
#       armhf    arm-linux-gnueabihf-gcc -mcpu=cortex-a7 -mfpu=neon-vfpv4 -mfloat-abi=hard
#                                                                 (Pi 2/3, 32-bit, NEON)
#   scripts/check-c.sh fuzz OUTDIR SECONDS [TARGET]  build a libFuzzer target (frontend,
#       the default, dense, or stream) with clang -fsanitize=fuzzer,address,undefined and run it
#       for SECONDS; exit 1 on a finding
#   scripts/check-c.sh runner KIND         print the command prefix that runs a KIND program
#                                          (qemu-user with the cross sysroot for ARM)
#
# tests/test_frontend_c.py drives all of this with golden inputs written from Python and
# compares the outputs with edge.reference and with the native build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CSRC=$ROOT/csrc
SOURCES=("$CSRC"/ad_*.c)
WARN=(-Wall -Wextra -Werror -Wno-unused-parameter)

die() { echo "check-c: $*" >&2; exit 2; }

build() {
  local kind=$1 out=$2
  mkdir -p "$out"
  local cc flags
  case $kind in
    native)  cc=gcc;   flags=(-O3 -std=c11 -ffp-contract=off) ;;
    asan)    cc=clang; flags=(-O1 -g -std=c11 -fno-omit-frame-pointer
                              -fsanitize=address,undefined -fno-sanitize-recover=all) ;;
    aarch64) cc=aarch64-linux-gnu-gcc;   flags=(-O3 -std=c11 -ffp-contract=off -mcpu=cortex-a72) ;;
    aarch64-a76) cc=aarch64-linux-gnu-gcc; flags=(-O3 -std=c11 -ffp-contract=off -mcpu=cortex-a76) ;;
    armhf)   cc=arm-linux-gnueabihf-gcc; flags=(-O3 -std=c11 -ffp-contract=off -mcpu=cortex-a7
                                                -mfpu=neon-vfpv4 -mfloat-abi=hard) ;;
    *) die "unknown build kind '$kind' (native, asan, aarch64, aarch64-a76, armhf)" ;;
  esac
  command -v "$cc" >/dev/null || die "$cc not found (scripts/setup.sh installs it)"
  "$cc" "${flags[@]}" "${WARN[@]}" -I"$CSRC" "${SOURCES[@]}" "$CSRC/tests/dense_driver.c" \
    -lm -o "$out/dense_driver"
  "$cc" "${flags[@]}" "${WARN[@]}" -I"$CSRC" "${SOURCES[@]}" "$CSRC/tests/golden_driver.c" \
    -lm -o "$out/golden_driver"
  echo "$out/golden_driver"
}

runner() {
  case $1 in
    native|asan) echo "" ;;
    aarch64) echo "qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu" ;;
    aarch64-a76) echo "qemu-aarch64 -cpu cortex-a76 -L /usr/aarch64-linux-gnu" ;;
    armhf)   echo "qemu-arm -cpu cortex-a7 -L /usr/arm-linux-gnueabihf" ;;
    *) die "unknown build kind '$1'" ;;
  esac
}

fuzz() {
  local out=$1 seconds=$2 target=${3:-frontend}
  case $target in frontend|dense|stream) ;; *) die "unknown fuzz target '$target' (frontend, dense, stream)" ;; esac
  command -v clang >/dev/null || die "clang not found (scripts/setup.sh installs it)"
  mkdir -p "$out/corpus-$target"
  clang -O1 -g -std=c11 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=all "${WARN[@]}" -I"$CSRC" "${SOURCES[@]}" \
    "$CSRC/tests/fuzz_$target.c" -lm -o "$out/fuzz_$target"
  # -max_len: enough bytes for the header and a few frames of raw samples (they are cycled
  # to the chosen stream length); fixed seed so a CI finding reproduces.
  (cd "$out" && "./fuzz_$target" -max_total_time="$seconds" -max_len=16384 -seed=1 \
      -print_final_stats=1 -artifact_prefix="$out/" "corpus-$target")
}

case ${1:-} in
  build)  [ $# -eq 3 ] || die "usage: check-c.sh build KIND OUTDIR"; build "$2" "$3" ;;
  fuzz)   [ $# -eq 3 ] || [ $# -eq 4 ] || die "usage: check-c.sh fuzz OUTDIR SECONDS [TARGET]"
          fuzz "$2" "$3" "${4:-frontend}" ;;
  runner) [ $# -eq 2 ] || die "usage: check-c.sh runner KIND"; runner "$2" ;;
  *) die "usage: check-c.sh build KIND OUTDIR | fuzz OUTDIR SECONDS [TARGET] | runner KIND" ;;
esac
