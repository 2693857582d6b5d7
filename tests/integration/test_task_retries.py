"""A task with retries, run by dag.test() against the sandbox: an auth failure is never retried by
Airflow (one try, failed), while a server failure is (every try used)."""

from __future__ import annotations

import pytest

from leadpipe_sandbox import Fault
from tests.integration.dag_runs import load_dag, task_states

pytestmark = pytest.mark.integration

DAG_ID = "leadpipe_test_task_retries"
ACCOUNT = "/v1/data/account"
CONN_ID = "leadpipe_retries"


def run(leadpipe_sandbox, monkeypatch, api_key: str) -> tuple[str, int]:
    """Run the DAG on a connection with ``api_key``: the task's final state and its tries."""
    monkeypatch.setenv(*leadpipe_sandbox.connection_env(CONN_ID, api_key=api_key).popitem())
    dag_run = load_dag(DAG_ID).test(run_conf={"conn_id": CONN_ID})
    (ti,) = dag_run.get_task_instances()
    assert task_states(dag_run) == {"account_status": "failed"}
    return getattr(dag_run.state, "value", dag_run.state), ti.try_number


@pytest.mark.parametrize(
    ("api_key", "status"),
    [("sk_test_no_such_key", 401), ("sk_test_revoked", 403)],
    ids=["401 unknown key", "403 revoked key"],
)
def test_an_auth_failure_fails_the_task_on_its_first_try_despite_retries(
    airflow_db, leadpipe_sandbox, monkeypatch, api_key, status
):
    state, tries = run(leadpipe_sandbox, monkeypatch, api_key)

    assert (state, tries) == ("failed", 1)
    assert leadpipe_sandbox.request_count(ACCOUNT) == 1
    assert leadpipe_sandbox.request_count(ACCOUNT, status=status) == 1


def test_a_server_failure_uses_every_try(airflow_db, leadpipe_sandbox, monkeypatch):
    """The counter-proof: the same DAG does retry, so the test above can tell the difference."""
    leadpipe_sandbox.queue_faults(Fault.error(503, count=10))

    state, tries = run(leadpipe_sandbox, monkeypatch, leadpipe_sandbox.api_key)

    assert (state, tries) == ("failed", 3)
    assert leadpipe_sandbox.request_count(ACCOUNT, status=503) == 3
