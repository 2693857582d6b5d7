"""leadpipe_account_status_downstream end to end: the status read through Jinja and TaskFlow."""

from __future__ import annotations

import pytest
import respx
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

from tests.integration.dag_runs import (
    NO_LOGICAL_DATE,
    FakeAccount,
    example_task_ids,
    load_dag,
    task_states,
    without_airflow_secret_debug,
    xcom_value,
)

pytestmark = pytest.mark.integration
DAG_ID = "leadpipe_account_status_downstream"
KEY = "sk_test_DOWNSTREAMKEY_0123456789"


def test_parses_without_import_errors():
    assert example_task_ids(DAG_ID) == {"account", "credits_left", "pull_budget"}


@pytest.fixture
def respx_mock():
    with respx.mock(assert_all_mocked=False, assert_all_called=False) as mock:
        yield mock


def test_status_flows_to_jinja_and_taskflow(airflow_db, monkeypatch, respx_mock, capsys):
    account = FakeAccount(monkeypatch, respx_mock, key=KEY)
    account.used = 120

    run = load_dag(DAG_ID).test(**NO_LOGICAL_DATE)

    if NO_LOGICAL_DATE:
        assert run.logical_date is None  # like a run triggered through the API
    assert run.state == "success"
    assert task_states(run) == {"account": "success", "credits_left": "success", "pull_budget": "success"}
    status = xcom_value(run, "account")
    assert status["credits"] == {
        "used": 120,
        "limit": 1000,
        "remaining": 880,
        "percentUsed": 12.0,
        "resetsAt": account.resets_at.to_iso8601_string(),
    }
    # Rendered by Jinja, echoed by bash (Airflow 3 reads the pushed "880" back as JSON: 880).
    assert str(xcom_value(run, "credits_left")) == "880"
    assert xcom_value(run, "pull_budget") == {"organization": "Acme", "budget": 830}
    out = capsys.readouterr().out
    assert "Acme has 880 credits left" in out
    assert KEY not in without_airflow_secret_debug(out)


@pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS and AIRFLOW_V_3_0_PLUS,
    reason="Airflow 3.0's execution API rejects an XCom whose value is None (HTTP 422 'Field "
    "required'), and this DAG pushes budget=None for an uncapped plan; fine on 2.11 and 3.1+",
)
def test_conn_id_comes_from_the_run_conf(airflow_db, monkeypatch, respx_mock):
    default = FakeAccount(monkeypatch, respx_mock, key=KEY)
    other = FakeAccount(monkeypatch, respx_mock, key="sk_test_OTHER", conn_id="leadpipe_other")
    other.name, other.limit = "Other Org", None  # an uncapped plan

    run = load_dag(DAG_ID).test(run_conf={"leadpipe_conn_id": "leadpipe_other"}, **NO_LOGICAL_DATE)

    assert run.state == "success"
    assert not default.route.called and other.route.called
    assert xcom_value(run, "account")["organization"]["name"] == "Other Org"
    assert str(xcom_value(run, "credits_left")) == "None"
    assert xcom_value(run, "pull_budget") == {"organization": "Other Org", "budget": None}
