"""LeadpipeAccountSensor in poke, reschedule and deferrable mode, driven the way Airflow drives it."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import time
from datetime import datetime, timezone
from unittest import mock

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)

from airflow_provider_leadpipe.conditions.account import LeadpipeAccountError
from airflow_provider_leadpipe.exceptions import (
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeError,
    LeadpipeResponseError,
)
from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from tests.unit.conftest import API_KEY
from tests.unit.triggers.account_api import AccountAPI, account

try:
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 2.x
    from airflow.exceptions import AirflowRescheduleException

MODES = ["poke", "reschedule", "deferrable"]
WAITING_LINE = "waiting: 0 credits left, need 100; credits reset 2026-12-01T00:00:00Z"


def sensor(mode: str = "poke", **kwargs) -> LeadpipeAccountSensor:
    # The default timeout is a safety net: a test whose outcome is a timeout sets its own.
    defaults = {"task_id": "gate", "min_credits": 100, "poke_interval": 0.02, "timeout": 600}
    return LeadpipeAccountSensor(
        mode="poke" if mode == "deferrable" else mode,
        deferrable=mode == "deferrable",
        **{**defaults, **kwargs},
    )


class Driver:
    """Runs a sensor the way Airflow's task runner does, in one of the three modes."""

    def __init__(self):
        self.deferrals: list[TaskDeferred] = []
        self.reschedules = 0

    def run(self, task: LeadpipeAccountSensor):
        if task.deferrable:
            return self._deferrable(task)
        if task.mode == "reschedule":
            return self._reschedule(task)
        return task.execute({})

    def _reschedule(self, task):
        # The first try's start date comes from the task instance (Airflow 3) or the DB (Airflow 2).
        ti = mock.Mock(max_tries=0)
        ti.get_first_reschedule_date.return_value = None
        first_start = mock.patch(
            "airflow.sensors.base._orig_start_date",
            side_effect=lambda **_: ti.get_first_reschedule_date.return_value,
            create=True,
        )
        with first_start:
            while True:
                try:
                    return task.execute({"ti": ti})
                except AirflowRescheduleException as exc:
                    self.reschedules += 1
                    if ti.get_first_reschedule_date.return_value is None:
                        ti.get_first_reschedule_date.return_value = datetime.now(timezone.utc)
                    time.sleep(max(0.0, (exc.reschedule_date - datetime.now(timezone.utc)).total_seconds()))

    def _deferrable(self, task):
        step = functools.partial(task.execute, {})
        while True:
            try:
                return step()
            except TaskDeferred as deferred:
                self.deferrals.append(deferred)
                assert isinstance(deferred.trigger, LeadpipeAccountTrigger)
                assert deferred.method_name == "execute_complete"
                # What the triggerer does: rebuild the trigger from its serialized form, run it.
                _classpath, kwargs = deferred.trigger.serialize()
                trigger = LeadpipeAccountTrigger(**json.loads(json.dumps(kwargs)))
                event = asyncio.run(trigger.run().__anext__())
                # What the worker does: resume a fresh copy of the task with the event (and the
                # method kwargs, through JSON as the metadata DB stores them).
                next_kwargs = json.loads(json.dumps({**(deferred.kwargs or {}), "event": event.payload}))
                resumed = copy.deepcopy(task)
                step = functools.partial(resumed.resume_execution, deferred.method_name, next_kwargs, {})


@pytest.fixture
def driver():
    return Driver()


# -- construction --------------------------------------------------------------------------------


def test_arguments_are_keyword_only_and_values_templated():
    with pytest.raises((TypeError, AirflowException)):  # Airflow 2.x raises its own error
        LeadpipeAccountSensor("gate")  # type: ignore[misc]
    assert set(LeadpipeAccountSensor.template_fields) == {
        "leadpipe_conn_id",
        "require_healthy",
        "min_credits",
        "max_percent_used",
        "min_audience_slots",
        "fail_on_statuses",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_credits": -1}, "LeadpipeAccountSensor 'gate': min_credits must be a number >= 0"),
        ({"max_percent_used": 120}, "'gate': max_percent_used must be a number from 0 to 100"),
        ({"min_audience_slots": "many"}, "'gate': min_audience_slots must be a whole number"),
        ({"leadpipe_conn_id": ""}, "leadpipe_conn_id must be a non-empty string"),
    ],
)
def test_bad_values_fail_at_parse_time(kwargs, message):
    with pytest.raises(LeadpipeConfigError, match=message):
        sensor(**kwargs)


