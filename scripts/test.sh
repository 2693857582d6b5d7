#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs
#   1. pytest on Airflow 3.3.2: unit, dag.test integration, hardening, the demo, and the
#      end-to-end suite (airflow standalone + triggerer + the Connections form in headless
#      Chromium, installed from Debian's packages when missing);
#   2. the version matrix: the same suites minus e2e/demo on Airflow 2.11, 3.0, 3.1 and 3.2.
# Arguments go to pytest and skip the matrix (e.g. `bash scripts/test.sh tests/unit -q`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_venv
LEADPIPE_REQUIRE_CHROMIUM=1 bash scripts/install_chromium.sh
"$VENV/bin/python" -m pytest "$@"
if [ $# -eq 0 ]; then
  MATRIX_VERSIONS="${MATRIX_VERSIONS:-2.11.2 3.0.6 3.1.8 3.2.2}" bash scripts/matrix.sh
fi
