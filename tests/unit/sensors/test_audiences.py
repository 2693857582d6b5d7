"""LeadpipeAudienceRunSensor in poke and deferrable mode against the sandbox over loopback HTTP."""

from __future__ import annotations

import time

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred

from airflow_provider_leadpipe.exceptions import LeadpipeAudienceRunError, LeadpipeConfigError
from airflow_provider_leadpipe.sensors.audiences import LeadpipeAudienceRunSensor
from airflow_provider_leadpipe.triggers.audiences import LeadpipeAudienceRunTrigger

UUID = "3f2c0e1a-1111-4222-8333-944455556666"


@pytest.fixture
def audience(leadpipe_sandbox):
    return leadpipe_sandbox.create_audience("Sensor audience", people=50)


def sensor(audience_id, **kwargs) -> LeadpipeAudienceRunSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 600)  # a safety net: a test whose outcome is a timeout sets its own
    return LeadpipeAudienceRunSensor(task_id="wait", audience_id=audience_id, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"audience_id": "x"}, "audience_id must be a UUID"),
        ({"audience_id": UUID, "audience_run_id": "y"}, "audience_run_id must be a UUID"),
        ({"audience_id": UUID, "min_data_date": "2026-5-4"}, "min_data_date must be a date"),
        ({"audience_id": UUID, "min_data_date": "2026-02-30"}, "min_data_date must be a date"),
        ({"audience_id": UUID, "leadpipe_conn_id": " "}, "leadpipe_conn_id"),
    ],
)
def test_bad_literals_fail_at_parse_naming_task_and_argument(kwargs, message):
    with pytest.raises(LeadpipeConfigError, match=message) as caught:
        LeadpipeAudienceRunSensor(task_id="wait", **kwargs)
    assert "LeadpipeAudienceRunSensor 'wait'" in str(caught.value)


def test_templated_values_are_checked_once_rendered(leadpipe_sandbox):
    op = sensor("{{ params.audience }}", min_data_date="{{ ds }}")  # accepted at parse
    op.audience_id, op.min_data_date = UUID, "yesterday"
    with pytest.raises(LeadpipeConfigError, match="min_data_date must be a date"):
        op.execute({})
    assert leadpipe_sandbox.request_count() == 0


def test_poke_mode_waits_for_a_daily_run_of_the_date_and_returns_it(leadpipe_sandbox, audience):
    leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-03")
    op = sensor(audience["id"], min_data_date="2026-05-03", mode="poke")
    run = op.execute({})
    assert (run["dataDate"], run["status"], run["runType"]) == ("2026-05-03", "completed", "daily")


def test_poke_mode_times_out_when_no_run_is_recent_enough(leadpipe_sandbox, audience):
    leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-03")
    with pytest.raises(AirflowSensorTimeout):  # no run of 2026-05-04 ever comes: only the timeout ends it
        sensor(audience["id"], min_data_date="2026-05-04", timeout=0.3).execute({})


def test_failed_run_fails_the_sensor_at_once(leadpipe_sandbox, audience):
    leadpipe_sandbox.fail_next_run(audience["id"], error_code="QUOTA", error_message="over quota")
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_polls=0)
    from tests.unit.triggers.test_audiences import queue_run

    run_id = queue_run(leadpipe_sandbox, audience["id"])
    started = time.monotonic()
    with pytest.raises(LeadpipeAudienceRunError, match="QUOTA"):
        sensor(audience["id"], audience_run_id=run_id, timeout=30).execute({})
    assert time.monotonic() - started < 10


def test_deferrable_checks_once_then_defers_with_the_same_condition(leadpipe_sandbox, audience):
    op = sensor(audience["id"], min_data_date="2026-05-04", deferrable=True, timeout=100)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, LeadpipeAudienceRunTrigger)
    _, kwargs = trigger.serialize()
    assert (kwargs["audience_id"], kwargs["min_data_date"], kwargs["audience_run_id"]) == (
        audience["id"],
        "2026-05-04",
        None,
    )
    assert time.time() + 90 < kwargs["deadline"] <= time.time() + 100
    run = {"id": UUID, "status": "completed", "runType": "daily", "dataDate": "2026-05-04"}
    assert op.execute_complete({}, {"status": "success", "run": run, "message": "ok"})["id"] == UUID
    with pytest.raises(AirflowSensorTimeout):
        op.execute_complete({}, {"status": "timeout", "message": "late"})


def test_deferrable_returns_at_once_when_already_satisfied(leadpipe_sandbox, audience):
    daily = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-04")
    assert sensor(audience["id"], deferrable=True).execute({})["id"] == daily["id"]


def test_hook_params_and_backoff_reach_the_trigger(leadpipe_sandbox, audience):
    op = sensor(
        audience["id"],
        deferrable=True,
        hook_params={"timeout": 7, "max_retries": 1},
        exponential_backoff=True,
        max_wait=30,
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["hook_params"] == {"timeout": 7, "max_retries": 1}
    assert (kwargs["exponential_backoff"], kwargs["max_wait"]) == (True, 30.0)
