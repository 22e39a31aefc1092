#!/usr/bin/env bash
# The whole test suite, set-up included: `scripts/test.sh [pytest args]`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
VENV=${EDGE_AD_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
[ -d "$VENV" ] || export PATH="$VENV/bin:$PATH"
exec python -m pytest "$@"
