"""Scenario 3: the asset watcher of `leadpipe_audience_on_new_run` across a restart of both triggerers.

A new daily run of the watched audience starts one consumer DAG run. Both triggerers are then
stopped (SIGTERM, as a deployment restarts them), a second daily run appears while none is
running, and two new triggerers start: exactly one more DAG run follows, and none for the first
daily run again. (tests/e2e/test_asset_watcher.py proves the same on `airflow standalone`.)
"""

from __future__ import annotations

import time

import pytest

from leadpipe_sandbox import DEFAULT_API_KEY
from tests.distributed.metadata import live_triggerer_jobs, wait_until
from tests.e2e.airflow_api import wait_for_dag
from tests.e2e.test_asset_watcher import DAG_ID, RUNS, dag_runs, finished_runs, landed

TRIGGERERS = ("triggerer-1", "triggerer-2")


def polls(sandbox, cluster, more: int) -> None:
    """Wait until the watcher (the default key's only client) listed the audience's runs ``more`` times."""

    def count() -> int:
        return sandbox.request_count(RUNS, method="GET", api_key=DEFAULT_API_KEY)

    start = count()
    wait_until(lambda: count() >= start + more, f"{more} watcher polls", cluster, 120)


@pytest.mark.timeout(600)
def test_watcher_starts_one_dag_run_per_new_daily_run_across_a_triggerer_restart(
    cluster, api, sandbox, figures, watched_audience
):
    audience_id = watched_audience["id"]
    for name in TRIGGERERS:  # scenario 1 may have killed one
        if name not in cluster.processes:
            cluster.start_triggerer(name)
    wait_until(lambda: len(live_triggerer_jobs(cluster)) == 2, "two triggerers", cluster, 120)
    wait_for_dag(api, DAG_ID)
    polls(sandbox, cluster, 3)  # the watcher runs and has its baseline
    assert dag_runs(api) == []  # the daily run made before the watcher started: no DAG run

    first = sandbox.add_daily_run(audience_id, data_date="2026-11-02")
    [run] = finished_runs(api, 1, cluster)
    assert run["state"] == "success", cluster.diagnostics()
    assert run["run_type"] == "asset_triggered"
    assert len(landed(cluster, audience_id, first["id"])) == 4

    for name in TRIGGERERS:
        cluster.terminate(name)
    assert live_triggerer_jobs(cluster) == []  # both ended cleanly
    second = sandbox.add_daily_run(audience_id, data_date="2026-11-03")  # while no triggerer runs
    for name in TRIGGERERS:
        cluster.start_triggerer(name)
    restarted = time.monotonic()

    runs = finished_runs(api, 2, cluster)
    figures["seconds_from_restart_to_second_dag_run_finished"] = round(time.monotonic() - restarted, 1)
    polls(sandbox, cluster, 4)  # the re-created watcher polled again and again...
    runs = dag_runs(api)
    assert len(runs) == 2  # ...without a second DAG run for the first daily run
    assert {r["state"] for r in runs} == {"success"}, cluster.diagnostics()
    assert len(landed(cluster, audience_id, second["id"])) == 4
    for name in TRIGGERERS:
        log = cluster.log(name).read_text(errors="replace")
        assert "keeps its watermark in memory" not in log  # Airflow 3.3: the asset state store
        assert sandbox.api_key not in log

    figures.update(daily_runs_added=2, consumer_dag_runs=len(runs), people_landed_per_run=4)
