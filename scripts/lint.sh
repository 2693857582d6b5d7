#!/usr/bin/env bash
# The static checks alone, as `bash scripts/test.sh` runs them before pytest and as the pre-commit
# hook runs them: `ruff check .`, `ruff format --check .`,
# `mypy airflow_provider_leadpipe sandbox/leadpipe_sandbox`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_venv
run_lint
