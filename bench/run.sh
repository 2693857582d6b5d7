#!/usr/bin/env bash
# One command for every benchmark: prepares .venv-bench (the project, Airflow, and the HTTP
# provider as the baseline; the HTTP provider is never a project dependency), then runs
# bench/run.py, which prints the tables. Arguments go to bench/run.py, e.g.
#   bash bench/run.sh --only hook,imports
#   bash bench/run.sh --markdown bench/RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
VENV="${BENCH_VENV:-.venv-bench}"
ensure_venv
echo "[setup] installing the baseline apache-airflow-providers-http into $VENV" >&2
"$UV" pip install -q --python "$VENV/bin/python" apache-airflow-providers-http >&2
# Bytecode caches as a deployment has them: imports would otherwise compile every module anew in
# each fresh process (startup only, but the import benchmark would time the compiler).
unset PYTHONDONTWRITEBYTECODE
ulimit -n 20000 2>/dev/null || true   # 5,000 HttpSensorTrigger sockets plus the server's
exec "$VENV/bin/python" -m bench.run "$@"