def test_templated_values_are_checked_once_rendered():
    task = sensor(min_credits="{{ params.credits }}", max_percent_used="{{ params.pct }}")
    task.min_credits, task.max_percent_used = "500", "90.5"  # what rendering produces
    assert (task.condition.min_credits, task.condition.max_percent_used) == (500, 90.5)
    task.min_credits = "five hundred"
    with pytest.raises(LeadpipeConfigError, match="min_credits must be a number >= 0"):
        task.poke({})


def test_deferrable_defaults_to_the_operators_default_deferrable_setting(monkeypatch):
    assert LeadpipeAccountSensor(task_id="a").deferrable is False
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert LeadpipeAccountSensor(task_id="b").deferrable is True
    assert LeadpipeAccountSensor(task_id="c", deferrable=False).deferrable is False


def test_hook_is_cached_and_uses_the_rendered_connection_id():
    task = sensor(leadpipe_conn_id="{{ params.conn }}")
    task.leadpipe_conn_id = "leadpipe_default"
    assert task.hook is task.hook
    assert task.hook.leadpipe_conn_id == "leadpipe_default"


# -- poke ----------------------------------------------------------------------------------------


def test_poke_returns_the_account_status_as_xcom(task_log):
    data = account(480)
    with respx.mock() as router:
        AccountAPI(router, data)
        result = sensor().poke({})
    assert isinstance(result, PokeReturnValue)
    assert result.is_done is True
    assert result.xcom_value == data


def test_poke_logs_one_line_saying_why_it_waits(task_log):
    with respx.mock() as router:
        AccountAPI(router, account(0))
        result = sensor().poke({})
    assert not result.is_done
    assert task_log.waiting() == [WAITING_LINE]


# -- every mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_succeeds_after_credits_recover_over_a_few_polls(mode, driver, task_log):
    data = account(480)
    with respx.mock() as router:
        api = AccountAPI(router, account(0), account(0), account(50), data)
        xcom = driver.run(sensor(mode))
    assert xcom == data
    assert api.calls == 4
    assert set(api.keys) == {API_KEY}
    assert task_log.waiting()[:1] == [WAITING_LINE]
    assert "waiting: 50 credits left, need 100; credits reset 2026-12-01T00:00:00Z" in task_log.waiting()
    if mode == "reschedule":
        assert driver.reschedules == 3
    if mode == "deferrable":
        assert len(driver.deferrals) == 1


@pytest.mark.parametrize("mode", MODES)
def test_already_satisfied_succeeds_on_the_first_poke_without_deferring(mode, driver):
    with respx.mock() as router:
        api = AccountAPI(router, account(480))
        assert driver.run(sensor(mode)) == account(480)
    assert api.calls == 1
    assert driver.deferrals == [] and driver.reschedules == 0


@pytest.mark.parametrize("mode", MODES)
def test_transient_failures_count_as_not_yet(mode, driver, task_log):
    with respx.mock() as router:
        api = AccountAPI(router, 503, 429, account(480))
        assert driver.run(sensor(mode)) == account(480)
    assert api.calls == 3
    assert task_log.waiting()[0].startswith("waiting: Leadpipe API unavailable, will retry:")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("soft_fail", [False, True])
