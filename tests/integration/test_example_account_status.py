"""leadpipe_account_status_downstream end to end: the status read through Jinja and TaskFlow."""

from __future__ import annotations

import pendulum
import pytest

from tests.integration.dag_runs import (
    NO_LOGICAL_DATE,
    dag_run_output,
    example_task_ids,
    load_dag,
    sandbox_account,
    task_log_to_this_tests_stdout,
    task_states,
    xcom_value,
)

pytestmark = pytest.mark.integration
DAG_ID = "leadpipe_account_status_downstream"
KEY = "sk_test_DOWNSTREAMKEY_0123456789"
ACCOUNT = "/v1/data/account"


def test_parses_without_import_errors():
    assert example_task_ids(DAG_ID) == {"account", "credits_left", "pull_budget"}


def test_status_flows_to_jinja_and_taskflow(airflow_db, leadpipe_sandbox, monkeypatch, capsys):
    resets_at = pendulum.now("UTC").add(days=30).start_of("second")
    sandbox_account(leadpipe_sandbox, monkeypatch, KEY, resets_at=resets_at)
    leadpipe_sandbox.set_credits(used=120, api_key=KEY)
    task_log_to_this_tests_stdout(monkeypatch)

    run = load_dag(DAG_ID).test(**NO_LOGICAL_DATE)

    if NO_LOGICAL_DATE:
        assert run.logical_date is None  # like a run triggered through the API
    assert run.state == "success"
    assert task_states(run) == {"account": "success", "credits_left": "success", "pull_budget": "success"}
    credits = xcom_value(run, "account")["credits"]
    assert pendulum.parse(credits.pop("resetsAt")) == resets_at  # the API's own ISO string
    assert credits == {"used": 120, "limit": 1000, "remaining": 880, "percentUsed": 12.0}
    # Rendered by Jinja, echoed by bash (Airflow 3 reads the pushed "880" back as JSON: 880).
    assert str(xcom_value(run, "credits_left")) == "880"
    assert xcom_value(run, "pull_budget") == {"organization": "Acme", "budget": 830}
    assert leadpipe_sandbox.request_count(ACCOUNT, api_key=KEY, status=200) == 1
    out = capsys.readouterr().out
    assert "Acme has 880 credits left" in out
    assert KEY not in dag_run_output(out)


def test_conn_id_comes_from_the_run_conf(airflow_db, leadpipe_sandbox, monkeypatch):
    other_key = "sk_test_OTHER_0123456789"
    sandbox_account(leadpipe_sandbox, monkeypatch, KEY)
    # An uncapped plan behind another connection.
    sandbox_account(
        leadpipe_sandbox,
        monkeypatch,
        other_key,
        conn_id="leadpipe_other",
        organization="Other Org",
        limit=None,
    )

    run = load_dag(DAG_ID).test(run_conf={"leadpipe_conn_id": "leadpipe_other"}, **NO_LOGICAL_DATE)

    assert run.state == "success"
    assert leadpipe_sandbox.request_count(ACCOUNT, api_key=KEY) == 0
    assert leadpipe_sandbox.request_count(ACCOUNT, api_key=other_key) == 1
    assert xcom_value(run, "account")["organization"]["name"] == "Other Org"
    assert str(xcom_value(run, "credits_left")) == "None"
    assert xcom_value(run, "pull_budget") == {"organization": "Other Org", "budget": "unlimited"}
    assert task_states(run) == {"account": "success", "credits_left": "success", "pull_budget": "success"}
