"""LeadpipeAudienceRunTrigger against the sandbox over loopback HTTP: events, deadline, re-creation."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAudienceRunError,
    LeadpipeAudienceRunTimeoutError,
    LeadpipeConfigError,
    LeadpipeError,
    LeadpipeNotFoundError,
)
from airflow_provider_leadpipe.triggers.audiences import RUN, LeadpipeAudienceRunTrigger
from airflow_provider_leadpipe.triggers.events import result_of
from tests.orbit import api_runs
from tests.unit.triggers.account_api import eventually

try:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
except ImportError:  # Airflow 2: no Task SDK, and no on_kill either
    RuntimeTaskInstance = None  # type: ignore[assignment,misc]

MISSING = "00000000-0000-4000-8000-000000000000"


def make(
    audience_id: str, *, run_id: str | None = None, interval=0.02, timeout=600.0, clock: Any = time, **kwargs
):
    """A trigger with a deadline ``timeout`` s away on ``clock`` (``time``, or the tests' ``wall_clock``);
    the default deadline is only a safety net."""
    return LeadpipeAudienceRunTrigger(
        leadpipe_conn_id="leadpipe_default",
        audience_id=audience_id,
        audience_run_id=run_id,
        poll_interval=interval,
        deadline=clock.time() + timeout,
        **kwargs,
    )


async def event_of(trigger: LeadpipeAudienceRunTrigger) -> dict:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    json.dumps(events[0])  # JSON-native: the triggerer stores it
    return events[0]


@pytest.fixture
def audience(leadpipe_sandbox):
    leadpipe_sandbox.set_run_schedule(queued_polls=1, running_polls=2)
    return leadpipe_sandbox.create_audience("Trigger audience", people=120)


def queue_run(sandbox, audience_id: str) -> str:
    import httpx

    from tests.orbit import ORBIT

    response = httpx.post(
        f"{sandbox.url}{ORBIT}/{audience_id}/runs",
        json={"runType": "manual"},
        headers={"x-api-key": sandbox.api_key},
    )
    response.raise_for_status()
    return response.json()["data"]["id"]


def test_serialize_holds_primitives_only_and_round_trips(audience):
    trigger = make(audience["id"], run_id="3F2C0E1A-1111-4222-8333-944455556666")
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_leadpipe.triggers.audiences.LeadpipeAudienceRunTrigger"
    assert set(kwargs) == {
        "leadpipe_conn_id",
        "audience_id",
        "audience_run_id",
        "min_data_date",
        "poll_interval",
        "deadline",
        "hook_params",
        "exponential_backoff",
        "max_wait",
        "cancel_queued_run",
    }
    assert kwargs["audience_run_id"] == "3f2c0e1a-1111-4222-8333-944455556666"  # canonical
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert LeadpipeAudienceRunTrigger(**kwargs).serialize() == (path, kwargs)


def test_kwargs_survive_the_metadata_db_encoding(audience):
    from airflow.serialization.serialized_objects import BaseSerialization

    _, kwargs = make(audience["id"], min_data_date="2026-05-04").serialize()
    decoded = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    assert LeadpipeAudienceRunTrigger(**decoded).serialize()[1] == kwargs


async def test_no_key_in_kwargs_repr_or_events(leadpipe_sandbox, audience):
    run_id = queue_run(leadpipe_sandbox, audience["id"])
    trigger = make(audience["id"], run_id=run_id)
    event = await event_of(trigger)
    text = json.dumps([trigger.serialize(), event]) + repr(trigger)
    assert leadpipe_sandbox.api_key not in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"audience_id": "not-a-uuid"}, "audience_id must be a UUID"),
        ({"audience_run_id": "42"}, "audience_run_id must be a UUID"),
        ({"min_data_date": "05/04/2026"}, "min_data_date must be a date"),
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"poll_interval": "soon"}, "poll_interval must be a positive number"),
        ({"deadline": float("nan")}, "deadline must be a positive number"),
        ({"leadpipe_conn_id": ""}, "leadpipe_conn_id must be a non-empty string"),
        ({"hook_params": {"timeout": 0}}, r"hook_params\['timeout'\]"),
        ({"hook_params": {"api_key": "x"}}, "hook_params"),
        ({"max_wait": -1}, "max_wait must be a positive number"),
        ({"audience_run_id": MISSING, "min_data_date": "2026-05-04"}, "not both"),
        ({"cancel_queued_run": "maybe"}, "cancel_queued_run must be true or false"),
        ({"cancel_queued_run": True, "audience_run_id": None}, "cancel_queued_run needs audience_run_id"),
    ],
)
def test_bad_kwargs_are_refused_naming_the_argument(kwargs, message):
    arguments = {
        "leadpipe_conn_id": "leadpipe_default",
        "audience_id": MISSING,
        "poll_interval": 1,
        "deadline": time.time() + 5,
        **kwargs,
    }
    with pytest.raises(LeadpipeConfigError, match=message):
        LeadpipeAudienceRunTrigger(**arguments)


async def test_waits_through_queued_and_running_then_yields_the_run_dict(leadpipe_sandbox, audience):
    run_id = queue_run(leadpipe_sandbox, audience["id"])
    event = await event_of(make(audience["id"], run_id=run_id))
    assert event["status"] == "success"
    run = event["run"]
    assert (run["id"], run["status"], run["resultCount"]) == (run_id, "completed", 120)
    assert "dataDate" in run  # the API's own key names
    assert result_of(event, RUN, timeout_error=LeadpipeAudienceRunTimeoutError)["id"] == run_id


async def test_failed_run_yields_a_failure_event_with_error_code(leadpipe_sandbox, audience):
    leadpipe_sandbox.fail_next_run(
        audience["id"], error_code="MATERIALIZATION_FAILED", error_message="disk full"
    )
    run_id = queue_run(leadpipe_sandbox, audience["id"])
    event = await event_of(make(audience["id"], run_id=run_id))
    assert (event["status"], event["error"]) == ("failure", "LeadpipeAudienceRunError")
    with pytest.raises(LeadpipeAudienceRunError, match=r"MATERIALIZATION_FAILED.*disk full") as caught:
        result_of(event, RUN, timeout_error=LeadpipeAudienceRunTimeoutError)
    assert (caught.value.run_id, caught.value.error_code) == (run_id, "MATERIALIZATION_FAILED")


async def test_times_out_at_its_wall_clock_deadline(leadpipe_sandbox, audience):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    run_id = queue_run(leadpipe_sandbox, audience["id"])
    started = time.monotonic()
    event = await event_of(make(audience["id"], run_id=run_id, interval=0.05, timeout=0.4))
    assert event["status"] == "timeout" and "queued" in event["message"]
    assert 0.3 < time.monotonic() - started < 5
    with pytest.raises(LeadpipeAudienceRunTimeoutError, match="queued"):
        result_of(event, RUN, timeout_error=LeadpipeAudienceRunTimeoutError)


async def test_recreated_after_a_restart_keeps_the_original_deadline(leadpipe_sandbox, audience, wall_clock):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    run_id = queue_run(leadpipe_sandbox, audience["id"])
    first = make(audience["id"], run_id=run_id, interval=0.05, timeout=0.5, clock=wall_clock)
    task = asyncio.ensure_future(event_of(first))
    before = leadpipe_sandbox.request_count()
    await eventually(lambda: leadpipe_sandbox.request_count() >= before + 2)  # it was waiting
    task.cancel()  # the triggerer stopped
    with pytest.raises(asyncio.CancelledError):
        await task
    _, kwargs = first.serialize()
    wall_clock.advance(0.5)  # the original deadline passes while no triggerer runs it
    # The trigger's wall clock stands still from here on: a fresh deadline would never pass, and only
    # the 60 s safety net would end the wait.
    event = await asyncio.wait_for(event_of(LeadpipeAudienceRunTrigger(**json.loads(json.dumps(kwargs)))), 60)
    assert event["status"] == "timeout"


async def test_without_a_run_id_waits_for_a_daily_run_of_a_recent_enough_date(leadpipe_sandbox, audience):
    leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-03")
    trigger = make(audience["id"], min_data_date="2026-05-04", interval=0.02)
    task = asyncio.ensure_future(event_of(trigger))
    before = leadpipe_sandbox.request_count()
    await eventually(lambda: leadpipe_sandbox.request_count() >= before + 3)  # it saw the older run
    assert not task.done(), "a run of an older dataDate does not count"
    daily = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-04")
    event = await asyncio.wait_for(task, 10)
    assert event["status"] == "success"
    assert (event["run"]["id"], event["run"]["dataDate"], event["run"]["runType"]) == (
        daily["id"],
        "2026-05-04",
        "daily",
    )


async def test_unknown_run_is_a_failure_event_naming_it(leadpipe_sandbox, audience):
    event = await event_of(make(audience["id"], run_id=MISSING))
    assert event["status"] == "error" and MISSING in event["message"]
    with pytest.raises(LeadpipeNotFoundError, match=MISSING):
        result_of(event, RUN, timeout_error=LeadpipeAudienceRunTimeoutError)


@pytest.mark.parametrize("event", [None, "success", {"status": "success"}, {"status": "maybe"}])
def test_malformed_events_are_refused(event):
    with pytest.raises(LeadpipeError):
        result_of(event, RUN, timeout_error=LeadpipeAudienceRunTimeoutError)


# -- on_kill (how each way of ending a deferred task reaches it: tests/hardening/test_ended_run_tasks.py)


def run_status(sandbox, audience_id: str, run_id: str) -> str:
    return {run["id"]: run["status"] for run in api_runs(sandbox, audience_id)}[run_id]


async def test_on_kill_is_best_effort_and_leaves_a_running_run_alone(
    leadpipe_sandbox, audience, task_log, monkeypatch
):
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_seconds=600)
    run_id = queue_run(leadpipe_sandbox, audience["id"])
    api_runs(leadpipe_sandbox, audience["id"])  # a poll: the run starts running
    assert run_status(leadpipe_sandbox, audience["id"], run_id) == "running"
    await make(audience["id"], run_id=run_id, cancel_queued_run=True).on_kill()
    assert run_status(leadpipe_sandbox, audience["id"], run_id) == "running"
    assert "Orbit cancels only queued runs" in str(task_log)

    # Nothing listens there. A longer key than "k": Airflow 2.11 masks a 1-character secret everywhere.
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", "leadpipe://:sk_test_nothing_listens@127.0.0.1:9")
    unreachable = make(audience["id"], run_id=run_id, cancel_queued_run=True, hook_params={"max_retries": 0})
    await unreachable.on_kill()
    assert f"Could not cancel audience run {run_id}" in str(task_log)
    # httpx logs the test's own calls to the sandbox's control API, whose path names the key.
    logged = [m for m in task_log.messages if "/_sandbox/" not in m]
    assert not [m for m in logged if leadpipe_sandbox.api_key in m]


@pytest.mark.parametrize("cancel_queued_run", [True, False], ids=["run operator's", "sensor's"])
async def test_on_kill_cancels_the_queued_run_only_when_the_task_queued_it(
    leadpipe_sandbox, audience, cancel_queued_run
):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    run_id = queue_run(leadpipe_sandbox, audience["id"])
    await make(audience["id"], run_id=run_id, cancel_queued_run=cancel_queued_run).on_kill()
    expected = "cancelled" if cancel_queued_run else "queued"
    assert run_status(leadpipe_sandbox, audience["id"], run_id) == expected


@pytest.mark.skipif(
    RuntimeTaskInstance is None, reason="the triggerer asks task states through the Task SDK (3.x)"
)
@pytest.mark.parametrize(
    ("state", "expected"), [("deferred", "queued"), ("failed", "cancelled"), (None, "cancelled")]
)
async def test_on_kill_leaves_the_run_of_a_task_still_deferred(
    leadpipe_sandbox, audience, monkeypatch, state, expected
):
    """Airflow 3.3 also stops a trigger "by user action" when it moves it to another triggerer
    (a heartbeat fell behind): the task is still deferred then, and its run must stay queued."""
    asked = []

    def get_task_states(**kwargs):
        asked.append(kwargs)
        return {"manual_1": {"run_audience": state}}

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    run_id = queue_run(leadpipe_sandbox, audience["id"])
    trigger = make(audience["id"], run_id=run_id, cancel_queued_run=True)
    trigger.task_instance = SimpleNamespace(
        dag_id="d", run_id="manual_1", task_id="run_audience", map_index=-1
    )
    await trigger.on_kill()
    assert asked == [{"dag_id": "d", "map_index": -1, "task_ids": ["run_audience"], "run_ids": ["manual_1"]}]
    assert run_status(leadpipe_sandbox, audience["id"], run_id) == expected