def test_timeout(mode, soft_fail, driver):
    with respx.mock() as router:
        AccountAPI(router, account(0))  # never enough credits: the timeout is the only way out
        task = sensor(mode, timeout=0.15, soft_fail=soft_fail)
        with pytest.raises(AirflowSkipException if soft_fail else AirflowSensorTimeout):
            driver.run(task)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (401, LeadpipeAuthError, "HTTP 401"),
        (403, LeadpipeAuthError, "HTTP 403"),
        (account(500, healthy=False, org_status="expired"), LeadpipeAccountError, "'expired'"),
    ],
    ids=["401", "403", "expired"],
)
@pytest.mark.parametrize("when", ["first poke", "while waiting"])
def test_fails_fast(mode, answer, error, message, when, driver):
    answers = [answer] if when == "first poke" else [account(0), account(0), answer]
    with respx.mock() as router:
        api = AccountAPI(router, *answers)  # the last answer repeats
        with pytest.raises(error, match=message) as exc:
            driver.run(sensor(mode))
    assert isinstance(exc.value, AirflowFailException)  # no task retries
    # No waiting and no hook retries. After a 401/403 the trigger reads its connection again (the
    # key may have been rotated); the same key is not sent again.
    assert api.calls == len(answers)
    if mode == "deferrable":
        assert len(driver.deferrals) == (0 if when == "first poke" else 1)


@pytest.mark.parametrize("mode", MODES)
def test_audience_slots_without_intent_fail_fast(mode, driver):
    with respx.mock() as router:
        AccountAPI(router, account(480, intent=None))
        with pytest.raises(LeadpipeAccountError, match="no intent product"):
            driver.run(sensor(mode, min_audience_slots=1))


@pytest.mark.parametrize("mode", MODES)
def test_a_malformed_response_fails_and_soft_fail_does_not_hide_it(mode, driver):
    # poke mode lets this through soft_fail; deferred mode must agree (apache/airflow#71255).
    with respx.mock() as router:
        AccountAPI(router, account(0), {"healthy": True})
        with pytest.raises(LeadpipeResponseError, match="organization"):
            driver.run(sensor(mode, soft_fail=True))


# -- deferral details ----------------------------------------------------------------------------


def test_defers_with_the_wall_clock_deadline_and_a_framework_timeout_after_it():
    task = sensor("deferrable", timeout=600, poke_interval=30, min_audience_slots=2)
    with respx.mock() as router:
        AccountAPI(router, account(0))
        before = time.time()
        with pytest.raises(TaskDeferred) as exc:
            task.execute({})
        after = time.time()
    trigger = exc.value.trigger
    assert before + 600 <= trigger.deadline <= after + 600
    assert trigger.poll_interval == 30
    assert trigger.leadpipe_conn_id == "leadpipe_default"
    assert trigger.condition == task.condition
    # The trigger's own timeout event must come first; the framework timeout is only a backstop.
    assert exc.value.timeout.total_seconds() >= trigger.deadline - after + 60
    assert API_KEY not in json.dumps(trigger.serialize())


def test_framework_deferral_timeout_is_a_timeout_and_soft_fail_skips_it():
    try:
        from airflow.sdk.bases.operator import TriggerFailureReason

        fail = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    except ImportError:  # Airflow 2.x reports it as a TaskDeferralError
        fail = {"error": "Trigger/execution timeout"}
    with pytest.raises(AirflowSensorTimeout, match=r"(?i)timeout"):
        sensor("deferrable").resume_execution("__fail__", fail, {})
    with pytest.raises(AirflowSkipException):
        sensor("deferrable", soft_fail=True).resume_execution("__fail__", fail, {})


def test_a_crashed_trigger_fails_and_soft_fail_does_not_hide_it():
    with pytest.raises(AirflowException, match="Trigger failure"):
        sensor("deferrable", soft_fail=True).resume_execution("__fail__", {"error": "Trigger failure"}, {})


def test_timeout_already_passed_at_first_poke_does_not_defer():
    with respx.mock() as router:
        AccountAPI(router, account(0))
        with pytest.raises(AirflowSensorTimeout):
            sensor("deferrable", timeout=0).execute({})


# -- execute_complete ----------------------------------------------------------------------------


