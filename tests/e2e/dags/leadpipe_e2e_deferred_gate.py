"""E2E only: the deferrable LeadpipeAccountSensor on its own, resumed by the real triggerer.

The connection `leadpipe_e2e_gate` is created through the REST API by the test, in the metadata DB.
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_leadpipe.sensors.leadpipe import LeadpipeAccountSensor

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

with DAG(
    dag_id="leadpipe_e2e_deferred_gate",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["leadpipe", "e2e"],
):
    LeadpipeAccountSensor(
        task_id="wait_for_credits",
        leadpipe_conn_id="leadpipe_e2e_gate",
        min_credits=100,
        poke_interval=2,
        timeout=180,
        deferrable=True,
    )
