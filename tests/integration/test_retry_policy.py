"""LeadpipeRetryPolicy in real Airflow 3.3 (dag.test): the provider's typed errors decide how many
tries a task with ``retries=2`` gets."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from tests.integration.dag_runs import load_dag, task_states

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="retry_policy= arrived in Airflow 3.3"),
]


@pytest.mark.parametrize(
    ("error", "tries"),
    [
        ("config", 1),  # not an AirflowFailException: without the policy Airflow would retry it
        ("server", 3),
        ("rate_limit", 3),  # Retry-After: 0
        ("response", 3),  # Airflow's default: retried
    ],
)
def test_the_error_class_decides_the_tries(airflow_db, error, tries):
    dag_run = load_dag("leadpipe_test_retry_policy").test(run_conf={"error": error})
    (ti,) = dag_run.get_task_instances()
    assert task_states(dag_run) == {"pull": "failed"}
    assert ti.try_number == tries
