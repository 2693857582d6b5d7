"""LeadpipeAccountTrigger: serialization, one event per run, deadlines, restarts, errors."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import httpx
import pytest
import respx
from airflow.triggers.base import TriggerEvent

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from airflow_provider_leadpipe.triggers.poller import _REGISTRY
from tests.unit.conftest import API_KEY
from tests.unit.triggers.account_api import AccountAPI, account, eventually, make_trigger

CLASSPATH = "airflow_provider_leadpipe.triggers.account.LeadpipeAccountTrigger"


@pytest.fixture(autouse=True)
def fast_retries(leadpipe_conn):
    # No hook retries: a transient error reaches the trigger at once.
    leadpipe_conn(extra=json.dumps({"max_retries": 0}))


async def all_events(trigger: LeadpipeAccountTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


# -- serialization -------------------------------------------------------------------------------


def test_serialize_holds_primitives_only_and_round_trips():
    trigger = make_trigger(max_percent_used=80, fail_on_statuses=["expired", "Suspended"])
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert json.loads(json.dumps(kwargs)) == kwargs  # primitives only
    assert kwargs == {
        "leadpipe_conn_id": "leadpipe_default",
        "require_healthy": True,
        "min_credits": 100,
        "max_percent_used": 80,
        "min_audience_slots": None,
        "fail_on_statuses": ["expired", "suspended"],
        "poll_interval": 0.05,
        "deadline": trigger.deadline,
        "hook_params": {},
        "exponential_backoff": False,
        "max_wait": None,
    }
    rebuilt = LeadpipeAccountTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.condition == trigger.condition


def test_kwargs_survive_the_metadata_db_encoding():
    # What Airflow stores in the trigger table: serde + Fernet (serde rejects non-primitives).
    from airflow.models.trigger import Trigger

    trigger = make_trigger()
    row = Trigger.from_object(trigger)
    assert row.classpath == CLASSPATH
    assert row.kwargs == trigger.serialize()[1]


async def test_no_key_in_serialized_kwargs_or_repr_even_after_running():
    trigger = make_trigger(min_credits=1)
    with respx.mock() as router:
        AccountAPI(router, account(480))
        await all_events(trigger)
    assert API_KEY not in json.dumps(trigger.serialize())
    assert API_KEY not in repr(trigger)
    assert API_KEY not in repr(vars(trigger))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"leadpipe_conn_id": ""}, "leadpipe_conn_id must be a non-empty string"),
        ({"min_credit": 1}, "unknown account condition key"),
        ({"min_credits": -5}, "min_credits must be a number >= 0"),
        ({"poll_interval": -1}, "poll_interval must be a number of seconds >= 0"),
        ({"poll_interval": "soon"}, "poll_interval must be a number of seconds >= 0"),
        ({"deadline": float("nan")}, "deadline must be a positive number of seconds"),
    ],
)
def test_bad_kwargs_are_refused(kwargs, message):
    good = {"leadpipe_conn_id": "leadpipe_default", "poll_interval": 1.0, "deadline": 1e9}
    with pytest.raises(LeadpipeConfigError, match=message):
        LeadpipeAccountTrigger(**{**good, **kwargs})


# -- run() -----------------------------------------------------------------------------------------


async def test_one_step_of_run_yields_success_with_the_account_dict():
    data = account(480)
    with respx.mock() as router:
        api = AccountAPI(router, data)
        event = await make_trigger(min_credits=100).run().asend(None)
    assert event == TriggerEvent(
        {
            "status": "success",
            "account": data,
            "message": "ready: Acme (trial, healthy): 480 of 500 credits left, resets 2026-12-01T00:00:00Z",
        }
    )
    assert api.calls == 1
    assert api.keys == [API_KEY]


async def test_still_polling_while_the_condition_does_not_hold():
    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        task = asyncio.create_task(make_trigger(min_credits=100).run().__anext__())
        await eventually(lambda: api.calls >= 3)  # it really is polling, not stuck
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_succeeds_after_credits_recover_and_yields_exactly_one_event(task_log):
    with respx.mock() as router:
        api = AccountAPI(router, account(0), account(0), account(0), account(480))
        events = await all_events(make_trigger(min_credits=100))
    assert [e.payload["status"] for e in events] == ["success"]
    assert api.calls == 4
    waiting = task_log.waiting()
    # One line per change of reason, not one per poll.
    assert waiting == ["waiting: 0 credits left, need 100; credits reset 2026-12-01T00:00:00Z"]


async def test_times_out_at_its_deadline(wall_clock):
    def one_check_later(request):  # each check takes 0.1 s of the trigger's wall clock
        wall_clock.advance(0.1)
        return httpx.Response(200, json={"data": account(0)})

    with respx.mock() as router:
        api = AccountAPI(router, one_check_later)
        trigger = make_trigger(min_credits=100, timeout=0.25, clock=wall_clock)
        events = await asyncio.wait_for(all_events(trigger), 60)  # 60 s: only a safety net
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "timeout"
    assert "0 credits left, need 100" in payload["message"]
    assert wall_clock.time() >= trigger.deadline
    assert api.calls >= 3  # it kept checking until the deadline had passed


async def test_deadline_in_the_past_times_out_at_once():
    with respx.mock(assert_all_called=False) as router:
        AccountAPI(router, account(0), delay=600)
        trigger = make_trigger(timeout=-1)
        # At once: not after the request (600 s); 60 s is only a safety net.
        event = await asyncio.wait_for(trigger.run().asend(None), timeout=60)
    assert event.payload["status"] == "timeout"


async def test_deadline_fires_while_a_request_is_still_in_flight():
    with respx.mock(assert_all_called=False) as router:
        AccountAPI(router, account(480), delay=600)  # no answer within the test
        # At the deadline: not after the answer (600 s); 60 s is only a safety net.
        event = await asyncio.wait_for(make_trigger(timeout=0.1).run().asend(None), timeout=60)
    assert event.payload["status"] == "timeout"
    assert "no answer yet" in event.payload["message"]


async def test_restart_recreated_from_serialized_kwargs_keeps_the_deadline_and_emits_one_event():
    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        original = make_trigger(min_credits=100, timeout=60)  # far: the restarted trigger succeeds
        first_run = asyncio.create_task(original.run().__anext__())
        await eventually(lambda: api.calls >= 1)  # it was waiting, and had polled
        first_run.cancel()  # the triggerer stops
        with pytest.raises(asyncio.CancelledError):
            await first_run
        await asyncio.sleep(0)
        assert not _REGISTRY.get(asyncio.get_running_loop())  # nothing left polling

        _classpath, kwargs = original.serialize()
        restarted = LeadpipeAccountTrigger(**json.loads(json.dumps(kwargs)))
        assert restarted.deadline == original.deadline
        calls_before = api.calls
        api.switch(account(0), account(480))
        events = await all_events(restarted)
    assert [e.payload["status"] for e in events] == ["success"]
    assert api.calls == calls_before + 2


async def test_restart_after_the_deadline_times_out_with_the_original_deadline():
    original = make_trigger(timeout=0.05)
    await asyncio.sleep(0.1)
    restarted = LeadpipeAccountTrigger(**original.serialize()[1])
    with respx.mock(assert_all_called=False) as router:
        AccountAPI(router, account(480), delay=600)
        # At once: not after the request (600 s); 60 s is only a safety net.
        events = await asyncio.wait_for(all_events(restarted), timeout=60)
    assert [e.payload["status"] for e in events] == ["timeout"]


async def test_transient_errors_are_logged_and_waited_out(task_log):
    with respx.mock() as router:
        api = AccountAPI(router, 503, 503, 429, account(480))
        events = await all_events(make_trigger(min_credits=1))
    assert [e.payload["status"] for e in events] == ["success"]
    assert api.calls == 4
    waiting = task_log.waiting()
    assert waiting[0].startswith(
        "waiting: Leadpipe API unavailable, will retry: Leadpipe GET /v1/data/account failed with HTTP 503"
    )
    assert len(waiting) == 2  # 503 (twice: same reason, one line), then 429


@pytest.mark.parametrize("http_status", [401, 403])
async def test_auth_errors_yield_a_failure_event(http_status, caplog, capsys):
    with respx.mock() as router:
        AccountAPI(router, account(0), http_status)
        events = await all_events(make_trigger(min_credits=100))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "failure"
    assert payload["error"] == "LeadpipeAuthError"
    assert payload["http_status"] == http_status
    assert f"HTTP {http_status}" in payload["message"]
    assert API_KEY not in json.dumps(payload) + caplog.text + str(capsys.readouterr())


async def test_a_refusal_just_before_the_deadline_is_a_failure_not_a_timeout(monkeypatch, wall_clock):
    # After a 401 the trigger reads its connection again; that read may start only after the
    # deadline. The refusal is the outcome (a timeout would let soft_fail skip an auth failure).
    monkeypatch.setattr("airflow_provider_leadpipe.triggers.poller.LOOKUP_GATHER", 1.0)

    def refused_at_the_deadline(request):  # the deadline passes with the refusal, before the read
        wall_clock.advance(0.5)
        return 401

    with respx.mock() as router:
        api = AccountAPI(router, refused_at_the_deadline)
        [event] = await asyncio.wait_for(all_events(make_trigger(timeout=0.5, clock=wall_clock)), 60)
    assert api.calls == 1
    assert event.payload["status"] == "failure"
    assert event.payload["error"] == "LeadpipeAuthError"


async def test_expired_organization_yields_a_failure_event():
    with respx.mock() as router:
        AccountAPI(router, account(0), account(500, healthy=False, org_status="expired"))
        [event] = await all_events(make_trigger(min_credits=100))
    assert event.payload["status"] == "failure"
    assert event.payload["error"] == "LeadpipeAccountError"
    assert "'expired', which waiting cannot fix" in event.payload["message"]


async def test_audience_slots_without_intent_yield_a_failure_event():
    with respx.mock() as router:
        AccountAPI(router, account(480, intent=None))
        [event] = await all_events(make_trigger(min_credits=1, min_audience_slots=1))
    assert event.payload["status"] == "failure"
    assert "no intent product" in event.payload["message"]


async def test_malformed_response_yields_an_error_event():
    with respx.mock() as router:
        AccountAPI(router, {"healthy": "yes"})
        [event] = await all_events(make_trigger())
    assert event.payload["status"] == "error"
    assert event.payload["error"] == "LeadpipeResponseError"


async def test_unknown_connection_yields_an_error_event():
    with respx.mock():
        [event] = await all_events(make_trigger(conn_id="no_such_connection"))
    assert event.payload["status"] == "error"
    assert "no_such_connection" in event.payload["message"]


async def test_unexpected_exception_in_run_becomes_an_error_event(monkeypatch, caplog):
    def broken(self, status):
        raise RuntimeError("condition exploded")

    monkeypatch.setattr(AccountCondition, "evaluate", broken)
    with respx.mock() as router:
        AccountAPI(router, account(480))
        events = await all_events(make_trigger())
    assert [e.payload for e in events] == [
        {"status": "error", "error": "RuntimeError", "message": "condition exploded", "http_status": None}
    ]


# -- hook_params and backoff -----------------------------------------------------------------------


def with_settings(trigger: LeadpipeAccountTrigger, **kwargs) -> LeadpipeAccountTrigger:
    _classpath, serialized = trigger.serialize()
    return LeadpipeAccountTrigger(**{**serialized, **kwargs})


async def test_the_trigger_polls_with_its_hook_params():
    with respx.mock() as router:
        api = AccountAPI(router, 503, account(480))
        trigger = with_settings(
            make_trigger(), hook_params={"timeout": 7, "max_retries": 1, "retry_backoff": 0.01}
        )
        events = await all_events(trigger)
    assert events[0].payload["status"] == "success"
    assert api.calls == 2  # the 503 was retried by the hook (the connection says max_retries 0)
    assert api.route.calls.last.request.extensions["timeout"]["read"] == 7


async def test_triggers_with_different_hook_params_do_not_share_a_poller():
    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        tasks = [
            asyncio.create_task(all_events(with_settings(make_trigger(), hook_params=params)))
            for params in ({}, {"timeout": 7}, {"timeout": 7})
        ]
        await eventually(lambda: api.calls >= 2)
        assert len(_REGISTRY[asyncio.get_running_loop()]) == 2
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hook_params": {"timeout": -1}}, r"hook_params\['timeout'\] must be a number of seconds"),
        ({"hook_params": {"verify": False}}, r"hook_params has unknown key\(s\) \['verify'\]"),
        ({"exponential_backoff": "often"}, "exponential_backoff must be true or false"),
        ({"max_wait": -1}, "max_wait must be a positive number of seconds"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(LeadpipeConfigError, match=message):
        with_settings(make_trigger(), **kwargs)


async def test_exponential_backoff_spaces_the_checks_out(wall_clock):
    checked_at = []

    def one_check(request):  # the deadline passes after the third check, however slow the machine
        checked_at.append(time.monotonic())
        wall_clock.advance(1.0)
        return httpx.Response(200, json={"data": account(0)})

    with respx.mock() as router:
        AccountAPI(router, one_check)
        trigger = with_settings(
            make_trigger(timeout=2.5, interval=0.01, clock=wall_clock), exponential_backoff=True, max_wait=1.0
        )
        events = await asyncio.wait_for(all_events(trigger), 60)  # 60 s: only a safety net
    assert events[0].payload["status"] == "timeout"
    # At once, then every max(1 s, growing interval) capped at max_wait: 1 s apart, not 0.01 s.
    # (A slower machine only makes the gaps longer; 0.5 s leaves room for the first request's set-up.)
    gaps = [later - earlier for earlier, later in itertools.pairwise(checked_at)]
    assert len(checked_at) == 3 and all(gap >= 0.5 for gap in gaps), gaps


def test_backoff_interval_grows_like_a_poking_sensors_and_stops_at_max_wait():
    from airflow_provider_leadpipe.triggers.base import backoff_interval

    assert [backoff_interval(10, count, None) for count in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert [backoff_interval(0.1, count, None) for count in (1, 2, 3)] == [1, 1, 1]
    assert backoff_interval(10, 10, 60) == 60
