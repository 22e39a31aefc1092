#!/usr/bin/env bash
# The aarch64 side of the Pi-class end-to-end test (tests/test_pi_arm64.py): a Debian
# bookworm arm64 root (the base of Raspberry Pi OS 12) holding CPython 3.11 and its headers,
# and a site directory of the aarch64 wheels the edge runtime needs, at exactly the versions
# the x86 environment has. The test runs that Python under qemu-user with the cross-built C
# kernel; no binfmt registration, no chroot and no root privileges are needed (qemu-aarch64
# -L with a board view of ROOT: scripts/arm64/make-board.sh).
#
#   EDGE_AD_VENV          the main (x86) environment; its pip fetches the wheels and its
#                         installed versions are the pins (default: .venv)
#   EDGE_AD_ARM64_CACHE   where the root and the wheels live (default ~/.cache/edge-ad/arm64)
#   EDGE_AD_DEBIAN_MIRROR Debian mirror (default: the one apt on this machine uses)
#
# Idempotent and cached: each part has a stamp holding its recipe, and a second run with the
# same recipe only checks the stamps (well under a second). Parts are built in a temporary
# directory and renamed into place, so an interrupted run never leaves a half-built cache.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${EDGE_AD_VENV:-.venv}
PY=$VENV/bin/python
CACHE=${EDGE_AD_ARM64_CACHE:-$HOME/.cache/edge-ad/arm64}
SUITE=bookworm
# python3.11-minimal + libpython3.11-stdlib: the interpreter and its standard library;
# libpython3.11-dev: Python.h and the aarch64 pyconfig.h the C kernel is cross-compiled
# against; libstdc++6: ai-edge-litert and numpy's wheels link it from the system, as manylinux
# wheels do.
PACKAGES=python3.11-minimal,libpython3.11-stdlib,libpython3.11-dev,libstdc++6
# What the edge path imports on a board (pyproject's base dependencies).
WHEELS=(numpy ai-edge-litert cffi soundfile soxr tqdm)
# bookworm's glibc is 2.36: every manylinux tag up to it runs there. pip needs each tag named.
PLATFORMS=(--platform linux_aarch64 --platform manylinux2014_aarch64)
for v in 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36; do
  PLATFORMS+=(--platform "manylinux_2_${v}_aarch64")
done

export PATH=$PATH:/usr/sbin:/sbin   # debootstrap lives in /usr/sbin
for tool in debootstrap dpkg-deb qemu-aarch64 aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null || {
    echo "setup-arm64: $tool not found (scripts/setup.sh installs it with the system packages)" >&2
    exit 1
  }
