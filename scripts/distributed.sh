#!/usr/bin/env bash
# Run the distributed suite alone (tests/distributed; docs/distributed.md): PostgreSQL and Redis
# (Debian's packages, installed when missing: root or passwordless sudo), Airflow 3.3.2 with the
# CeleryExecutor, two triggerers, one of them killed, a Celery worker killed mid-pull.
#
#   bash scripts/distributed.sh            # the three scenarios (≈ 5-8 min on 2 cores)
#   bash scripts/distributed.sh -k worker  # extra arguments go to pytest
#
# Component logs and the figures land in .artifacts/distributed/. `bash scripts/test.sh` runs
# this suite too (it is part of `tests`); this script is for running it on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh

ensure_venv
# Here a missing server is a failure, not a skip.
export LEADPIPE_REQUIRE_SERVICES=1
bash scripts/install_services.sh
"$VENV/bin/python" -m pytest tests/distributed -m distributed -p no:cacheprovider -rs --durations=5 "$@"
