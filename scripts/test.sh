#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs
#   1. the static checks (scripts/lint.sh: ruff check, ruff format --check, mypy), failing the
#      command when the code is not clean;
#   2. pytest on Airflow 3.3.2: unit, dag.test integration, hardening, packaging (sdist and wheel
#      built, checked, installed into a bare Airflow), the demo, and the end-to-end suite
#      (airflow standalone + triggerer + the Connections form in headless Chromium, installed
#      from Debian's packages when missing: that needs root or passwordless sudo);
#   3. the version matrix: the same suites minus e2e/demo/packaging on Airflow 2.11, 3.0, 3.1, 3.2
#      (two versions at a time, MATRIX_JOBS in scripts/matrix.sh).
# Arguments go to pytest and skip the static checks and the matrix (e.g. `bash scripts/test.sh
# tests/unit -q`); Chromium is then installed only if the run includes tests/e2e (a path naming it,
# or no path at all).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh

runs_e2e() {
  local arg paths=0
  for arg in "$@"; do
    case "${arg%%::*}" in
      tests/e2e* | ./tests/e2e* | tests | tests/ | ./tests | ./tests/ | . | ./) return 0 ;;
    esac
    [ -e "${arg%%::*}" ] && paths=1
  done
  [ "$paths" = 0 ] # no path given: pytest collects every suite (testpaths), e2e included
}

ensure_venv
if [ $# -eq 0 ]; then
  run_lint
fi
if runs_e2e "$@"; then
  LEADPIPE_REQUIRE_CHROMIUM=1 bash scripts/install_chromium.sh
fi
"$VENV/bin/python" -m pytest "$@"
if [ $# -eq 0 ]; then
  MATRIX_VERSIONS="${MATRIX_VERSIONS:-2.11.2 3.0.6 3.1.8 3.2.2}" bash scripts/matrix.sh
fi
