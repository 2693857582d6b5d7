"""The asset watchers against the sandbox over loopback HTTP: edge semantics, watermark, errors."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.triggers import watchers
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from airflow_provider_leadpipe.triggers.poller import _REGISTRY
from airflow_provider_leadpipe.triggers.watchers import (
    LeadpipeAccountEventTrigger,
    LeadpipeAudienceRunEventTrigger,
)
from leadpipe_sandbox import Fault

ACCOUNT = "/v1/data/account"
RUNS = "/v1/intent/audiences/{audienceId}/runs"  # as the sandbox counts requests
try:
    from airflow.triggers.base import BaseEventTrigger as CoreBaseEventTrigger
except ImportError:  # Airflow 2.x: no asset watchers; the triggers fall back to BaseTrigger
    CoreBaseEventTrigger = None
needs_watchers = pytest.mark.skipif(CoreBaseEventTrigger is None, reason="asset watchers need Airflow >= 3.0")

FAST = {"max_retries": 0, "timeout": 5}


class Watching:
    """A watcher's run() in a background task, collecting its event payloads."""

    def __init__(self, trigger):
        self.trigger = trigger
        self.events: list[dict] = []
        self.task = asyncio.ensure_future(self._collect())

    async def _collect(self):
        async for event in self.trigger.run():
            json.dumps(event.payload)  # JSON-native: the triggerer stores it
            self.events.append(event.payload)

    async def stop(self):
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def logged(task_log, text):
    """The levels (lower case) of the log lines containing ``text`` (structlog on 3.x, stdlib on 2.x)."""
    return [str(e.get("log_level")) for e in task_log._entries if text in str(e.get("event"))] + [
        r.levelname.lower() for r in task_log._caplog.records if text in r.getMessage()
    ]


def leaked(key, text):
    """Whether ``key`` is in ``text`` outside this test's own calls to the sandbox's control API
    (whose URLs name the key, and which httpx logs on Airflow 2.x)."""
    return any(key in line for line in text.splitlines() if "/_sandbox/" not in line)


async def eventually(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def polls(sandbox, path, more=2, **kwargs):
    """Wait until the sandbox saw ``more`` further requests on ``path`` (the watcher observed it)."""
    start = sandbox.request_count(path, **kwargs)
    await eventually(lambda: sandbox.request_count(path, **kwargs) >= start + more)


class DictStore:
    """An asset state store accessor as the triggerer injects one (Airflow >= 3.3.2: async)."""

    def __init__(self):
        self.data: dict = {}

    async def aget(self, key, default=None):
        return self.data.get(key, default)

    async def aset(self, key, value):
        json.dumps(value)  # the store holds JSON values only
        self.data[key] = value


class BlockingStore:
    """The 3.3.0 / 3.3.1 accessor: blocking ``get``/``set`` only (called in a thread)."""

    def __init__(self):
        self.data: dict = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value


def account_watcher(**kwargs):
    kwargs.setdefault("poll_interval", 0.03)
    kwargs.setdefault("hook_params", FAST)
    return LeadpipeAccountEventTrigger(leadpipe_conn_id="leadpipe_default", **kwargs)


def runs_watcher(audience_id, **kwargs):
    kwargs.setdefault("poll_interval", 0.03)
    kwargs.setdefault("hook_params", FAST)
    return LeadpipeAudienceRunEventTrigger(
        leadpipe_conn_id="leadpipe_default", audience_id=audience_id, **kwargs
    )


def recreate(trigger):
    """A trigger rebuilt from its serialized kwargs, as the triggerer does after a restart."""
    _, kwargs = trigger.serialize()
    return type(trigger)(**json.loads(json.dumps(kwargs)))


@pytest.fixture
def audience(leadpipe_sandbox):
    return leadpipe_sandbox.create_audience("Watched audience", people=5)


# -- construction -------------------------------------------------------------------------------


@needs_watchers
def test_event_triggers_usable_as_asset_watchers():
    from airflow.sdk import AssetWatcher

    AssetWatcher(name="credits", trigger=LeadpipeAccountEventTrigger())  # refuses non-event triggers
    assert issubclass(LeadpipeAccountEventTrigger, CoreBaseEventTrigger)
    assert issubclass(LeadpipeAudienceRunEventTrigger, CoreBaseEventTrigger)


def test_account_kwargs_are_json_native_with_the_sensors_names():
    trigger = LeadpipeAccountEventTrigger(min_credits="50", fail_on_statuses="expired, suspended")
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_leadpipe.triggers.watchers.LeadpipeAccountEventTrigger"
    assert kwargs == {
        "leadpipe_conn_id": "leadpipe_default",
        "require_healthy": True,
        "min_credits": 50,
        "max_percent_used": None,
        "min_audience_slots": None,
        "fail_on_statuses": ["expired", "suspended"],
        "poll_interval": 300.0,
        "hook_params": {},
    }
    assert json.loads(json.dumps(kwargs)) == kwargs  # no tuples (they would come back as lists)
    assert recreate(trigger).serialize() == (path, kwargs)
    # The DAG processor identifies a watcher by this hash: equal kwargs, equal watcher.
    if CoreBaseEventTrigger is not None:
        assert CoreBaseEventTrigger.hash(path, kwargs) == CoreBaseEventTrigger.hash(
            *recreate(trigger).serialize()
        )


def test_audience_kwargs_are_json_native():
    trigger = LeadpipeAudienceRunEventTrigger(
        audience_id=" 3F2C0E1A-1111-4222-8333-944455556666 ", poll_interval="0.5", hook_params={"timeout": 9}
    )
    _, kwargs = trigger.serialize()
    assert kwargs == {
        "leadpipe_conn_id": "leadpipe_default",
        "audience_id": "3f2c0e1a-1111-4222-8333-944455556666",
        "poll_interval": 0.5,
        "hook_params": {"timeout": 9},
    }
    assert json.loads(json.dumps(kwargs)) == kwargs


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LeadpipeAccountEventTrigger(poll_interval=0), "poll_interval"),
        (lambda: LeadpipeAccountEventTrigger(poll_interval="soon"), "poll_interval"),
        (lambda: LeadpipeAccountEventTrigger(min_credits=-1), "min_credits"),
        (lambda: LeadpipeAccountEventTrigger(max_percent_used=101), "max_percent_used"),
        (lambda: LeadpipeAccountEventTrigger(hook_params={"retries": 1}), "retries"),
        (lambda: LeadpipeAccountEventTrigger(leadpipe_conn_id=""), "conn"),
        (lambda: LeadpipeAudienceRunEventTrigger(audience_id="aud_1"), "audience_id"),
        (lambda: LeadpipeAudienceRunEventTrigger(audience_id=None), "audience_id"),
        (
            lambda: LeadpipeAudienceRunEventTrigger(
                audience_id="3f2c0e1a-1111-4222-8333-944455556666", poll_interval=-2
            ),
            "poll_interval",
        ),
    ],
)
def test_bad_kwargs_are_refused_naming_the_argument(make, match):
    with pytest.raises(LeadpipeConfigError, match=match):
        make()


