"""Distributed suite, scenario 1: 10 deferrable audience runs of one audience (``conf.audience_id``).

Each task has its own default idempotency key (dag_id, run_id, task_id, map index): ten runs.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag

from airflow_provider_leadpipe.operators.audiences import LeadpipeRunAudienceOperator

RUNS = 10
POLL_INTERVAL = float(os.environ.get("LEADPIPE_DIST_POKE_INTERVAL", "2"))


@dag(
    dag_id="leadpipe_dist_audience_runs",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_tasks=RUNS,
    tags=["leadpipe", "test"],
)
def leadpipe_dist_audience_runs():
    for number in range(RUNS):
        LeadpipeRunAudienceOperator(
            task_id=f"run_{number}",
            audience_id="{{ dag_run.conf['audience_id'] }}",
            leadpipe_conn_id="lp_dist_orbit",
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=3600,  # a safety net: the suite waits for events, not for this
            # One request per check: the suite holds the runs back with 503s until the kill.
            hook_params={"max_retries": 0},
        )


leadpipe_dist_audience_runs()
