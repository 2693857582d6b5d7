"""The credits-low watcher against the sandbox over loopback HTTP: the downward edge, the watermark."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from airflow_provider_leadpipe.triggers.credits import LeadpipeCreditsLowEventTrigger
from airflow_provider_leadpipe.triggers.poller import _REGISTRY
from tests.unit.triggers.test_watchers import (
    ACCOUNT,
    FAST,
    CoreBaseEventTrigger,
    DictStore,
    Watching,
    eventually,
    leaked,
    logged,
    polls,
    recreate,
)

LIMIT = 1000
needs_watchers = pytest.mark.skipif(CoreBaseEventTrigger is None, reason="asset watchers need Airflow >= 3.0")


def low_watcher(**kwargs):
    kwargs.setdefault("poll_interval", 0.03)
    kwargs.setdefault("hook_params", FAST)
    return LeadpipeCreditsLowEventTrigger(leadpipe_conn_id="leadpipe_default", **kwargs)


def left(sandbox, remaining):
    """Set the account's balance to ``remaining`` of :data:`LIMIT` credits."""
    sandbox.set_credits(used=LIMIT - remaining, limit=LIMIT)


# -- construction -------------------------------------------------------------------------------


@needs_watchers
def test_usable_as_an_asset_watcher():
    from airflow.sdk import AssetWatcher

    AssetWatcher(name="credits_low", trigger=LeadpipeCreditsLowEventTrigger(min_credits=100))
    assert issubclass(LeadpipeCreditsLowEventTrigger, CoreBaseEventTrigger)


def test_kwargs_are_json_native_with_the_alerts_names():
    trigger = LeadpipeCreditsLowEventTrigger(min_credits="50", poll_interval=60)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_leadpipe.triggers.credits.LeadpipeCreditsLowEventTrigger"
    assert kwargs == {
        "leadpipe_conn_id": "leadpipe_default",
        "min_credits": 50,
        "max_percent_used": None,
        "poll_interval": 60.0,
        "hook_params": {},
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert recreate(trigger).serialize() == (path, kwargs)
    assert repr(trigger) == (
        "LeadpipeCreditsLowEventTrigger(leadpipe_conn_id='leadpipe_default', "
        "min_credits=50, poll_interval=60)"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "needs a threshold: min_credits or max_percent_used"),
        ({"min_credits": None, "max_percent_used": None}, "needs a threshold"),
        ({"min_credits": -1}, "min_credits"),
        ({"min_credits": "many"}, "min_credits"),
        ({"max_percent_used": 101}, "max_percent_used"),
        ({"min_credits": 5, "poll_interval": 0}, "poll_interval"),
    ],
)
def test_bad_or_missing_thresholds_are_refused_naming_them(kwargs, match):
    with pytest.raises(LeadpipeConfigError, match=match):
        LeadpipeCreditsLowEventTrigger(**kwargs)


def test_the_burn_rate_threshold_is_refused_with_a_typed_error_naming_it():
    with pytest.raises(
        LeadpipeConfigError, match=r"does not take exhaustion_margin_hours \(got 24\).*credit report"
    ):
        LeadpipeCreditsLowEventTrigger(min_credits=5, exhaustion_margin_hours=24)
    trigger = LeadpipeCreditsLowEventTrigger(min_credits=5, exhaustion_margin_hours=None)
    assert "exhaustion_margin_hours" not in trigger.serialize()[1]


# -- the downward edge --------------------------------------------------------------------------


async def test_an_account_already_low_is_the_baseline(leadpipe_sandbox, task_log):
    left(leadpipe_sandbox, 10)
    watching = Watching(low_watcher(min_credits=100))
    await polls(leadpipe_sandbox, ACCOUNT, more=6)
    await watching.stop()
    assert watching.events == []
    assert logged(task_log, "baseline (crossed: min_credits)") == ["info"]


async def test_one_event_per_downward_crossing_and_rearmed_when_credits_come_back(leadpipe_sandbox, task_log):
    left(leadpipe_sandbox, 500)
    leadpipe_sandbox.set_organization(name="Acme Corp")
    watching = Watching(low_watcher(min_credits=100))
    await polls(leadpipe_sandbox, ACCOUNT)  # baseline: not low
    left(leadpipe_sandbox, 150)  # falling, still above: nothing
    await polls(leadpipe_sandbox, ACCOUNT)
    assert watching.events == []
    left(leadpipe_sandbox, 80)  # crosses
    await eventually(lambda: len(watching.events) == 1)
    for remaining in (60, 40, 0):  # stays low over several polls: nothing more
        left(leadpipe_sandbox, remaining)
        await polls(leadpipe_sandbox, ACCOUNT)
    assert len(watching.events) == 1
    leadpipe_sandbox.reset_credits()  # the monthly reset: re-armed
    await polls(leadpipe_sandbox, ACCOUNT)
    assert len(watching.events) == 1
    left(leadpipe_sandbox, 99)  # falling again: fires again
    await eventually(lambda: len(watching.events) == 2)
    await polls(leadpipe_sandbox, ACCOUNT, more=4)
    await watching.stop()

    assert len(watching.events) == 2
    first, second = watching.events
    assert set(first) == {"account", "crossed", "fired", "changed_at", "message"}
    assert first["crossed"] == first["fired"] == ["min_credits"]
    assert first["account"]["credits"]["remaining"] == 80
    assert second["account"]["credits"]["remaining"] == 99
    assert first["changed_at"].endswith("Z") or "+00:00" in first["changed_at"]
    assert first["message"].startswith("Leadpipe credits low (min_credits): 80 credits left")
    assert "Acme Corp (connection leadpipe_default)" in first["message"]
    assert first["message"].endswith("Credits: 80 of 1000 left; no reset date")
    assert logged(task_log, "Leadpipe credits low") == ["warning", "warning"]
    # The key appears in no payload and no log line.
    assert leadpipe_sandbox.api_key not in json.dumps(watching.events)
    assert not leaked(leadpipe_sandbox.api_key, str(task_log))


