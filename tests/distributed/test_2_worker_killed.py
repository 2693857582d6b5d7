"""Scenario 2: the Celery worker is SIGKILLed in the middle of a visitor pull of 20,000 records.

Once the task's heartbeat is older than `[scheduler] task_instance_heartbeat_timeout`, the scheduler
fails the try and Airflow retries it on the restarted worker. Expected: the retry succeeds, the
file at ``path`` holds every record exactly once, and no temporary object is left beside it.
"""

from __future__ import annotations

import json
import time

import pytest

from leadpipe_sandbox import Fault
from tests.distributed.conftest import VISITORS, VISITORS_KEY
from tests.distributed.metadata import dag_run, task_states, wait_until
from tests.e2e.airflow_api import trigger, wait_for_dag, xcom_value

DAG_ID = "leadpipe_dist_visitors_pull"
PAGES = VISITORS // 50


@pytest.mark.timeout(600)
def test_worker_killed_mid_pull_is_retried_and_the_file_is_complete(cluster, api, sandbox, figures, tmp_path):
    target = tmp_path / "visitors.jsonl"
    # Slow pages (0.2 s each, 4 in flight) so the pull is surely under way when the worker dies.
    sandbox.queue_faults(Fault.slow(0.2, count=PAGES // 2, path="/v1/data"), api_key=VISITORS_KEY)
    wait_for_dag(api, DAG_ID)
    run_id = trigger(api, DAG_ID, {"path": str(target)})

    pages = lambda: sandbox.request_count("/v1/data", api_key=VISITORS_KEY)  # noqa: E731
    wait_until(lambda: pages() >= PAGES // 8, "the pull under way", cluster, timeout=240, interval=0.1)
    partial = list(tmp_path.glob(".visitors.jsonl.*.tmp"))
    assert partial, f"no temporary file while pulling: {list(tmp_path.iterdir())}"
    assert not target.exists()
    pages_before_kill = pages()
    assert pages_before_kill < PAGES, "the pull finished before the worker could be killed"
    killed_at = cluster.kill("worker")
    cluster.start_worker("worker")

    def finished():
        state = dag_run(cluster, DAG_ID, run_id)["state"]
        return state if state in ("success", "failed") else None

    assert finished() is None
    state = wait_until(finished, "the pull's retry", cluster, timeout=240)
    retried_after = time.monotonic() - killed_at
    assert state == "success", cluster.diagnostics()
    assert task_states(cluster, DAG_ID, run_id) == {("success", 2): 1}  # the first try died with its worker

    lines = target.read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == VISITORS
    assert len(set(ids)) == VISITORS  # every record once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visitors.jsonl"]  # no temporary left
    result = xcom_value(api, DAG_ID, run_id, "pull")
    assert result["records"] == VISITORS and result["expected_records"] == VISITORS

    figures.update(
        records_written=len(ids),
        distinct_records=len(set(ids)),
        pages_requested_before_kill=pages_before_kill,
        pages_requested_in_total=pages(),
        seconds_from_kill_to_success=round(retried_after, 1),
        tries=2,
    )
