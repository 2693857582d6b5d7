"""Test DAG: a task with ``retries=2`` reading the account through the hook.

The connection id comes from the run's params, so tests/integration/test_task_retries.py can point
it at a key the sandbox refuses (401, 403: the task must fail at once) or at failing servers (5xx:
Airflow must retry it). The hook itself does not retry (``max_retries=0``), so every Airflow try is
exactly one request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task

from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook


@dag(
    dag_id="leadpipe_test_task_retries",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"conn_id": "leadpipe_default"},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
    tags=["leadpipe", "test"],
)
def leadpipe_test_task_retries():
    @task
    def account_status(**context) -> dict:
        with LeadpipeHook(context["params"]["conn_id"], max_retries=0) as hook:
            return hook.get_account_status().to_dict()

    account_status()


leadpipe_test_task_retries()
