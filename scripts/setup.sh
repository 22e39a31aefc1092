#!/usr/bin/env bash
# Installs everything edge-ad's demo and tests need on a fresh Debian/Ubuntu machine:
# system packages (ALSA, mosquitto, cross compilers, qemu-user, clang for the sanitizers
# and libFuzzer) and a Python virtual environment with the package and all its extras.
# Idempotent: a second run only checks and rebuilds the C kernel.
#
#   EDGE_AD_VENV   where the virtual environment lives (default: .venv in the repository)
#   EDGE_AD_SKIP_APT=1   skip system packages (you installed them another way)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${EDGE_AD_VENV:-.venv}
PY=${PYTHON:-python3}

SYSTEM_PACKAGES=(
  libsndfile1                 # soundfile's libsndfile (the wheel bundles one too)
  libasound2-dev alsa-utils   # pyalsaaudio builds against ALSA; arecord/aplay for tests
  mosquitto                   # a real MQTT broker for the alert tests
  openssl                     # test CA and certificates for the MQTT TLS test
  clang libclang-rt-14-dev    # AddressSanitizer/UBSan and libFuzzer for the C kernel
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross     # Pi 4/5 (Cortex-A72/A76)
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross   # Pi 2/3 32-bit (Cortex-A7, NEON)
  qemu-user                   # runs the cross-built kernel and an arm64 Python here
  debootstrap                 # arm64 and armhf Debian roots for the Pi-class end-to-end tests
  systemd                     # systemd-analyze verify checks scripts/edge-ad.service
)

if [ "${EDGE_AD_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    case $p in \#*) continue ;; esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
echo "setup: installing edge-ad with all extras into $VENV"
# torch==2.13.0 is pinned: a CPU wheel of exactly that version is what this project tests.
# (The filter drops pip's notes about this machine's unused local index folders.)
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[all,dev]" \
     > "$VENV/pip-install.log" 2>&1; then
  grep -v "is ignored: it is neither a file nor a directory" "$VENV/pip-install.log" >&2
  echo "setup: pip install failed (log: $VENV/pip-install.log)" >&2
  exit 1
fi
"$VENV/bin/python" -c "import edge.features" || { echo "setup: edge-ad did not install" >&2; exit 1; }
# tflite-runtime 2.14 (numpy<2) in its own venv beside this one, for the export tests.
EDGE_AD_VENV="$VENV" PYTHON="$VENV/bin/python" scripts/setup-tflite214.sh
# An aarch64 Debian root and wheels for the Pi-class end-to-end test (cached under ~/.cache).
EDGE_AD_VENV="$VENV" scripts/setup-arm64.sh
# An armhf Debian root (numpy, cffi, soundfile; no model runtime) for the 32-bit board test.
scripts/setup-armhf.sh
echo "setup: done ($("$VENV/bin/edge-ad" --version))"
