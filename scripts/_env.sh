# Shared setup for scripts/*.sh: uv, the project venv, and Airflow 3.3.2 with the provider.
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
VENV="${VENV:-.venv}"
# The machine's own interpreter: uv must never try to download one (no internet here).
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
export UV_PYTHON_DOWNLOADS=never
# Write every installed module's bytecode at install time (a few seconds per venv): where
# PYTHONDONTWRITEBYTECODE is set, as on this project's machines, Python would otherwise compile
# Airflow from source in every process it starts (2 s of CPU more per `airflow` command).
export UV_COMPILE_BYTECODE="${UV_COMPILE_BYTECODE:-1}"
# The static checks (scripts/lint.sh, run by scripts/test.sh and .pre-commit-config.yaml), pinned so
# every machine formats and type-checks alike; not package metadata (users never need them).
LINT_TOOLS=(ruff==0.17.6 mypy==2.4.1)

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=uv; return; fi
  local boot="${UV_BOOTSTRAP_DIR:-$HOME/.cache/airflow-provider-leadpipe/uv}"
  if [ ! -x "$boot/bin/uv" ]; then
    echo "[setup] installing uv into $boot" >&2
    python3 -m venv "$boot" >&2
    "$boot/bin/pip" install -q uv >&2
  fi
  UV="$boot/bin/uv"
}

ensure_venv() {
  ensure_uv
  [ -x "$VENV/bin/python" ] || "$UV" venv -q -p "$PYTHON" "$VENV" >&2
  echo "[setup] installing Airflow $AIRFLOW_VERSION and the provider into $VENV" >&2
  # `distributed` (Celery, psycopg2) only here: the version-matrix venvs install `.[test]` alone.
  # The sandbox (the `sandbox` extra's `leadpipe-sandbox`) is in no package index: uv takes it from
  # ./sandbox, in the same resolution.
  "$UV" pip install -q --python "$VENV/bin/python" -e ./sandbox -e '.[test,distributed]' \
    "apache-airflow==$AIRFLOW_VERSION" "${LINT_TOOLS[@]}" >&2
}

# ruff's linter and format check over the repository, mypy over the provider and the sandbox; fails
# on the first that is not clean. Needs ensure_venv first.
run_lint() {
  echo "[lint] ruff check, ruff format --check, mypy airflow_provider_leadpipe sandbox/leadpipe_sandbox" >&2
  "$VENV/bin/ruff" check --quiet .
  "$VENV/bin/ruff" format --check --quiet .
  "$VENV/bin/python" -m mypy airflow_provider_leadpipe sandbox/leadpipe_sandbox
}
