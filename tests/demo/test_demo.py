"""README's first command, `bash scripts/demo.sh`, run as a user runs it (in this test's venv)."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.conftest import REPO

# Three `airflow dags test` runs; on a loaded shared machine that can take minutes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_demo_runs_the_gated_pull_the_report_and_the_audience(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {
        "LEADPIPE_DEMO_HOME": str(tmp_path / "demo"),
        "VENV": sys.prefix,  # this venv, at its own Airflow version: setup has nothing to change
        "AIRFLOW_VERSION": version("apache-airflow"),
    }
    proc = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=840
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]

    # The sensor waited (no credits), handed over to the trigger, and was released by it.
    assert out.count("waiting: account not healthy") >= 2
    assert "[DAG TEST] running trigger in line" in out
    assert "leadpipe_credit_gated_pull: success" in out
    assert "leadpipe_daily_credit_report: success" in out
    assert "sensor released with 500 of 500 credits left" in out
    assert "Leadpipe credit report, observed" in out

    # The file it names exists and holds the records it reports.
    pulled = re.search(r"pulled (\d+) visitor records in (\d+) pages -> (\S+)", out)
    assert pulled, out
    records, path = int(pulled[1]), pulled[3]
    assert records > 0 and path.startswith(str(tmp_path))
    with gzip.open(path, "rt") as lines:
        assert sum(1 for _ in lines) == records

    # The Orbit audience run was waited for in the triggerer and its people landed in a file.
    assert "leadpipe_intent_audience_daily: success" in out
    landed = re.search(r"landed (\d+) people -> (\S+)", out)
    assert landed, out
    people, path = int(landed[1]), landed[2]
    assert people > 0 and path.startswith(str(tmp_path))
    with gzip.open(path, "rt") as lines:
        assert sum(1 for _ in lines) == people
