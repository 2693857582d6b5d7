#!/usr/bin/env bash
# Run the unit, dag.test and docs suites (all but tests/e2e, tests/demo, tests/packaging and
# tests/distributed; the docs' executed snippets not on 3.0 and 3.2, see below) on each supported
# Airflow minor.
#
#   bash scripts/matrix.sh                 # every version in MATRIX_VERSIONS
#   bash scripts/matrix.sh 2.11.2 3.3.2    # just these
#   bash scripts/matrix.sh -- -k hook      # extra pytest arguments after "--"
#
# Each version gets its own uv venv, .venv-matrix-<version> (gitignored), reused on the next run.
# MATRIX_JOBS versions (default 2) install and run at the same time, each in its own process with
# its own AIRFLOW_HOME, SQLite DB and sandbox port (tests/conftest.py); MATRIX_JOBS=1 runs them one
# after the other.
# Logs go to .artifacts/matrix/af<version>.log; a result table is printed at the end (and
# written to .artifacts/matrix/results.md). Exit status is non-zero when any version fails.
#
# Dependencies are resolved as of each release (uv --exclude-newer <release day + 1>), like
# Airflow's official constraints files, which are on GitHub and unreachable here. Unconstrained,
# today's FastAPI / Cadwyn / Starlette / pydantic break the in-process execution API of Airflow
# 3.0.6 and 3.2.2 (every dag.test fails, with or without this provider). MATRIX_LATEST=1 resolves
# the newest dependencies instead, to watch that drift.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh

# The newest patch of each supported minor that installs and passes (see docs/compatibility.md).
DEFAULT_VERSIONS="2.11.2 3.0.6 3.1.8 3.2.2 3.3.2"

# Upload date of each release on PyPI + 1 day: the dependency cutoff for that version.
release_cutoff() {
  case "$1" in
    2.11.2) echo 2026-03-15 ;;
    3.0.6) echo 2025-08-30 ;;
    3.1.8) echo 2026-03-12 ;;
    3.2.2) echo 2026-05-30 ;;
    3.3.2) echo 2026-09-18 ;;
    *) echo "" ;;
  esac
}
# Our own dependencies newer than some releases: exempt from the cutoff (sybil: the docs test needs
# sybil>=10, newer than 3.0.6).
FRESH_PACKAGES="apache-airflow-providers-common-compat sybil"

install_version() { # <version> <venv>: (re)create the venv when the install spec changed
  local version="$1" venv="$2" cutoff args=()
  cutoff=$([ "${MATRIX_LATEST:-0}" = 1 ] || release_cutoff "$version")
  if [ -n "$cutoff" ]; then
    args+=(--exclude-newer "$cutoff")
    for package in $FRESH_PACKAGES; do args+=(--exclude-newer-package "$package=$(date -u +%F -d tomorrow)"); done
  fi
  local spec="apache-airflow==$version cutoff=${cutoff:-none} $(cat pyproject.toml sandbox/pyproject.toml | sha1sum | cut -c1-12)"
  if [ "$(cat "$venv/.matrix-spec" 2>/dev/null)" != "$spec" ]; then
    rm -rf "$venv"
    "$UV" venv -q -p "$PYTHON" "$venv"
  fi
  echo "[matrix] $spec" >&2
  "$UV" pip install -q --python "$venv/bin/python" "${args[@]}" -e ./sandbox -e '.[test]' "apache-airflow==$version"
  echo "$spec" >"$venv/.matrix-spec"
}

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

matrix_start=$SECONDS
max_jobs="${MATRIX_JOBS:-2}"
for version in "${versions[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$max_jobs" ]; do wait -n || true; done
  rm -f "$OUT/af$version.row"
  ( # one version, in the background: its table row goes to $OUT/af<version>.row
  log="$OUT/af$version.log"
  : >"$log"
  echo "[matrix] Airflow $version: installing into .venv-matrix-$version" >&2
  start=$SECONDS
  status=ok
  if ! install_version "$version" ".venv-matrix-$version" >>"$log" 2>&1; then
    status="install failed"
  fi
  install_s=$((SECONDS - start))

  summary="-"
  start=$SECONDS
  if [ "$status" = ok ]; then
    echo "[matrix] Airflow $version: running the unit and dag.test suites" >&2
    # Same isolation as scripts/test.sh (tests/conftest.py), minus the end-to-end suite (3.3.2
    # only), tests/demo (scripts/demo.sh's output, for the default Airflow the main suite runs),
    # tests/packaging (it builds the wheel and installs it with Airflow 3.3.2 itself),
    # tests/distributed (Celery and PostgreSQL, installed in the 3.3.2 venv only). The docs'
    # executed snippets run too (a block a page marks as for a newer Airflow, <!-- docs: airflow-3 -->,
    # is listed as not run), except on 3.0 and 3.2, whose own log lines land in outputs the pages
    # show (3.0: httpx and Airflow log lines on stdout; 3.2: alembic's lines before CLI output).
    snippets=()
    case "$version" in 3.0.* | 3.2.*) snippets=(--ignore=tests/docs/test_snippets.py) ;; esac
    if ! ".venv-matrix-$version/bin/python" -m pytest -q -rs -p no:cacheprovider -m "not e2e and not distributed" \
        --ignore=tests/e2e --ignore=tests/demo --ignore=tests/packaging --ignore=tests/distributed \
        "${snippets[@]}" "${pytest_args[@]}" >>"$log" 2>&1; then
      status=FAILED
    fi
    # pytest's closing line, e.g. "120 passed, 3 skipped in 41.02s" (with or without "===").
    summary=$(grep -E '(passed|failed|errors?|skipped|deselected|no tests ran).* in [0-9.]+s' "$log" |
      tail -1 | sed -E 's/^=+ //; s/ =+$//; s/, [0-9]+ warnings?//') || true
    [ -n "$summary" ] || summary="no pytest summary (see $log)"
  fi
  test_s=$((SECONDS - start))

  echo "[matrix] Airflow $version: $status ($summary); install ${install_s}s, tests ${test_s}s" >&2
  echo "| $version | $status | $summary | ${install_s} s | ${test_s} s |" >"$OUT/af$version.row"
  ) &
done
wait

rows=()
failed=0
for version in "${versions[@]}"; do
  row=$(cat "$OUT/af$version.row" 2>/dev/null) || row="| $version | no result (see $OUT/af$version.log) | - | - | - |"
  [[ "$row" == "| $version | ok |"* ]] || failed=1
  rows+=("$row")
done
{
  echo "| Airflow | Result | pytest | Install | Tests |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Total: $((SECONDS - matrix_start)) s"
} | tee "$OUT/results.md"

exit "$failed"
