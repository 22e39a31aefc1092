#!/usr/bin/env bash
# The main job end to end, set-up included: `scripts/demo.sh [--out DIR] [--quick]`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
VENV=$(cd "${EDGE_AD_VENV:-.venv}" && pwd)
exec "$VENV/bin/edge-ad" demo "$@"
