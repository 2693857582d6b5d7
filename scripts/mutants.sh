#!/usr/bin/env bash
# Deliberate breakages: each mutant in scripts/mutants.py breaks one behaviour in a temporary copy
# of the repository and must turn its tests red (the working tree is never touched).
# Arguments go to mutants.py (e.g. `bash scripts/mutants.sh redact`, `--list`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
[ -x "$VENV/bin/python" ] || ensure_venv
exec "$VENV/bin/python" scripts/mutants.py "$@"
