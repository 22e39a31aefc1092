#!/usr/bin/env bash
# The armhf side of the 32-bit board test (tests/test_pi_armhf.py): a Debian bookworm armhf
# root (the base of 32-bit Raspberry Pi OS 12, for a Pi Zero 2 W, Pi 2 or Pi 3) holding
# CPython 3.11 with its headers and Debian's own numpy, cffi and soundfile, and nothing
# else: no model runtime publishes a linux_armv7l wheel for Python 3.11, so the board runs
# the bundle's int8 network on edge-ad's C kernel. The test runs that Python under
# qemu-arm with the kernel cross-built from the tree; no chroot, no root privileges.
#
#   EDGE_AD_ARMHF_CACHE   where the root lives (default ~/.cache/edge-ad/armhf)
#   EDGE_AD_DEBIAN_MIRROR Debian mirror (default: the one apt on this machine uses)
#
# Idempotent and cached like setup-arm64.sh: a stamp holds the recipe; the root is built in
# a temporary directory and renamed into place.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${EDGE_AD_ARMHF_CACHE:-$HOME/.cache/edge-ad/armhf}
SUITE=bookworm
# python3.11-minimal + libpython3.11-stdlib: the interpreter; libpython3.11-dev: Python.h and
# the armhf pyconfig.h the kernel is cross-compiled against; python3-numpy,
# python3-cffi-backend, python3-soundfile (with libsndfile1): the edge path's only imports.
PACKAGES=python3.11-minimal,libpython3.11-stdlib,libpython3.11-dev,python3-numpy,python3-cffi-backend,python3-soundfile,libsndfile1

export PATH=$PATH:/usr/sbin:/sbin
for tool in debootstrap dpkg-deb qemu-arm arm-linux-gnueabihf-gcc; do
  command -v "$tool" >/dev/null || {
    echo "setup-armhf: $tool not found (scripts/setup.sh installs it with the system packages)" >&2
    exit 1
  }
done
mkdir -p "$CACHE"

. scripts/debian-mirror.sh   # mirror(); the working directory is the repository

ROOT=$CACHE/root
root_recipe="suite=$SUITE packages=$PACKAGES recipe=2"
if [ "$(cat "$ROOT/.edge-ad-stamp" 2>/dev/null)" != "$root_recipe" ]; then
  start=$SECONDS
  MIRROR=$(mirror)
  echo "setup-armhf: building a Debian $SUITE armhf root in $ROOT from $MIRROR"
  tmp=$CACHE/root.tmp.$$
  trap 'rm -rf "$tmp"' EXIT
  rm -rf "$tmp"
  # --download-only, then unpack: as setup-arm64.sh (no chroot, no maintainer scripts).
  if ! debootstrap --download-only --arch=armhf --variant=minbase --include="$PACKAGES" \
      "$SUITE" "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 20 "$CACHE/debootstrap.log" >&2
    echo "setup-armhf: debootstrap failed (log: $CACHE/debootstrap.log)" >&2
    exit 1
  fi
  for deb in "$tmp"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$tmp"
  done
  # What the skipped maintainer scripts would do that matters here: numpy links
  # libblas.so.3 and liblapack.so.3, which update-alternatives points at the reference BLAS.
  for lib in blas/libblas.so.3 lapack/liblapack.so.3; do
    ln -sf "$lib" "$tmp/usr/lib/arm-linux-gnueabihf/$(basename "$lib")"
  done
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/usr/share/doc "$tmp"/usr/share/man \
    "$tmp"/usr/share/locale "$tmp"/usr/share/info "$tmp"/var/lib/apt/lists/*_Packages
  [ -x "$tmp/usr/bin/python3.11" ] && [ -f "$tmp/usr/include/python3.11/Python.h" ] || {
    echo "setup-armhf: the root has no python3.11 or Python.h after unpacking" >&2; exit 1; }
  echo "$root_recipe" >"$tmp/.edge-ad-stamp"
  rm -rf "$ROOT"
  mv "$tmp" "$ROOT"
  trap - EXIT
  echo "setup-armhf: root ready in $((SECONDS - start)) s ($(du -sh "$ROOT" | cut -f1))"
fi

# Smoke check, once per root: the armhf interpreter imports what the edge path needs.
if [ "$(cat "$CACHE/.smoke-stamp" 2>/dev/null)" = "$root_recipe" ]; then
  echo "setup-armhf: armhf root cached in $CACHE"
  exit 0
fi
QEMU_LD_PREFIX=$ROOT PYTHONDONTWRITEBYTECODE=1 qemu-arm -cpu cortex-a7 "$ROOT/usr/bin/python3.11" -c '
import platform, numpy, soundfile, _cffi_backend
assert platform.machine().startswith("armv7"), platform.machine()
print("setup-armhf: armhf Python", platform.python_version(), "numpy", numpy.__version__,
      "soundfile", soundfile.__version__)
' || { echo "setup-armhf: the armhf Python in $ROOT cannot import numpy, cffi, soundfile" >&2; exit 1; }
echo "$root_recipe" >"$CACHE/.smoke-stamp"
