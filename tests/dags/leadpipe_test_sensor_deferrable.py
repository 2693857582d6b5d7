"""Test DAG: a deferrable LeadpipeAccountSensor gating a task that reads its XCom.

The connection id and the credits needed come from the run's params (templated), so one DAG serves
the env-var and the DB-stored connection tests (tests/integration/test_sensor_dag.py).
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task

from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor


@dag(
    dag_id="leadpipe_test_sensor_deferrable",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"conn_id": "leadpipe_default", "min_credits": 100},
    tags=["leadpipe", "test"],
)
def leadpipe_test_sensor_deferrable():
    gate = LeadpipeAccountSensor(
        task_id="wait_for_credits",
        leadpipe_conn_id="{{ params.conn_id }}",
        min_credits="{{ params.min_credits }}",
        poke_interval=0.5,
        timeout=120,
        deferrable=True,
    )

    @task
    def credits_left(account: dict) -> float:
        return account["credits"]["remaining"]

    credits_left(gate.output)


leadpipe_test_sensor_deferrable()
