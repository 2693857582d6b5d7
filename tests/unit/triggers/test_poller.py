"""Coalesced polling: triggers on one credential share one request per interval."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import time
import weakref

import pytest
import respx

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from airflow_provider_leadpipe.triggers.poller import (
    _READS,
    _REGISTRY,
    LOOKUP_GATHER,
    AccountPoller,
    Subscription,
    subscribe,
)
from tests.unit.conftest import API_KEY
from tests.unit.triggers.account_api import AccountAPI, account, eventually
from tests.unit.triggers.account_api import make_trigger as trigger


@pytest.fixture(autouse=True)
def connections(leadpipe_conn):
    """``leadpipe_default`` plus ``lp_a``..``lp_c``, each on its own host; no hook retries."""
    extra = json.dumps({"max_retries": 0})
    leadpipe_conn(extra=extra)
    for name in ("a", "b", "c"):
        leadpipe_conn(f"lp_{name}", host=f"https://{name}.api.test", extra=extra)


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """The connection ids looked up, in order (each entry is one read of a connection)."""
    looked_up: list[str] = []
    original = LeadpipeHook._aget_leadpipe_connection

    async def counted(self):
        looked_up.append(self.leadpipe_conn_id)
        return await original(self)

    monkeypatch.setattr(LeadpipeHook, "_aget_leadpipe_connection", counted)
    return looked_up


def _pollers() -> list:
    return [poller for pollers in _REGISTRY.values() for poller in pollers.values()]


def start(*triggers: LeadpipeAccountTrigger) -> list[asyncio.Task]:
    return [asyncio.create_task(t.run().__anext__()) for t in triggers]


async def stop(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)  # let the pollers' cancellation run


async def test_many_triggers_on_one_connection_send_one_request_per_interval():
    with respx.mock() as router:
        api = AccountAPI(router, account(0), delay=0.01)
        tasks = start(*(trigger(interval=0.1) for _ in range(300)))
        began = time.monotonic()
        await eventually(lambda: api.calls >= 3)  # polled again and again (not a fixed sleep: load)
        await asyncio.sleep(0.3)
        elapsed = time.monotonic() - began
        assert not any(task.done() for task in tasks)
        await stop(tasks)
    # Every trigger has polled 3+ times; without sharing that would be 900+ requests.
    assert 3 <= api.calls <= elapsed / 0.1 + 2
    assert api.max_in_flight == 1


async def test_triggers_starting_together_or_one_by_one_share_connection_lookups(lookups):
    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        # As Airflow's triggerer creates the triggers it was handed: one after the other, in one pass.
        tasks = start(*(trigger(interval=0.1) for _ in range(200)))
        await eventually(lambda: api.calls >= 1)
        assert lookups == ["leadpipe_default"]
        began = time.monotonic()
        for _ in range(15):  # then one by one, 20 ms apart
            tasks += start(trigger(interval=0.1))
            await asyncio.sleep(0.02)
        await eventually(lambda: all(poller.subscribers == len(tasks) for poller in _pollers()))
        elapsed = time.monotonic() - began
        await stop(tasks)
    # At most one lookup per LOOKUP_GATHER while they keep coming, not one per trigger (16). On a slow
    # machine the arrivals take longer, and the first bound grows with them.
    assert len(lookups) <= 2 + elapsed / LOOKUP_GATHER
    assert len(lookups) < 16


async def test_a_trigger_never_joins_a_connection_read_that_started_before_it_asked(
    monkeypatch, leadpipe_conn
):
    read_keys = []
    original = LeadpipeHook._aget_leadpipe_connection

    async def read_then_wait(self):  # the connection is read at once; the answer comes 50 ms later
        conn = await original(self)
        read_keys.append(conn.password)
        await asyncio.sleep(0.05)
        return conn

    monkeypatch.setattr(LeadpipeHook, "_aget_leadpipe_connection", read_then_wait)
    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        first = Subscription(AccountCondition(), 10)
        subscribe("leadpipe_default", {}, first)
        while not read_keys:
            await asyncio.sleep(0.005)
        leadpipe_conn(password="sk_live_ROTATED_0a1b2c3d")  # while the first read is in flight
        second = Subscription(AccountCondition(), 10)
        subscribe("leadpipe_default", {}, second)
        await eventually(lambda: first.answers and second.answers)
        first.leave()
        second.leave()

    assert read_keys == [API_KEY, "sk_live_ROTATED_0a1b2c3d"]
    assert first.poller is not second.poller and first.poller.key != second.poller.key
    assert sorted(api.keys) == sorted([API_KEY, "sk_live_ROTATED_0a1b2c3d"])  # one poll per key
    assert _pollers() == []  # both stopped when their only subscriber left


async def test_a_subscription_that_leaves_before_its_read_is_never_attached(lookups):
    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        staying, leaving = Subscription(AccountCondition(), 10), Subscription(AccountCondition(), 10)
        subscribe("leadpipe_default", {}, staying)
        subscribe("leadpipe_default", {}, leaving)
        leaving.leave()  # a trigger cancelled while its connection is being read
        await eventually(lambda: staying.answers)
        assert leaving.poller is None and leaving.answers == 0
        assert staying.poller is not None and staying.poller.subscribers == 1
        staying.leave()
        alone = Subscription(AccountCondition(), 10)
        subscribe("leadpipe_default", {}, alone)
        alone.leave()
        await asyncio.sleep(2 * LOOKUP_GATHER)
    assert lookups == ["leadpipe_default"]  # the read nobody waited for any more never ran
    assert api.calls == 1 and _pollers() == []


async def test_a_failed_connection_read_finishes_every_waiting_subscription_with_an_error():
    waiting = [Subscription(AccountCondition(), 10) for _ in range(3)]
    for subscription in waiting:
        subscribe("no_such_connection", {}, subscription)
    await eventually(lambda: all(s.result is not None for s in waiting))
    assert {s.result["status"] for s in waiting} == {"error"}
    assert all("no_such_connection" in s.result["message"] for s in waiting)
    assert all(s.poller is None for s in waiting) and _pollers() == []


async def test_a_bug_while_handing_triggers_to_their_poller_gives_each_an_error_event_at_once(
    monkeypatch, caplog
):
    original = AccountPoller.attach

    def attach(poller, subscription):
        if subscription is waiting[1]:
            raise RuntimeError("a bug in attach")
        return original(poller, subscription)

    monkeypatch.setattr(AccountPoller, "attach", attach)
    unretrieved = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: unretrieved.append(context))
    with respx.mock() as router:
        AccountAPI(router, account(0))
        waiting = [Subscription(AccountCondition(), 10) for _ in range(3)]
        for subscription in waiting:
            subscribe("leadpipe_default", {}, subscription)
        await eventually(lambda: waiting[0].answers and all(s.result for s in waiting[1:]), timeout=60)
        waiting[0].leave()
    # The first was handed over; the one that broke and the one after it are told, not left hanging.
    assert waiting[0].result is None and waiting[0].poller is not None
    assert [s.result["error"] for s in waiting[1:]] == ["RuntimeError", "RuntimeError"]
    assert "handing triggers to their poller failed" in caplog.text
    assert unretrieved == []


async def test_a_connection_is_read_in_the_context_of_the_trigger_that_asked(monkeypatch):
    # Airflow's triggerer binds per-team secrets lookups and log routing to each trigger's context.
    team = contextvars.ContextVar("team", default=None)
    seen = []
    original = LeadpipeHook._aget_leadpipe_connection

    async def spy(self):
        seen.append(team.get())
        return await original(self)

    monkeypatch.setattr(LeadpipeHook, "_aget_leadpipe_connection", spy)

    async def ask(name):
        team.set(name)
        subscription = Subscription(AccountCondition(), 10)
        subscribe("leadpipe_default", {}, subscription)
        await eventually(lambda: subscription.answers)
        subscription.leave()

    with respx.mock() as router:
        AccountAPI(router, account(0))
        await asyncio.create_task(ask("team-a"))
        await asyncio.sleep(LOOKUP_GATHER)
        await asyncio.create_task(ask("team-b"))
    assert seen == ["team-a", "team-b"]


async def test_one_poller_and_one_client_per_connection(monkeypatch):
    clients = []
    original_aget_conn = LeadpipeHook.aget_conn

    async def counting_aget_conn(self):
        client = await original_aget_conn(self)
        if client not in clients:
            clients.append(client)
        return client

    monkeypatch.setattr(LeadpipeHook, "aget_conn", counting_aget_conn)
    with respx.mock() as router:
        AccountAPI(router, account(0))
        for name in "abc":
            AccountAPI(router, account(0), base_url=f"https://{name}.api.test")
        conns = ["leadpipe_default", "lp_a", "lp_b", "lp_c"]
        tasks = start(*(trigger(conn_id=conns[i % 4]) for i in range(200)))
        # Every connection's API answered once (a fixed short sleep was flaky on a loaded machine).
        await eventually(lambda: all(route.called for route in router.routes))
        pollers = _REGISTRY[asyncio.get_running_loop()].values()
        await eventually(lambda: sum(p.subscribers for p in pollers) == 200)  # each read its connection
        assert sorted(p.conn_id for p in pollers) == sorted(conns)
        assert all(p.subscribers == 50 for p in pollers)
        await stop(tasks)
    assert len(clients) == 4  # no per-trigger client


async def test_a_status_change_reaches_every_trigger_on_the_same_answer():
    with respx.mock() as router:
        api = AccountAPI(router, account(0), account(0), account(0), account(480))
        events = await asyncio.gather(*(t.run().__anext__() for t in [trigger() for _ in range(500)]))
    assert {e.payload["status"] for e in events} == {"success"}
    # All 500 finished on the 4th answer: the change reached every trigger within one interval.
    assert api.calls == 4


async def test_each_trigger_judges_its_own_condition_and_keeps_its_own_deadline():
    with respx.mock() as router:
        api = AccountAPI(router, account(300, intent=None))
        events = await asyncio.gather(
            trigger(min_credits=100).run().__anext__(),  # satisfied
            trigger(min_credits=1000, timeout=0.3).run().__anext__(),  # never: times out
            trigger(min_credits=1, min_audience_slots=1).run().__anext__(),  # no intent: fails fast
            trigger(min_credits=1, max_percent_used=10, timeout=0.15).run().__anext__(),  # 40% used
        )
    assert [e.payload["status"] for e in events] == ["success", "timeout", "failure", "timeout"]
    assert "200 credits left, need 1000" not in events[1].payload["message"]
    assert "300 credits left, need 1000" in events[1].payload["message"]
    assert "40% of credits used, max 10%" in events[3].payload["message"]
    assert api.calls <= 0.3 / 0.05 + 2  # still one shared poll


async def test_a_failing_connection_does_not_disturb_the_others():
    with respx.mock() as router:
        AccountAPI(router, account(0), account(480))  # leadpipe_default recovers
        AccountAPI(router, 401, base_url="https://a.api.test")  # bad key
        down = AccountAPI(router, 503, base_url="https://b.api.test")  # outage
        AccountAPI(router, {"unexpected": True}, base_url="https://c.api.test")  # malformed
        healthy, bad_key, outage, malformed = start(
            trigger(conn_id="leadpipe_default"),
            trigger(conn_id="lp_a"),
            trigger(conn_id="lp_b"),
            trigger(conn_id="lp_c"),
        )
        assert (await healthy).payload["status"] == "success"
        assert (await bad_key).payload["error"] == "LeadpipeAuthError"
        assert (await malformed).payload["status"] == "error"
        await eventually(lambda: down.calls >= 2)
        assert not outage.done()  # transient: keeps waiting
        await stop([outage])


async def test_different_intervals_share_the_poll_at_the_shortest_interval():
    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        slow = start(trigger(interval=30))
        await eventually(lambda: api.calls >= 1)
        await asyncio.sleep(0.1)
        assert api.calls == 1  # the slow trigger alone: one fetch, then a 30 s wait
        fast = start(trigger(interval=0.05))  # the poller re-plans at once
        await eventually(lambda: api.calls >= 4, timeout=20)  # 20 s: below the slow 30 s interval
        api.switch(account(480))
        done = await asyncio.wait_for(asyncio.gather(*slow, *fast), timeout=20)  # as above
    # The slow trigger got the change from the shared fast poll, long before its own 30 s.
    assert [e.payload["status"] for e in done] == ["success", "success"]


async def test_a_newcomer_is_answered_from_a_fresh_shared_answer_without_a_new_request():
    with respx.mock() as router:
        api = AccountAPI(router, account(300))
        waiting = start(trigger(min_credits=1000, interval=30))
        await eventually(lambda: api.calls >= 1)
        assert api.calls == 1
        # 20 s: a safety net below the 30 s interval (a new poll would also show in api.calls).
        event = await asyncio.wait_for(trigger(min_credits=100, interval=30).run().__anext__(), timeout=20)
        assert event.payload["status"] == "success"
        assert api.calls == 1
        await stop(waiting)


async def test_the_poller_stops_and_closes_its_client_when_the_last_trigger_leaves(monkeypatch):
    closed = []
    original_aclose = LeadpipeHook.aclose

    async def counting_aclose(self):
        closed.append(self.leadpipe_conn_id)
        await original_aclose(self)

    monkeypatch.setattr(LeadpipeHook, "aclose", counting_aclose)
    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        tasks = start(trigger(), trigger())
        await eventually(lambda: api.calls >= 1)
        [poller] = _REGISTRY[asyncio.get_running_loop()].values()
        assert poller.running and poller.subscribers == 2
        await stop(tasks[:1])
        assert poller.running and poller.subscribers == 1
        await stop(tasks[1:])
        await eventually(lambda: not poller.running)
        assert poller.subscribers == 0
        assert poller not in _REGISTRY.get(asyncio.get_running_loop(), {}).values()
        calls = api.calls
        await asyncio.sleep(0.15)
        assert api.calls == calls  # nothing polls any more
    assert closed == ["leadpipe_default"]


async def test_the_poller_ends_and_closes_its_client_when_every_trigger_has_its_event(monkeypatch):
    closed = []
    original_aclose = LeadpipeHook.aclose

    async def slow_aclose(self):
        await asyncio.sleep(0.02)  # the triggers leave meanwhile; closing must not be cancelled
        await original_aclose(self)
        closed.append(self.leadpipe_conn_id)

    monkeypatch.setattr(LeadpipeHook, "aclose", slow_aclose)
    with respx.mock() as router:
        AccountAPI(router, account(480))
        await asyncio.gather(*(t.run().__anext__() for t in [trigger(), trigger()]))
        await eventually(lambda: closed == ["leadpipe_default"])
        assert not _REGISTRY.get(asyncio.get_running_loop())
    assert closed == ["leadpipe_default"]


def test_fresh_state_in_every_event_loop():
    loops = []

    def run_in_new_loop() -> int:
        async def main():
            loops.append(weakref.ref(asyncio.get_running_loop()))
            with respx.mock() as router:
                api = AccountAPI(router, account(0))
                # Left running when the loop ends, as dag.test / a test may do.
                start(trigger(interval=30))
                await eventually(lambda: api.calls >= 1)
                await asyncio.sleep(0.05)  # and no second fetch
                [poller] = _REGISTRY[asyncio.get_running_loop()].values()
                assert poller.conn_id == "leadpipe_default"
                return api.calls

        return asyncio.run(main())

    # A 30 s interval: the second loop fetches at once only because it shares nothing with the first.
    assert run_in_new_loop() == 1
    assert run_in_new_loop() == 1
    assert run_in_new_loop() == 1
    gc.collect()
    # Nothing keeps an ended loop alive (asgiref, under Airflow's connection lookup, holds the
    # latest loop in a thread-local until the next one starts).
    assert [ref() for ref in loops[:2]] == [None, None]
    assert all(loop in (None, loops[-1]()) for loop in [*_REGISTRY, *_READS])


async def test_a_rotated_key_is_picked_up_by_a_long_waiting_trigger(monkeypatch, leadpipe_conn):
    new_key = "sk_live_ROTATED_0a1b2c3d"

    def by_key(request):
        return account(480) if request.headers["X-API-Key"] == new_key else 401

    with respx.mock() as router:
        api = AccountAPI(router, account(0))
        tasks = start(trigger())
        await eventually(lambda: api.calls >= 1)  # polled with the old key: the poller holds its hook
        monkeypatch.setenv(
            "AIRFLOW_CONN_LEADPIPE_DEFAULT",
            json.dumps(
                {"conn_type": "leadpipe", "password": new_key, "extra": json.dumps({"max_retries": 0})}
            ),
        )
        api.switch(by_key)
        [event] = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)  # only a safety net
    assert event.payload["status"] == "success"
    # One 401 with the old key, then the trigger read its connection again and polled with the new one.
    assert api.keys[-2:] == [API_KEY, new_key]


async def test_the_poller_runs_outside_any_trigger_context():
    # The triggerer routes log lines by context variables bound in each trigger's task; the
    # shared poller must not inherit the first trigger's.
    marker = contextvars.ContextVar("trigger_id", default=None)
    seen = []
    original = LeadpipeHook.aget_account_status

    async def spy(self):
        seen.append(marker.get())
        return await original(self)

    with respx.mock() as router, pytest.MonkeyPatch.context() as mp:
        mp.setattr(LeadpipeHook, "aget_account_status", spy)
        AccountAPI(router, account(480))
        marker.set("trigger-1")
        event = await trigger().run().__anext__()
    assert event.payload["status"] == "success"
    assert seen == [None]
