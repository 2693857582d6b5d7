"""1,000 concurrent LeadpipeAccountTriggers in one event loop against the sandbox, with ~10 % of
requests answered 429 (Retry-After: 1) or 503, and triggers re-created from ``serialize()`` as after
a triggerer restart.

Every trigger's ``run()`` is drained to the end, so "exactly one event" means one event and then a
finished generator -- a second event, a lost trigger or a hang (past the gather deadline) fails.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import pytest

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from leadpipe_sandbox import Fault
from tests.hardening.figures import record
from tests.unit.triggers.account_api import WallClock, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACCOUNT = "/v1/data/account"
TRIGGERS = 1_000
#: No trigger may wait longer than this; the whole gather must finish inside it too.
DEADLINE = 60.0
FAULTS = [Fault.rate_limit(retry_after=1), Fault.unavailable()]


def _connect(monkeypatch, sandbox, conn_id: str, api_key: str) -> str:
    conn = {"conn_type": "leadpipe", "host": sandbox.url, "password": api_key}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


def _trigger(conn_id: str, deadline: float, interval: float = 0.1) -> LeadpipeAccountTrigger:
    return LeadpipeAccountTrigger(
        leadpipe_conn_id=conn_id,
        **AccountCondition(min_credits=100).to_dict(),
        poll_interval=interval,
        deadline=deadline,
    )


async def _drain(trigger: LeadpipeAccountTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


async def _run_all(triggers: list[LeadpipeAccountTrigger]) -> tuple[list[list[dict[str, Any]]], float]:
    started = time.monotonic()
    results = await asyncio.wait_for(asyncio.gather(*(_drain(t) for t in triggers)), DEADLINE)
    return results, time.monotonic() - started


def _faulty_waiting_key(sandbox, api_key: str, *, seed: int, recover_after: int) -> None:
    """A key without credits that recovers after ``recover_after`` account calls, ~10 % faults."""
    sandbox.configure_key(
        api_key,
        {
            "credits": {"used": 500, "limit": 500},
            "recovery": {"afterAccountCalls": recover_after},
            "faultRate": {
                "rate": 0.1,
                "seed": seed,
                "faults": [f.model_dump(mode="json", by_alias=True, exclude_none=True) for f in FAULTS],
            },
        },
    )


def _check_exactly_one_success_each(results: list[list[dict[str, Any]]]) -> None:
    assert len(results) == TRIGGERS
    counts = [len(events) for events in results]
    assert counts == [1] * TRIGGERS, f"lost: {counts.count(0)}, duplicated: {sum(c > 1 for c in counts)}"
    statuses = {events[0]["status"] for events in results}
    assert statuses == {"success"}, statuses
    assert {events[0]["account"]["credits"]["remaining"] for events in results} == {500}


def _figures(sandbox, keys: list[str]) -> tuple[int, int]:
    requests = sum(sandbox.request_count(ACCOUNT, api_key=key) for key in keys)
    faulted = sum(
        sandbox.request_count(ACCOUNT, api_key=key, status=status) for key in keys for status in (429, 503)
    )
    return requests, faulted


async def test_1000_triggers_on_one_connection_with_faults(leadpipe_sandbox, monkeypatch):
    key = "sk_test_load_one"
    _faulty_waiting_key(leadpipe_sandbox, key, seed=3, recover_after=20)
    conn_id = _connect(monkeypatch, leadpipe_sandbox, "lp_load_one", key)
    deadline = time.time() + DEADLINE
    triggers = [_trigger(conn_id, deadline) for _ in range(TRIGGERS)]

    results, elapsed = await _run_all(triggers)

    _check_exactly_one_success_each(results)
    requests, faulted = _figures(leadpipe_sandbox, [key])
    # One shared poll: 20 exhausted answers + the recovered one, plus one request per fault.
    assert requests == 21 + faulted
    assert faulted > 0, "the seeded 10 % fault rate should have hit this run"
    record(
        "load",
        f"{TRIGGERS:,} triggers, 1 connection (coalesced), 10 % 429/503",
        requests=requests,
        retries=faulted,
        events=TRIGGERS,
        elapsed=elapsed,
    )


async def test_1000_triggers_on_200_connections_with_faults(leadpipe_sandbox, monkeypatch):
    """No coalescing to hide behind: 200 pollers, 200 clients, hundreds of faulted requests."""
    connections = 200
    keys = [f"sk_test_load_{i:03d}" for i in range(connections)]
    for i, key in enumerate(keys):
        _faulty_waiting_key(leadpipe_sandbox, key, seed=i, recover_after=3)
    conn_ids = [
        _connect(monkeypatch, leadpipe_sandbox, f"lp_load_{i:03d}", key) for i, key in enumerate(keys)
    ]
    deadline = time.time() + DEADLINE
    triggers = [_trigger(conn_ids[i % connections], deadline) for i in range(TRIGGERS)]

    results, elapsed = await _run_all(triggers)

    _check_exactly_one_success_each(results)
    requests, faulted = _figures(leadpipe_sandbox, keys)
    assert requests == 4 * connections + faulted  # 3 exhausted + 1 recovered per connection, + faults
    assert faulted >= 0.05 * requests, (faulted, requests)
    record(
        "load",
        f"{TRIGGERS:,} triggers, {connections} connections (5 each), 10 % 429/503",
        requests=requests,
        retries=faulted,
        events=TRIGGERS,
        elapsed=elapsed,
    )


# -- restart ----------------------------------------------------------------------------------


def _restarted(trigger: LeadpipeAccountTrigger) -> LeadpipeAccountTrigger:
    """What a triggerer does after a restart: import the classpath, pass the stored kwargs back."""
    classpath, kwargs = trigger.serialize()
    stored = json.loads(json.dumps(kwargs))  # the trigger table keeps them as JSON
    module, name = classpath.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**stored)


async def test_trigger_recreated_mid_wait_resumes_with_the_same_deadline(leadpipe_sandbox, monkeypatch):
    key = "sk_test_restart"
    leadpipe_sandbox.configure_key(key, {"credits": {"used": 500, "limit": 500}})  # recovers when told
    conn_id = _connect(monkeypatch, leadpipe_sandbox, "lp_restart", key)
    first = _trigger(conn_id, time.time() + 30, interval=0.1)

    # The first triggerer runs it for a while, then goes down (its run() task is cancelled).
    before: list[dict[str, Any]] = []

    async def collect(trigger: LeadpipeAccountTrigger, into: list[dict[str, Any]]) -> None:
        async for event in trigger.run():
            into.append(event.payload)

    task = asyncio.create_task(collect(first, before))
    await eventually(lambda: leadpipe_sandbox.request_count(ACCOUNT, api_key=key) >= 2, interval=0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert before == []  # it was waiting, and had polled

    second = _restarted(first)
    assert second.deadline == first.deadline and second.serialize() == first.serialize()
    resumed = asyncio.create_task(_drain(second))
    polled = leadpipe_sandbox.request_count(ACCOUNT, api_key=key)
    await eventually(lambda: leadpipe_sandbox.request_count(ACCOUNT, api_key=key) > polled, interval=0.05)
    leadpipe_sandbox.reset_credits(api_key=key)  # the credits come back while the re-created one waits
    after = await asyncio.wait_for(resumed, 60)  # 60 s: only a safety net

    assert [event["status"] for event in after] == ["success"]
    requests = leadpipe_sandbox.request_count(ACCOUNT, api_key=key)
    record(
        "restart",
        "trigger re-created from serialize() mid-wait",
        requests=requests,
        events=len(before) + len(after),
    )


async def test_trigger_recreated_after_its_deadline_times_out_at_once(leadpipe_sandbox, monkeypatch):
    """The deadline is wall-clock and travels in the kwargs: a restart never extends the wait."""
    key = "sk_test_restart_never"
    leadpipe_sandbox.configure_key(key, {"credits": {"used": 500, "limit": 500}})  # never recovers
    conn_id = _connect(monkeypatch, leadpipe_sandbox, "lp_restart_never", key)
    # The trigger's wall clock stands still unless advanced: the deadline passes when the test says
    # so, however fast or slow the machine (the event loop's own clock runs as usual).
    clock = WallClock.install(monkeypatch)
    first = _trigger(conn_id, clock.time() + 1.0, interval=0.1)

    task = asyncio.create_task(_drain(first))
    await eventually(lambda: leadpipe_sandbox.request_count(ACCOUNT, api_key=key) >= 2, interval=0.05)
    clock.advance(0.4)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    second = _restarted(first)  # "restarted" 0.4 s into a 1 s wait
    resumed = asyncio.create_task(_drain(second))
    polled = leadpipe_sandbox.request_count(ACCOUNT, api_key=key)
    await eventually(
        lambda: leadpipe_sandbox.request_count(ACCOUNT, api_key=key) >= polled + 2, interval=0.05
    )
    assert not resumed.done()  # before the deadline: still waiting
    clock.advance(0.6)  # the original deadline; a wait of 1 s from the restart would go on for 0.4 s more
    after = await asyncio.wait_for(resumed, 60)  # 60 s: only a safety net (the clock stands still)
    assert [event["status"] for event in after] == ["timeout"]
    record(
        "restart",
        "re-created trigger keeps its wall-clock deadline (times out on time)",
        requests=leadpipe_sandbox.request_count(ACCOUNT, api_key=key),
        events=len(after),
    )
