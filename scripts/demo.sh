#!/usr/bin/env bash
# The demo, from a fresh clone: sets up uv + Airflow 3.3.2 + the provider, then runs the
# credit-gated example DAG and a credit report against the offline API sandbox (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_venv
exec "$VENV/bin/python" scripts/demo.py "$@"
