"""Both pulls that report lineage, for tests/integration/test_lineage.py (paths and ids from params)."""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

with DAG(
    "leadpipe_test_lineage",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1),
    catchup=False,
    params={"out_dir": "/tmp", "audience_id": "", "run_id": ""},
) as dag:
    LeadpipeVisitorsToStorageOperator(
        task_id="pull_visitors", path="{{ params.out_dir }}/visitors.jsonl", timeframe="7d"
    )
    LeadpipeAudienceResultsToStorageOperator(
        task_id="pull_people",
        audience_id="{{ params.audience_id }}",
        audience_run_id="{{ params.run_id }}",
        path="{{ params.out_dir }}/people.jsonl",
    )