# -- the account watcher ------------------------------------------------------------------------


async def test_a_level_that_stays_true_yields_nothing(leadpipe_sandbox):
    watching = Watching(account_watcher())
    await polls(leadpipe_sandbox, ACCOUNT, more=6)
    await watching.stop()
    assert watching.events == []


async def test_false_true_false_true_yields_exactly_two_events(leadpipe_sandbox, task_log):
    leadpipe_sandbox.exhaust_credits()
    watching = Watching(account_watcher())
    await polls(leadpipe_sandbox, ACCOUNT)  # baseline: not usable
    leadpipe_sandbox.reset_credits()
    await eventually(lambda: len(watching.events) == 1)
    await polls(leadpipe_sandbox, ACCOUNT)  # stays usable: nothing more
    assert len(watching.events) == 1
    leadpipe_sandbox.exhaust_credits()
    await polls(leadpipe_sandbox, ACCOUNT)
    leadpipe_sandbox.reset_credits()
    await eventually(lambda: len(watching.events) == 2)
    await polls(leadpipe_sandbox, ACCOUNT, more=3)
    await watching.stop()

    assert len(watching.events) == 2
    first = watching.events[0]
    assert set(first) == {"account", "changed_at", "message"}
    assert first["account"]["healthy"] is True
    assert first["account"]["credits"]["remaining"] > 0
    assert first["changed_at"].endswith("Z") or "+00:00" in first["changed_at"]
    # The key appears in no payload and no log line.
    assert leadpipe_sandbox.api_key not in json.dumps(watching.events)
    assert logged(task_log, "condition now met") == ["info", "info"]
    assert not leaked(leadpipe_sandbox.api_key, str(task_log))


async def test_an_account_that_expires_counts_as_not_usable(leadpipe_sandbox):
    leadpipe_sandbox.set_organization(status="expired")
    watching = Watching(account_watcher())
    await polls(leadpipe_sandbox, ACCOUNT)
    leadpipe_sandbox.set_organization(status="active")
    await eventually(lambda: len(watching.events) == 1)
    await watching.stop()


async def test_transient_errors_never_end_the_watcher(leadpipe_sandbox):
    leadpipe_sandbox.exhaust_credits()
    watching = Watching(account_watcher())
    await polls(leadpipe_sandbox, ACCOUNT)
    leadpipe_sandbox.queue_faults(
        Fault.unavailable(count=4, path=ACCOUNT), Fault.malformed_json(path=ACCOUNT)
    )
    await polls(leadpipe_sandbox, ACCOUNT, more=6)
    assert leadpipe_sandbox.key_state()["pendingFaults"] == []
    assert not watching.task.done()
    leadpipe_sandbox.reset_credits()
    await eventually(lambda: len(watching.events) == 1)
    await watching.stop()


