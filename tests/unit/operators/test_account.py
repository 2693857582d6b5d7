"""LeadpipeAccountStatusOperator against a mocked API (respx): XCom shape, checks, arguments."""

from __future__ import annotations

import logging

import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAccountError,
    LeadpipeAuthError,
    LeadpipeConfigError,
)
from airflow_provider_leadpipe.operators.account import LeadpipeAccountStatusOperator
from tests.unit.conftest import API_KEY, BASE_URL, account_data

ACCOUNT_URL = f"{BASE_URL}/v1/data/account"
UNCAPPED = {"used": 9000, "limit": None, "remaining": None, "percentUsed": None, "resetsAt": None}


@pytest.fixture
def task_log(capsys, caplog, monkeypatch):
    """What the operator logged: Airflow 3 prints via structlog to stdout, Airflow 2 uses logging."""
    monkeypatch.setattr(logging.getLogger("airflow.task"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    return lambda: caplog.text + capsys.readouterr().out


def run(op: LeadpipeAccountStatusOperator, data: dict, status_code: int = 200):
    with respx.mock(assert_all_called=True) as mock:
        body = {"data": data} if status_code == 200 else {"error": {"code": "HTTP_ERROR", "message": "no"}}
        mock.get(ACCOUNT_URL).respond(status_code, json=body)
        return op.execute(context={})


def test_pushes_the_data_object_with_api_key_names(leadpipe_conn, task_log):
    op = LeadpipeAccountStatusOperator(task_id="account")
    value = run(op, account_data())
    assert value == account_data()
    assert value["credits"]["remaining"] == 480
    assert value["credits"]["percentUsed"] == 4.0
    expected = "Leadpipe account: Acme (trial, healthy): 480 of 500 credits left, resets 2026-12-01T00:00:00Z"
    logged = [line for line in task_log().splitlines() if "Leadpipe account:" in line]
    assert logged and all(expected in line for line in logged)


def test_templated_conn_id_is_used(leadpipe_conn):
    leadpipe_conn("leadpipe_other", host="https://other.example")
    op = LeadpipeAccountStatusOperator(task_id="account", leadpipe_conn_id="{{ params.conn }}")
    assert "leadpipe_conn_id" in op.template_fields
    op.render_template_fields({"params": {"conn": "leadpipe_other"}})
    assert op.leadpipe_conn_id == "leadpipe_other"
    with respx.mock(assert_all_called=True) as mock:
        mock.get("https://other.example/v1/data/account").respond(200, json={"data": account_data()})
        assert op.execute(context={})["organization"]["name"] == "Acme"


def test_unhealthy_account_passes_by_default_and_fails_fast_when_asked(leadpipe_conn):
    expired = account_data(healthy=False, organization={"name": "Acme", "status": "expired"})
    assert run(LeadpipeAccountStatusOperator(task_id="a"), expired)["healthy"] is False

    op = LeadpipeAccountStatusOperator(task_id="a", require_healthy=True)
    with pytest.raises(
        LeadpipeAccountError,
        match=r"'Acme' fails the task's checks: account not healthy \(organization status 'expired'\)",
    ) as exc:
        run(op, expired)
    assert isinstance(exc.value, AirflowFailException)


@pytest.mark.parametrize(
    ("min_credits", "fails"),
    [(481, True), (480, False), (0, False), (480.5, True)],
)
def test_min_credits_compares_with_remaining(leadpipe_conn, min_credits, fails):
    op = LeadpipeAccountStatusOperator(task_id="a", min_credits=min_credits)
    if fails:
        with pytest.raises(LeadpipeAccountError, match=r"480 credits left, need 48"):
            run(op, account_data())
    else:
        assert run(op, account_data())["credits"]["remaining"] == 480


def test_uncapped_plan_never_fails_min_credits(leadpipe_conn):
    op = LeadpipeAccountStatusOperator(task_id="a", min_credits=10**9, require_healthy=True)
    assert run(op, account_data(credits=UNCAPPED))["credits"]["limit"] is None


def test_auth_failure_fails_fast_without_the_key(leadpipe_conn):
    op = LeadpipeAccountStatusOperator(task_id="a")
    with pytest.raises(LeadpipeAuthError) as exc:
        run(op, {}, status_code=401)
    assert isinstance(exc.value, AirflowFailException)
    assert API_KEY not in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"leadpipe_conn_id": ""}, "leadpipe_conn_id"),
        ({"leadpipe_conn_id": None}, "leadpipe_conn_id"),
        ({"require_healthy": "maybe"}, "require_healthy"),
        ({"min_credits": -1}, "min_credits"),
        ({"min_credits": "lots"}, "min_credits"),
        ({"min_credits": True}, "min_credits"),
        ({"min_credits": float("nan")}, "min_credits"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(LeadpipeConfigError, match=argument):
        LeadpipeAccountStatusOperator(task_id="a", **kwargs)


def test_arguments_are_keyword_only():
    # Airflow 3: TypeError; Airflow 2: "Use keyword arguments when initializing operators".
    with pytest.raises((TypeError, AirflowException)):
        LeadpipeAccountStatusOperator("leadpipe_default", task_id="a")  # type: ignore[misc]


def test_key_never_in_logs_xcom_or_repr(leadpipe_conn, task_log, caplog, capsys):
    op = LeadpipeAccountStatusOperator(task_id="a", min_credits=1000)
    with pytest.raises(LeadpipeAccountError) as exc:
        run(op, account_data())
    output = caplog.text + "".join(capsys.readouterr())  # everything, whatever the Airflow version
    assert "Leadpipe account: Acme" in output  # the log was captured
    seen = output + str(exc.value) + repr(op) + repr(op.hook)
    assert API_KEY not in seen


def test_conn_id_may_come_from_an_upstream_xcom():
    from airflow.providers.common.compat.sdk import DAG, task

    with DAG("conn_from_xcom", schedule=None):

        @task
        def pick() -> str:
            return "leadpipe_other"

        op = LeadpipeAccountStatusOperator(task_id="account", leadpipe_conn_id=pick())
    assert op.upstream_task_ids == {"pick"}


# -- one vocabulary with the sensor ----------------------------------------------------------------


def test_the_operator_and_the_sensor_take_the_same_checks_under_the_same_names():
    from airflow_provider_leadpipe.conditions.account import CHECKS
    from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor

    for cls in (LeadpipeAccountStatusOperator, LeadpipeAccountSensor):
        assert set(CHECKS) <= set(cls.template_fields)
    checks = {
        "require_healthy": True,
        "min_credits": 5,
        "max_percent_used": 90,
        "min_audience_slots": 1,
        "fail_on_statuses": ["expired"],
    }
    operator = LeadpipeAccountStatusOperator(task_id="a", **checks)
    sensor = LeadpipeAccountSensor(task_id="b", **checks)
    assert operator.condition == sensor.condition


def test_by_default_the_operator_checks_nothing(leadpipe_conn):
    # Unhealthy, expired, out of credits, all used, no intent product: still just reported.
    worst = account_data(
        healthy=False,
        organization={"name": "Acme", "status": "expired"},
        credits={"used": 500, "limit": 500, "remaining": 0, "percentUsed": 100.0, "resetsAt": None},
        intent=None,
    )
    assert run(LeadpipeAccountStatusOperator(task_id="a"), worst)["healthy"] is False


@pytest.mark.parametrize(
    ("kwargs", "data", "reason"),
    [
        (
            {"max_percent_used": 50},
            {"credits": {"used": 400, "limit": 500, "remaining": 100, "percentUsed": 80.0, "resetsAt": None}},
            "80% of credits used",
        ),
        ({"min_audience_slots": 3}, {}, "audience slots available, need 3"),
        ({"min_audience_slots": 1}, {"intent": None}, "no intent product"),
        (
            {"fail_on_statuses": "['expired', 'inactive']"},
            {"organization": {"name": "Acme", "status": "Inactive"}},
            "'Inactive', which waiting cannot fix",
        ),
    ],
)
def test_the_sensors_other_checks_fail_the_task(leadpipe_conn, kwargs, data, reason):
    with pytest.raises(LeadpipeAccountError, match=reason):
        run(LeadpipeAccountStatusOperator(task_id="a", **kwargs), account_data(**data))


def test_min_credits_zero_is_a_threshold_not_off(leadpipe_conn):
    assert LeadpipeAccountStatusOperator(task_id="a", min_credits=0).condition.min_credits == 0
    assert LeadpipeAccountStatusOperator(task_id="a").condition.min_credits is None