done
[ -x "$PY" ] || { echo "setup-arm64: no Python environment at $VENV (run scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$CACHE"

. scripts/debian-mirror.sh   # mirror(); the working directory is the repository

# --- 1. the arm64 root ------------------------------------------------------------------
ROOT=$CACHE/root
root_recipe="suite=$SUITE packages=$PACKAGES recipe=2"
if [ "$(cat "$ROOT/.edge-ad-stamp" 2>/dev/null)" != "$root_recipe" ]; then
  start=$SECONDS
  MIRROR=$(mirror)
  echo "setup-arm64: building a Debian $SUITE arm64 root in $ROOT from $MIRROR"
  tmp=$CACHE/root.tmp.$$
  trap 'rm -rf "$tmp"' EXIT
  rm -rf "$tmp"
  # --download-only: debootstrap resolves and fetches the minimal base plus the packages
  # asked for and their dependencies, verified against the signed Release file. Its other
  # stages would need root, device nodes, and a chroot running arm64 maintainer scripts
  # (binfmt); none of that is needed to run Python from unpacked, unconfigured packages.
  if ! debootstrap --download-only --arch=arm64 --variant=minbase --include="$PACKAGES" \
      "$SUITE" "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 20 "$CACHE/debootstrap.log" >&2
    echo "setup-arm64: debootstrap failed (log: $CACHE/debootstrap.log)" >&2
    exit 1
  fi
  for deb in "$tmp"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$tmp"
  done
  # Nothing below is needed to run Python; it halves the cache.
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/usr/share/doc "$tmp"/usr/share/man \
    "$tmp"/usr/share/locale "$tmp"/usr/share/info "$tmp"/var/lib/apt/lists/*_Packages
  [ -x "$tmp/usr/bin/python3.11" ] && [ -f "$tmp/usr/include/python3.11/Python.h" ] || {
    echo "setup-arm64: the root has no python3.11 or Python.h after unpacking" >&2; exit 1; }
  echo "$root_recipe" >"$tmp/.edge-ad-stamp"
  rm -rf "$ROOT"
  mv "$tmp" "$ROOT"
  trap - EXIT
  echo "setup-arm64: root ready in $((SECONDS - start)) s ($(du -sh "$ROOT" | cut -f1))"
fi

# --- 2. aarch64 wheels, pinned to the x86 environment's versions ---------------------------
SITE=$CACHE/site
# Every distribution installed in the x86 venv, as name==version: the wheels resolved for
# aarch64 (dependencies included) must be the same versions, so both sides run the same code.
pins=$("$PY" -m pip freeze --disable-pip-version-check 2>/dev/null | grep -E '^[A-Za-z0-9_.-]+==' | sort)
missing=()
for w in "${WHEELS[@]}"; do
  echo "$pins" | grep -qiE "^${w//-/[-_]}==" || missing+=("$w")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-arm64: ${missing[*]} not installed in $VENV; the aarch64 versions are pinned to it" >&2
  exit 1
fi
site_recipe="wheels=${WHEELS[*]} python=3.11 pins=$(echo "$pins" | sha256sum | cut -c1-16) recipe=1"
if [ "$(cat "$SITE/.edge-ad-stamp" 2>/dev/null)" != "$site_recipe" ]; then
  start=$SECONDS
  echo "setup-arm64: fetching aarch64 wheels (${WHEELS[*]}) into $SITE"
  tmp=$CACHE/site.tmp.$$
  trap 'rm -rf "$tmp"' EXIT
  rm -rf "$tmp"
  mkdir -p "$tmp"
  echo "$pins" >"$tmp/.constraints.txt"
  # --target with --platform installs without running any aarch64 code; --only-binary is
  # what makes pip accept a foreign platform.
  "$PY" -m pip install -q --disable-pip-version-check --no-compile --target "$tmp" \
      "${PLATFORMS[@]}" --python-version 3.11 --implementation cp --abi cp311 \
      --only-binary=:all: -c "$tmp/.constraints.txt" "${WHEELS[@]}" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  for mod in numpy ai_edge_litert _cffi_backend.cpython-311-aarch64-linux-gnu.so soundfile.py soxr; do
    [ -e "$tmp/$mod" ] || { echo "setup-arm64: $mod missing after pip install --target" >&2; exit 1; }
  done
  echo "$site_recipe" >"$tmp/.edge-ad-stamp"
  rm -rf "$SITE"
  mv "$tmp" "$SITE"
  trap - EXIT
  echo "setup-arm64: wheels ready in $((SECONDS - start)) s ($(du -sh "$SITE" | cut -f1))"
fi

# --- 3. board views: the root as a Raspberry Pi 4 and 5 see it (CPU list in /proc and /sys) --
board_recipe="$(cat "$ROOT/.edge-ad-stamp") board-script=$(sha256sum scripts/arm64/make-board.sh | cut -c1-16)"
for board in pi4 pi5; do
  if [ "$(cat "$CACHE/boards/$board/.board-stamp" 2>/dev/null)" != "$board_recipe" ]; then
    mkdir -p "$CACHE/boards"
    scripts/arm64/make-board.sh "$ROOT" "$CACHE/boards/$board" "$board"
    echo "$board_recipe" >"$CACHE/boards/$board/.board-stamp"
  fi
done

# --- 4. smoke check: the aarch64 interpreter imports the runtime under qemu -----------------
# Once per built combination: a cached second run stays well under a second.
smoke_recipe="$board_recipe $(cat "$SITE/.edge-ad-stamp")"
if [ "$(cat "$CACHE/.smoke-stamp" 2>/dev/null)" = "$smoke_recipe" ]; then
  echo "setup-arm64: arm64 root, wheels and Pi 4/5 views cached in $CACHE"
  exit 0
fi
QEMU_LD_PREFIX=$CACHE/boards/pi4 PYTHONPATH=$SITE PYTHONDONTWRITEBYTECODE=1 qemu-aarch64 -cpu cortex-a72 "$ROOT/usr/bin/python3.11" -c '
import importlib.metadata, platform, numpy, soundfile, soxr, _cffi_backend
from ai_edge_litert.interpreter import Interpreter
assert platform.machine() == "aarch64", platform.machine()
print("setup-arm64: aarch64 Python", platform.python_version(), "numpy", numpy.__version__,
      "ai-edge-litert", importlib.metadata.version("ai-edge-litert"))
' || { echo "setup-arm64: the aarch64 Python in $ROOT cannot import the runtime" >&2; exit 1; }
echo "$smoke_recipe" >"$CACHE/.smoke-stamp"