async def test_a_refused_key_is_logged_loudly_and_retried_slowly(leadpipe_sandbox, monkeypatch, task_log):
    monkeypatch.setattr(watchers, "SLOW_RETRY", 0.3)
    good = leadpipe_sandbox.connection_json()
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEADPIPE_DEFAULT", leadpipe_sandbox.connection_json(api_key="sk_test_nobody")
    )
    leadpipe_sandbox.exhaust_credits()
    watching = Watching(account_watcher())
    await eventually(lambda: logged(task_log, "NOT watching"))
    assert logged(task_log, "NOT watching")[0] == "error"
    assert not watching.task.done()
    before, began = leadpipe_sandbox.request_count(ACCOUNT), time.monotonic()
    await asyncio.sleep(0.2)
    retries, elapsed = leadpipe_sandbox.request_count(ACCOUNT) - before, time.monotonic() - began
    # Slow: one retry per SLOW_RETRY (0.3 s), not one per poll_interval (0.03 s). The bound grows with
    # the time that really passed (a busy machine may sleep longer than asked).
    assert retries <= 1 + elapsed / 0.3, (retries, elapsed)
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", good)  # the key is fixed: picked up
    await polls(leadpipe_sandbox, ACCOUNT, api_key=leadpipe_sandbox.api_key)
    leadpipe_sandbox.reset_credits()
    await eventually(lambda: len(watching.events) == 1)
    await watching.stop()
    assert not leaked("sk_test_nobody", str(task_log))


async def test_the_watcher_shares_the_account_poll_with_the_sensors_trigger(leadpipe_sandbox):
    leadpipe_sandbox.exhaust_credits()
    sensor_trigger = LeadpipeAccountTrigger(
        leadpipe_conn_id="leadpipe_default",
        poll_interval=0.03,
        deadline=time.time() + 30,
        hook_params=FAST,
    )
    sensor = asyncio.ensure_future(sensor_trigger.run().__anext__())
    watching = Watching(account_watcher())
    await polls(leadpipe_sandbox, ACCOUNT)
    [poller] = _REGISTRY[asyncio.get_running_loop()].values()
    assert poller.subscribers == 2
    leadpipe_sandbox.reset_credits()
    await eventually(lambda: len(watching.events) == 1 and sensor.done())
    assert sensor.result().payload["status"] == "success"
    await watching.stop()


# -- the audience runs watcher ------------------------------------------------------------------


async def test_each_new_completed_run_yields_one_event_in_order(leadpipe_sandbox, audience, task_log):
    leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-11-01")  # before: the baseline
    runs = RUNS
    watching = Watching(runs_watcher(audience["id"]))
    await polls(leadpipe_sandbox, runs)
    first = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-11-02")
    second = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-11-03")
    leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-11-04", status="failed")
    await eventually(lambda: len(watching.events) == 2)
    await polls(leadpipe_sandbox, runs, more=4)
    await watching.stop()

    assert [e["run"]["id"] for e in watching.events] == [first["id"], second["id"]]
    assert [e["run"]["dataDate"] for e in watching.events] == ["2026-11-02", "2026-11-03"]
    event = watching.events[0]
    assert event["audience_id"] == audience["id"]
    assert event["run"]["status"] == "completed"
    assert event["run"]["resultCount"] == 5
    assert "results" not in event["run"] and "people" not in json.dumps(event)
    assert leadpipe_sandbox.api_key not in json.dumps(watching.events)
    assert not leaked(leadpipe_sandbox.api_key, str(task_log))


async def test_a_run_that_completes_later_yields_when_it_completes(leadpipe_sandbox, audience):
    leadpipe_sandbox.set_run_schedule(queued_polls=2, running_polls=2)
    queued = leadpipe_sandbox.add_daily_run(audience["id"], status="queued")
    watching = Watching(runs_watcher(audience["id"]))
    await eventually(lambda: len(watching.events) == 1)
    await watching.stop()
    assert watching.events[0]["run"]["id"] == queued["id"]


