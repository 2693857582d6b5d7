"""Distributed suite, scenario 2: one visitor pull to ``conf.path``, retried once if its worker dies."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag

from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator


@dag(
    dag_id="leadpipe_dist_visitors_pull",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["leadpipe", "test"],
)
def leadpipe_dist_visitors_pull():
    LeadpipeVisitorsToStorageOperator(
        task_id="pull",
        path="{{ dag_run.conf['path'] }}",
        leadpipe_conn_id="lp_dist_visitors",
        compression=None,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )


leadpipe_dist_visitors_pull()