async def test_each_threshold_has_its_own_edge(leadpipe_sandbox):
    left(leadpipe_sandbox, 500)
    watching = Watching(low_watcher(min_credits=100, max_percent_used=70))
    await polls(leadpipe_sandbox, ACCOUNT)
    left(leadpipe_sandbox, 200)  # 80 % used
    await eventually(lambda: len(watching.events) == 1)
    left(leadpipe_sandbox, 50)  # and below 100 credits
    await eventually(lambda: len(watching.events) == 2)
    await polls(leadpipe_sandbox, ACCOUNT, more=4)
    await watching.stop()
    assert [e["fired"] for e in watching.events] == [["max_percent_used"], ["min_credits"]]
    assert watching.events[1]["crossed"] == ["min_credits", "max_percent_used"]
    assert "80% of credits used, above max_percent_used=70" in watching.events[0]["message"]


async def test_an_unlimited_plan_never_runs_low(leadpipe_sandbox):
    leadpipe_sandbox.set_credits(used=5, limit=LIMIT)
    watching = Watching(low_watcher(min_credits=100, max_percent_used=50))
    await polls(leadpipe_sandbox, ACCOUNT)
    leadpipe_sandbox.set_credits(used=10**6, limit=None)
    await polls(leadpipe_sandbox, ACCOUNT, more=4)
    await watching.stop()
    assert watching.events == []


async def test_a_triggerer_restart_does_not_repeat_the_event(leadpipe_sandbox, task_log):
    store = DictStore()
    left(leadpipe_sandbox, 500)
    trigger = low_watcher(min_credits=100)
    trigger.asset_state_store = store
    watching = Watching(trigger)
    await polls(leadpipe_sandbox, ACCOUNT)
    left(leadpipe_sandbox, 50)
    await eventually(lambda: len(watching.events) == 1 and "min_credits" in json.dumps(store.data))
    await watching.stop()  # triggerer restart
    assert [value["crossed"] for value in store.data.values()] == [["min_credits"]]

    again = recreate(trigger)
    again.asset_state_store = store
    rewatching = Watching(again)
    await polls(leadpipe_sandbox, ACCOUNT, more=4)  # still low: not repeated
    assert rewatching.events == []
    resumed = "resumed from the saved watermark (crossed: min_credits), now crossed: min_credits: no edge"
    assert logged(task_log, resumed) == ["info"]
    leadpipe_sandbox.reset_credits()  # back, then low again: the re-created watcher fires
    await polls(leadpipe_sandbox, ACCOUNT)
    left(leadpipe_sandbox, 20)
    await eventually(lambda: len(rewatching.events) == 1)
    await rewatching.stop()
    assert rewatching.events[0]["account"]["credits"]["remaining"] == 20
    assert len(store.data) == 1  # one watermark, rewritten in place


async def test_a_crossing_while_no_trigger_ran_fires_when_it_starts_again(leadpipe_sandbox):
    store = DictStore()
    left(leadpipe_sandbox, 500)
    trigger = low_watcher(min_credits=100)
    trigger.asset_state_store = store
    watching = Watching(trigger)
    await polls(leadpipe_sandbox, ACCOUNT)
    await watching.stop()
    left(leadpipe_sandbox, 30)  # while the triggerer was down
    again = recreate(trigger)
    again.asset_state_store = store
    rewatching = Watching(again)
    await eventually(lambda: len(rewatching.events) == 1)
    await rewatching.stop()


async def test_the_credits_watcher_and_a_sensor_share_one_poll(leadpipe_sandbox):
    left(leadpipe_sandbox, 500)
    sensor_trigger = LeadpipeAccountTrigger(
        leadpipe_conn_id="leadpipe_default",
        poll_interval=0.03,
        deadline=time.time() + 30,
        hook_params=FAST,
        min_credits=600,
    )
    sensor = asyncio.ensure_future(sensor_trigger.run().__anext__())
    watching = Watching(low_watcher(min_credits=100))
    await polls(leadpipe_sandbox, ACCOUNT)
    [poller] = _REGISTRY[asyncio.get_running_loop()].values()
    assert poller.subscribers == 2
    left(leadpipe_sandbox, 50)
    await eventually(lambda: len(watching.events) == 1)
    leadpipe_sandbox.reset_credits()
    await eventually(sensor.done)
    assert sensor.result().payload["status"] == "success"
    await watching.stop()
