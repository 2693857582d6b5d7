"""README's first command, `bash scripts/demo.sh`, run as a user runs it (in this test's venv)."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import REPO

# Three `airflow dags test` runs; on a loaded shared machine that can take minutes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_demo_runs_the_gated_pull_two_reports_and_the_audience(tmp_path):
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
    assert "sensor released with 500 of 500 credits left" in out

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

    # Two credit reports with usage between them: the first has nothing to compare with, the
    # second a burn rate and a projection before the reset, so check_runway raises the alert.
    assert out.count("Leadpipe credit report, observed") == 2
    assert "leadpipe_daily_credit_report, first run: success" in out
    assert (
        "500 credits left, burn rate None (one report, nothing to compare with); check_runway: unknown" in out
    )
    assert "leadpipe_daily_credit_report, second run: failed (check_runway failed)" in out
    burn = re.search(
        r"credits_used: 120 in (\d+) s since the first report -> daily_burn_rate: ([\d,]+) credits/day", out
    )
    assert burn, out
    elapsed, rate = int(burn[1]), int(burn[2].replace(",", ""))
    assert rate > 0 and abs(rate - 120 * 86_400 / max(elapsed, 1)) <= 0.5 * rate  # 120 credits over that time
    assert "resets_at: " in out and "runs_out_before_reset: True" in out
    assert re.search(r"Leadpipe credits run out at \S+, before the next reset \(\S+\): 380 left", out), out

    # What the Leadpipe credits page charts: both reports, and its card rendered from them.
    assert "charts 2 reports:" in out
    assert re.search(r"UTC: 500 of 500 credits left\n.*UTC: 380 of 500 credits left", out), out
    card = re.search(r"its card, rendered from them: (\S+)", out)
    assert card and card[1].startswith(str(tmp_path)), out
    page = Path(card[1]).read_text()
    assert 'aria-label="Remaining credits over time, 2 report(s)"' in page
    assert page.count('<circle class="point"') == 2