@pytest.mark.parametrize("store_type", [DictStore, BlockingStore])
async def test_recreated_with_a_saved_watermark_neither_repeats_nor_misses(
    leadpipe_sandbox, audience, store_type, task_log
):
    store = store_type()
    runs = RUNS
    trigger = runs_watcher(audience["id"])
    trigger.asset_state_store = store
    watching = Watching(trigger)
    await polls(leadpipe_sandbox, runs)
    one = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-11-05")
    await eventually(lambda: len(watching.events) == 1 and one["id"] in json.dumps(store.data))
    await watching.stop()  # triggerer restart

    two = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-11-06")  # while nothing ran
    again = recreate(trigger)
    again.asset_state_store = store
    rewatching = Watching(again)
    await eventually(lambda: len(rewatching.events) == 1)
    await polls(leadpipe_sandbox, runs, more=4)
    await rewatching.stop()
    assert watching.events[0]["run"]["id"] == one["id"]
    assert [e["run"]["id"] for e in rewatching.events] == [two["id"]]  # no repeat of one, two not missed
    assert len(store.data) == 1  # one watermark, rewritten in place
    resumed = "resumed from the saved watermark (1 completed run(s) known): 1 new completed run(s)"
    assert logged(task_log, resumed) == ["info"]


async def test_account_watermark_survives_recreation(leadpipe_sandbox, task_log):
    store = DictStore()
    leadpipe_sandbox.exhaust_credits()
    trigger = account_watcher()
    trigger.asset_state_store = store
    watching = Watching(trigger)
    await polls(leadpipe_sandbox, ACCOUNT)
    await watching.stop()
    assert [value["satisfied"] for value in store.data.values()] == [False]

    leadpipe_sandbox.reset_credits()  # credits came back while no trigger ran
    again = recreate(trigger)
    again.asset_state_store = store
    rewatching = Watching(again)
    await eventually(lambda: len(rewatching.events) == 1)  # not missed
    await rewatching.stop()

    third = recreate(trigger)
    third.asset_state_store = store
    watching = Watching(third)
    await polls(leadpipe_sandbox, ACCOUNT, more=4)
    await watching.stop()
    assert watching.events == []  # not repeated
    assert logged(
        task_log, "resumed from the saved watermark (condition met), now condition met: no edge"
    ) == ["info"]


async def test_without_a_store_the_watermark_is_in_memory_with_one_warning(
    leadpipe_sandbox, audience, task_log
):
    runs = RUNS
    trigger = runs_watcher(audience["id"])
    watching = Watching(trigger)
    await polls(leadpipe_sandbox, runs, more=4)
    await watching.stop()
    assert logged(task_log, "keeps its watermark in memory") == ["warning"]

    # Documented: a re-created trigger without a store takes a new baseline, so a run that
    # completed while no trigger ran is missed; nothing is repeated.
    leadpipe_sandbox.add_daily_run(audience["id"])
    rewatching = Watching(recreate(trigger))
    await polls(leadpipe_sandbox, runs, more=4)
    later = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-11-20")
    await eventually(lambda: len(rewatching.events) == 1)
    await rewatching.stop()
    assert [e["run"]["id"] for e in rewatching.events] == [later["id"]]


async def test_an_unknown_audience_is_logged_and_retried_not_ended(leadpipe_sandbox, monkeypatch, task_log):
    monkeypatch.setattr(watchers, "SLOW_RETRY", 0.05)
    watching = Watching(runs_watcher("00000000-0000-4000-8000-000000000000"))
    await eventually(lambda: len(logged(task_log, "NOT watching")) >= 2)
    assert set(logged(task_log, "NOT watching")) == {"error"}
    assert not watching.task.done()
    await watching.stop()


async def test_a_missing_connection_is_logged_loudly_and_picked_up_later(
    leadpipe_sandbox, monkeypatch, task_log
):
    monkeypatch.setattr(watchers, "SLOW_RETRY", 0.1)
    good = leadpipe_sandbox.connection_json()
    monkeypatch.delenv("AIRFLOW_CONN_LEADPIPE_DEFAULT")
    leadpipe_sandbox.exhaust_credits()
    watching = Watching(account_watcher())
    await eventually(lambda: logged(task_log, "NOT watching"))
    assert set(logged(task_log, "NOT watching")) == {"error"}
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", good)
    await polls(leadpipe_sandbox, ACCOUNT)
    leadpipe_sandbox.reset_credits()
    await eventually(lambda: len(watching.events) == 1)
    await watching.stop()


async def test_malformed_run_lists_are_waited_out(leadpipe_sandbox, audience):
    watching = Watching(runs_watcher(audience["id"]))
    await polls(leadpipe_sandbox, RUNS)
    leadpipe_sandbox.queue_faults(
        Fault.malformed_json(count=2, path=RUNS.replace("{audienceId}", audience["id"]))
    )
    await polls(leadpipe_sandbox, RUNS, more=3)
    assert leadpipe_sandbox.key_state()["pendingFaults"] == []  # both answers were malformed
    assert not watching.task.done()
    run = leadpipe_sandbox.add_daily_run(audience["id"])
    await eventually(lambda: len(watching.events) == 1)
    await watching.stop()
    assert watching.events[0]["run"]["id"] == run["id"]