def test_execute_complete_success_returns_the_account_dict():
    data = account(480)
    assert sensor().execute_complete({}, {"status": "success", "account": data, "message": "ready"}) == data


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        (
            {"status": "failure", "error": "LeadpipeAuthError", "message": "bad key", "http_status": 401},
            LeadpipeAuthError,
            "bad key",
        ),
        (
            {"status": "failure", "error": "LeadpipeAccountError", "message": "expired", "http_status": None},
            LeadpipeAccountError,
            "expired",
        ),
        (
            {"status": "failure", "error": "SomethingNew", "message": "odd", "http_status": 403},
            LeadpipeAuthError,
            "odd",
        ),
        (
            {"status": "error", "error": "LeadpipeResponseError", "message": "bad shape"},
            LeadpipeResponseError,
            "bad shape",
        ),
        (
            {"status": "error", "error": "RuntimeError", "message": "boom"},
            LeadpipeError,
            "RuntimeError: boom",
        ),
        ({"status": "timeout", "message": "too late"}, AirflowSensorTimeout, "too late"),
        ({"status": "success", "message": "no account"}, LeadpipeError, "without an 'account' object"),
        ({"status": "success", "account": {"healthy": True}}, LeadpipeResponseError, "organization"),
        ({"status": "done"}, LeadpipeError, "unknown status 'done'"),
        ({}, LeadpipeError, "unknown status None"),
        (None, LeadpipeError, "without an event"),
        ("success", LeadpipeError, "without an event"),
    ],
)
def test_execute_complete_validates_the_event(event, error, message):
    with pytest.raises(error, match=message) as exc:
        sensor().execute_complete({}, event)
    if isinstance(event, dict) and event.get("status") == "failure":
        assert isinstance(exc.value, AirflowFailException)


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        ({"status": "timeout", "message": "late"}, AirflowSkipException),
        ({"status": "failure", "error": "LeadpipeAuthError", "message": "bad key"}, AirflowSkipException),
        ({"status": "error", "error": "LeadpipeConfigError", "message": "no key"}, LeadpipeConfigError),
        ({"status": "surprise"}, LeadpipeError),
        (None, LeadpipeError),
    ],
)
def test_soft_fail_after_deferral_skips_only_what_poke_mode_skips(event, outcome):
    task = sensor("deferrable", soft_fail=True)
    with pytest.raises(outcome):
        task.resume_execution("execute_complete", {"event": event}, {})


def test_never_fail_still_skips_everything():
    task = sensor("deferrable", never_fail=True)
    with pytest.raises(AirflowSkipException):
        task.resume_execution("execute_complete", {"event": None}, {})


# -- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_key_never_reaches_logs_xcom_or_errors(mode, driver, task_log, caplog, capsys):
    def echo_key(request):  # a server that echoes the key it rejects
        key = request.headers["X-API-Key"]
        return httpx.Response(
            401, json={"error": {"code": "HTTP_ERROR", "message": f"Invalid API key {key}"}}
        )

    texts = []
    with respx.mock() as router:
        AccountAPI(router, account(0), echo_key)
        with pytest.raises(LeadpipeAuthError) as exc:
            driver.run(sensor(mode))
        texts.append(str(exc.value))
        AccountAPI(router, account(480))
        texts.append(json.dumps(driver.run(sensor(mode))))
    texts += [str(task_log), caplog.text, *capsys.readouterr()]
    texts += [json.dumps(d.trigger.serialize()) for d in driver.deferrals]
    assert not [t for t in texts if API_KEY in t]


# -- control flow ----------------------------------------------------------------------------------


def test_poke_never_defers_even_when_deferrable():
    task = sensor("deferrable")
    with respx.mock() as router:
        api = AccountAPI(router, account(0), account(480))
        assert task.poke({}).is_done is False
        result = task.poke({})
    assert (result.is_done, result.xcom_value) == (True, account(480))
    assert api.calls == 2


def test_the_sensor_accepts_an_xcom_arg_connection_id():
    try:
        from airflow.sdk import DAG, task
    except ImportError:  # Airflow 2.x
        from airflow import DAG
        from airflow.decorators import task

    with DAG("conn_from_xcom", schedule=None):

        @task
        def pick() -> str:
            return "leadpipe_default"

        gate = LeadpipeAccountSensor(task_id="gate", leadpipe_conn_id=pick())
    assert hasattr(gate.leadpipe_conn_id, "resolve")


def test_hook_params_are_handed_to_the_trigger():
    task = sensor("deferrable", hook_params={"timeout": 7, "max_retries": 1})
    with respx.mock() as router:
        AccountAPI(router, account(0))
        with pytest.raises(TaskDeferred) as exc:
            task.execute({})
    _classpath, kwargs = exc.value.trigger.serialize()
    assert kwargs["hook_params"] == {"timeout": 7, "max_retries": 1}
