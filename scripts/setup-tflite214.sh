#!/usr/bin/env bash
# A second, small virtual environment with tflite-runtime 2.14 (the runtime older boards
# still ship; it needs numpy<2). The export tests load our int8 models in it, so a bundle
# is proven to run on both ai-edge-litert and tflite-runtime 2.14.
#
#   EDGE_AD_VENV   the main environment; this one is created beside it as ${EDGE_AD_VENV}-tflite214
#   EDGE_AD_TFLITE214_VENV   override the location
# Idempotent. tflite-runtime 2.14 has wheels for CPython 3.8 to 3.11 only: with another
# Python the script says so and exits 0 (the test then fails in CI, skips elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${EDGE_AD_VENV:-.venv}
TARGET=${EDGE_AD_TFLITE214_VENV:-${VENV%/}-tflite214}
# Same interpreter as the main environment (a venv's python creates a venv of its base).
PY=${PYTHON:-$VENV/bin/python}
[ -x "$PY" ] || PY=python3

minor=$("$PY" -c 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])')
if [ "$minor" -lt 308 ] || [ "$minor" -gt 311 ]; then
  echo "setup: tflite-runtime 2.14 has no wheel for $("$PY" -V); skipping $TARGET" >&2
  exit 0
fi
if [ ! -x "$TARGET/bin/python" ]; then
  echo "setup: creating $TARGET (tflite-runtime 2.14, numpy<2)"
  "$PY" -m venv "$TARGET"
fi
if ! "$TARGET/bin/python" -c "import tflite_runtime, numpy; assert tflite_runtime.__version__ == '2.14.0'" 2>/dev/null; then
  "$TARGET/bin/python" -m pip install -q --disable-pip-version-check "tflite-runtime==2.14.0" "numpy<2" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
fi
"$TARGET/bin/python" -c "import tflite_runtime; print('setup: tflite-runtime', tflite_runtime.__version__, 'in $TARGET')"
