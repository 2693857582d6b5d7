"""Test DAGs: a templated list argument (``fail_on_statuses="{{ params.fail_on }}"``) on the account
operator and the sensor, rendered as a string (the default) and as a native object
(``render_template_as_native_obj=True``). Used by tests/integration/test_templated_lists.py.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.account import LeadpipeAccountStatusOperator
from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor

for native in (False, True):
    with DAG(
        dag_id="leadpipe_test_templated_lists" + ("_native" if native else ""),
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"fail_on": ["expired"]},
        render_template_as_native_obj=native,
        tags=["leadpipe", "test"],
    ):
        LeadpipeAccountStatusOperator(task_id="check_account", fail_on_statuses="{{ params.fail_on }}")
        LeadpipeAccountSensor(
            task_id="wait_for_account",
            fail_on_statuses="{{ params.fail_on }}",
            min_credits=None,
            poke_interval=0.2,
            timeout=20,
        )
