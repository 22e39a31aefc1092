#!/usr/bin/env bash
# The whole test suite, set-up included: `scripts/test.sh [pytest args]`.
# With no arguments it also runs the benchmark suites once each, timing off
# (--benchmark-disable), so bench/ cannot rot; speed itself is `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
VENV=$(cd "${EDGE_AD_VENV:-.venv}" && pwd)
export PATH="$VENV/bin:$PATH"
if [ $# -gt 0 ]; then
  exec python -m pytest "$@"
fi
python -m pytest bench/ --benchmark-disable -q -p no:cacheprovider
exec python -m pytest
