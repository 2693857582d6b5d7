#!/usr/bin/env bash
# Run the unit and dag.test suites (everything but tests/e2e) on each supported Airflow minor.
#
#   bash scripts/matrix.sh                 # every version in MATRIX_VERSIONS
#   bash scripts/matrix.sh 2.11.2 3.3.2    # just these
#   bash scripts/matrix.sh -- -k hook      # extra pytest arguments after "--"
#
# Each version gets its own uv venv, .venv-af<version> (gitignored), reused on the next run.
# Logs go to .artifacts/matrix/af<version>.log; a result table is printed at the end (and
# written to .artifacts/matrix/results.md). Exit status is non-zero when any version fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh

# The newest patch of each supported minor that installs and passes (see docs/compatibility.md).
DEFAULT_VERSIONS="2.11.2 3.0.6 3.1.8 3.2.2 3.3.2"

versions=()
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; pytest_args=("$@"); break ;;
    *) versions+=("$1"); shift ;;
  esac
done
[ ${#versions[@]} -gt 0 ] || read -r -a versions <<<"${MATRIX_VERSIONS:-$DEFAULT_VERSIONS}"

OUT=.artifacts/matrix
mkdir -p "$OUT"
ensure_uv

rows=()
failed=0
matrix_start=$SECONDS
for version in "${versions[@]}"; do
  log="$OUT/af$version.log"
  : >"$log"
  echo "[matrix] Airflow $version: installing into .venv-af$version" >&2
  start=$SECONDS
  status=ok
  if ! (VENV=".venv-af$version" AIRFLOW_VERSION="$version" ensure_venv) >>"$log" 2>&1; then
    status="install failed"
  fi
  install_s=$((SECONDS - start))

  summary="-"
  start=$SECONDS
  if [ "$status" = ok ]; then
    echo "[matrix] Airflow $version: running the unit and dag.test suites" >&2
    # Same isolation as scripts/test.sh (tests/conftest.py), minus the end-to-end suite.
    if ! ".venv-af$version/bin/python" -m pytest -q -p no:cacheprovider -m "not e2e" \
        --ignore=tests/e2e "${pytest_args[@]}" >>"$log" 2>&1; then
      status=FAILED
    fi
    # pytest's closing line, e.g. "120 passed, 3 skipped in 41.02s" (with or without "===").
    summary=$(grep -E '(passed|failed|errors?|skipped|deselected|no tests ran).* in [0-9.]+s' "$log" |
      tail -1 | sed -E 's/^=+ //; s/ =+$//; s/, [0-9]+ warnings?//') || true
    [ -n "$summary" ] || summary="no pytest summary (see $log)"
  fi
  test_s=$((SECONDS - start))

  [ "$status" = ok ] || failed=1
  echo "[matrix] Airflow $version: $status ($summary); install ${install_s}s, tests ${test_s}s" >&2
  rows+=("| $version | $status | $summary | ${install_s} s | ${test_s} s |")
done

{
  echo "| Airflow | Result | pytest | Install | Tests |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Total: $((SECONDS - matrix_start)) s"
} | tee "$OUT/results.md"

exit "$failed"
