"""dag.test() of a DAG gated by a deferrable LeadpipeAccountSensor, against the API sandbox.

The trigger runs inline (dag.test has no triggerer); the sandbox's credits come back after a few
account calls. Both kinds of connection are covered: an ``AIRFLOW_CONN_*`` env var, and a
connection stored in the metadata DB (which Airflow 3.3.2's inline trigger runner cannot read from
async code; the hook falls back to a threaded lookup).
"""

from __future__ import annotations

import pytest

from tests.integration.dag_runs import load_dag, task_states, xcom_value

pytestmark = pytest.mark.integration

DAG_ID = "leadpipe_test_sensor_deferrable"
ACCOUNT = "/v1/data/account"


@pytest.fixture
def sensor_dag(airflow_db):
    return load_dag(DAG_ID)


@pytest.fixture(params=["env-var connection", "metadata-DB connection"])
def conn_id(request, leadpipe_sandbox, monkeypatch):
    """A connection to the sandbox, of either kind; removed again afterwards."""
    if request.param == "env-var connection":
        conn_id = "leadpipe_it_env"
        monkeypatch.setenv(*leadpipe_sandbox.connection_env(conn_id).popitem())
        yield conn_id
        return
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    conn_id = "leadpipe_it_db"
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(
            Connection(
                conn_id=conn_id,
                conn_type="leadpipe",
                host=leadpipe_sandbox.url,
                password=leadpipe_sandbox.api_key,
            )
        )
    yield conn_id
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()


def test_deferrable_sensor_waits_until_credits_recover(sensor_dag, conn_id, leadpipe_sandbox):
    from airflow.utils.state import DagRunState

    leadpipe_sandbox.exhaust_credits(recover_after_account_calls=3)

    dag_run = sensor_dag.test(run_conf={"conn_id": conn_id, "min_credits": 100})

    assert dag_run.state == DagRunState.SUCCESS, task_states(dag_run)
    # 1 poke before deferring + 2 more exhausted answers in the trigger, then the recovered one.
    assert leadpipe_sandbox.request_count(ACCOUNT) == 4
    assert leadpipe_sandbox.request_count(ACCOUNT, status=200) == 4
    account = xcom_value(dag_run, "wait_for_credits")
    assert account["credits"]["remaining"] == 500
    assert account["healthy"] is True
    assert xcom_value(dag_run, "credits_left") == 500


def test_expired_organization_fails_the_sensor_without_waiting(sensor_dag, conn_id, leadpipe_sandbox):
    from airflow.utils.state import DagRunState

    leadpipe_sandbox.set_organization(status="expired")

    dag_run = sensor_dag.test(run_conf={"conn_id": conn_id, "min_credits": 1})

    assert dag_run.state == DagRunState.FAILED
    assert task_states(dag_run)["wait_for_credits"] == "failed"
    assert leadpipe_sandbox.request_count(ACCOUNT) == 1  # failed on the first poke, never deferred
