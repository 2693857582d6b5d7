"""Asset watchers: turn a Leadpipe change into asset events (event-driven scheduling, Airflow >= 3.0).

The triggers are **edge-triggered**: the first observation after a start is the baseline and
yields nothing; afterwards each change yields exactly one event, and a state that stays as it is
yields nothing more (a level-triggered watcher would start a DAG run on every poll).

- :class:`LeadpipeAccountEventTrigger`: the account passes from not satisfying an account condition
  (the sensor's checks, same names and defaults) to satisfying it, e.g. credits are back after the
  monthly reset. Payload: ``account`` (the status dict), ``changed_at`` (ISO 8601, UTC), ``message``.
- :class:`LeadpipeAudienceRunEventTrigger`: a run of an audience newly reaches ``completed`` (daily
  or manual); one event per run, oldest completion first. Payload: ``audience_id``, ``run`` (the run
  dict: ``id``, ``dataDate``, ``resultCount``... never people), ``message``.
- :class:`~airflow_provider_leadpipe.triggers.credits.LeadpipeCreditsLowEventTrigger` (its own
  module, on :class:`AccountWatcherBase`): the other edge, credits falling below a threshold.

**The watermark** (the last state seen / the completed runs seen) lives in the asset state store
when the triggerer injects one (Airflow >= 3.3, a watcher on exactly one asset): a trigger re-created
after a triggerer restart or a re-parse carries on from it, so it neither repeats nor misses a
change. Otherwise (Airflow 3.0-3.2, a trigger shared by several assets, a trigger run outside a
triggerer) it lives in memory, with one warning: a re-created trigger takes a new baseline, so a
change that happened while no trigger ran is missed, and nothing is repeated. The store is written
right after each event is handed to the triggerer.

Transient API errors never end a watcher (it logs them and polls again); a refused key (HTTP
401/403) or a missing connection is logged as an error and retried every :data:`SLOW_RETRY`
seconds, reading the connection again (a rotated key is picked up). All kwargs are JSON-native
(no tuples: on Airflow 3.2 they make the watcher be re-created on every parse); the hook is built
inside :meth:`run`. The account watchers share the account poll with the sensors' triggers of the
same credential (:mod:`airflow_provider_leadpipe.triggers.poller`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pendulum
from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import TriggerEvent

from airflow_provider_leadpipe.conditions.account import (
    DEFAULT_FAIL_ON_STATUSES,
    AccountCondition,
    LeadpipeAccountError,
)
from airflow_provider_leadpipe.conditions.audiences import RECENT_RUNS
from airflow_provider_leadpipe.exceptions import TRANSIENT_ERRORS, LeadpipeAuthError, LeadpipeResponseError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.hooks.settings import sharing_key
from airflow_provider_leadpipe.models import AccountStatus
from airflow_provider_leadpipe.triggers.base import LeadpipeTriggerMixin
from airflow_provider_leadpipe.triggers.poller import AccountPoller, Answer, Subscription
from airflow_provider_leadpipe.utils import validation

#: Seconds between retries after a refused key, a missing connection or an unknown audience
#: (never less than the watcher's own ``poll_interval``).
SLOW_RETRY = 300.0

#: Errors after which the audience watcher simply polls again at its interval.
RETRY_AT_INTERVAL: tuple[type[Exception], ...] = (*TRANSIENT_ERRORS, LeadpipeResponseError)

#: How many completed run ids the audience watcher remembers (the runs list serves at most 100).
SEEN_RUNS = 200


class WatcherState:
    """A watcher's watermark: one JSON value in the asset state store, else in memory.

    Follows the amazon ``KinesisTrigger`` checkpoint: a key hashed from the watcher's identity, the
    async accessors where they exist (3.3.2) else the blocking ones in a thread (3.3.0/3.3.1), and
    an in-memory fallback with a single warning when there is no store or no single asset.
    """

    def __init__(self, trigger: BaseEventTrigger, identity: Mapping[str, Any]):
        self._trigger = trigger
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
        #: The state store key: the same for every trigger with the same identity.
        self.key = f"leadpipe-watermark-{digest}"
        self._memory: Any = None
        self._store: Any = getattr(trigger, "asset_state_store", None)
        if self._store is None:
            self._fall_back("no asset state store was injected (Airflow < 3.3, or not in a triggerer)")

    @property
    def persistent(self) -> bool:
        return self._store is not None

    def _fall_back(self, why: str) -> None:
        self._store = None
        self._trigger.log.warning(
            "%s keeps its watermark in memory: %s. A re-created trigger (triggerer restart, "
            "re-parse) takes a new baseline: changes while no trigger ran are missed.",
            type(self._trigger).__name__,
            why,
        )

    async def load(self) -> Any:
        if self._store is not None:
            try:
                if hasattr(self._store, "aget"):
                    return await self._store.aget(self.key)
                return await asyncio.to_thread(self._store.get, self.key)
            except ValueError as exc:  # several watched assets share this trigger row
                self._fall_back(str(exc))
            except Exception as exc:  # the store is unreachable: keep watching from memory
                self._trigger.log.warning("reading the watermark failed, using memory: %s", exc)
        return self._memory

    async def save(self, value: Any) -> None:
        self._memory = value
        if self._store is not None:
            # Shielded: a watcher cancelled (triggerer shutdown) just after handing an event over
            # still completes the write, so the event is not repeated after the restart.
            await asyncio.shield(self._write(value))

    async def _write(self, value: Any) -> None:
        if self._store is not None:
            try:
                if hasattr(self._store, "aset"):
                    await self._store.aset(self.key, value)
                else:
                    await asyncio.to_thread(self._store.set, self.key, value)
            except ValueError as exc:
                self._fall_back(str(exc))
            except Exception as exc:
                self._trigger.log.warning("saving the watermark failed, kept in memory: %s", exc)


def _now() -> str:
    return pendulum.now("UTC").to_iso8601_string()


class _Observer(Subscription):
    """A place at the shared account poller that keeps every answer (no verdict, never done)."""

    def __init__(self, interval: float):
        super().__init__(AccountCondition(), interval)
        self.queue: asyncio.Queue[Answer] = asyncio.Queue()

    def deliver(self, answer: Answer) -> None:
        self.answers += 1
        self.queue.put_nowait(answer)


class AccountWatcherBase(LeadpipeTriggerMixin, BaseEventTrigger):
    """The account watchers' run loop: observe the shared account poll, judge each status into a
    JSON state (:meth:`observe`), yield when a state change is an edge (:meth:`edge`), keep the
    state as the watermark. The first observation without a watermark is the baseline."""

    def identity(self) -> dict[str, Any]:
        """What names this watcher's watermark (the connection and the condition)."""
        raise NotImplementedError

    def observe(self, status: AccountStatus) -> tuple[Any, str]:
        """``status`` judged: the state to compare and keep (JSON), and why, in one line."""
        raise NotImplementedError

    def edge(self, last: Any, now: Any, status: AccountStatus, reason: str) -> dict[str, Any] | None:
        """The event's payload (logged here) when going from ``last`` to ``now`` fires, else None."""
        raise NotImplementedError

    def describe(self, state: Any) -> str:
        """A state in a few words, for the baseline's log line."""
        raise NotImplementedError

    def restore(self, saved: Any) -> Any:
        """The last state from a saved watermark (None: none, take a baseline)."""
        raise NotImplementedError

    def watermark(self, now: Any) -> dict[str, Any]:
        """The JSON value saved in the asset state store for the state ``now``."""
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        state = WatcherState(self, self.identity())
        last = self.restore(await state.load())
        resumed = last is not None  # from a saved watermark: say what the first answer decides
        while True:
            # Read here, in this trigger's context (per-team secrets), and again after a refusal.
            hook = self.new_hook()
            try:
                key = sharing_key(await hook.aget_settings())
            except Exception as exc:
                self.log.error(
                    "Leadpipe connection '%s' unusable (the watcher is NOT watching); retry in %gs: %s",
                    self.leadpipe_conn_id,
                    _slow_retry(self.poll_interval),
                    hook.redact(str(exc) or type(exc).__name__),
                )
                await asyncio.sleep(_slow_retry(self.poll_interval))
                continue
            poller = AccountPoller.for_key(key, hook)
            observer = _Observer(self.poll_interval)
            poller.attach(observer)
            try:
                while True:
                    answer = await observer.queue.get()
                    if answer.error is not None:
                        if isinstance(answer.error, LeadpipeAuthError):
                            self.log.error(
                                "Leadpipe refused the key of connection '%s'; the watcher is NOT "
                                "watching, retries in %gs: %s",
                                self.leadpipe_conn_id,
                                _slow_retry(self.poll_interval),
                                answer.message,
                            )
                            break
                        self.log.warning("Leadpipe account check failed, will retry: %s", answer.message)
                        continue
                    assert answer.status is not None
                    now, reason = self.observe(answer.status)
                    if last is None:
                        self.log.info("baseline (%s): %s", self.describe(now), reason)
                    else:
                        payload = self.edge(last, now, answer.status, reason)
                        if resumed:
                            resumed = False
                            self.log.info(
                                "resumed from the saved watermark (%s), now %s: %s",
                                self.describe(last),
                                self.describe(now),
                                "an edge, one event" if payload is not None else "no edge, no event",
                            )
                        if payload is not None:
                            yield TriggerEvent(payload)
                    if now != last:
                        last = now
                        await state.save(self.watermark(now))
            finally:
                poller.unsubscribe(observer)
            await asyncio.sleep(_slow_retry(self.poll_interval))


class LeadpipeAccountEventTrigger(AccountWatcherBase):
    """Yield an event each time the account goes from not satisfying the condition to satisfying it.

    The condition is the sensor's (:class:`~airflow_provider_leadpipe.conditions.AccountCondition`,
    same argument names and defaults: a healthy account with at least one credit). An account in a
    ``fail_on_statuses`` status, or without the intent product when ``min_audience_slots`` is set,
    counts as not satisfying it. See the module docstring for the watermark and errors.

    :param leadpipe_conn_id: the ``leadpipe`` connection id (never the key itself).
    :param poll_interval: seconds between account checks (any positive number; default 300).
    :param hook_params: hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        require_healthy: bool = True,
        min_credits: float | None = 1,
        max_percent_used: float | None = None,
        min_audience_slots: int | None = None,
        fail_on_statuses: Any = DEFAULT_FAIL_ON_STATUSES,
        poll_interval: float = 300,
        hook_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.init_trigger(leadpipe_conn_id, poll_interval, hook_params)
        self.condition = AccountCondition(
            require_healthy=require_healthy,
            min_credits=min_credits,
            max_percent_used=max_percent_used,
            min_audience_slots=min_audience_slots,
            fail_on_statuses=fail_on_statuses,
        )

    def kwargs(self) -> dict[str, Any]:
        return {**super().kwargs(), **self.condition.to_dict()}

    def identity(self) -> dict[str, Any]:
        return {"watch": "account", "conn": self.leadpipe_conn_id, **self.condition.to_dict()}

    def observe(self, status: AccountStatus) -> tuple[bool, str]:
        try:
            return self.condition.evaluate(status)
        except LeadpipeAccountError as exc:  # e.g. an expired organization: not usable (yet)
            return False, str(exc)

    def edge(self, last: bool, now: bool, status: AccountStatus, reason: str) -> dict[str, Any] | None:
        if not now or last:
            return None
        self.log.info("condition now met: %s", reason)
        return {"account": status.to_dict(), "changed_at": _now(), "message": reason}

    def describe(self, state: bool) -> str:
        return "condition met" if state else "condition not met"

    def restore(self, saved: Any) -> bool | None:
        last = saved.get("satisfied") if isinstance(saved, dict) else None
        return last if isinstance(last, bool) else None

    def watermark(self, now: bool) -> dict[str, Any]:
        return {"satisfied": now, "since": _now()}


class LeadpipeAudienceRunEventTrigger(LeadpipeTriggerMixin, BaseEventTrigger):
    """Yield one event per run of an audience that newly reaches ``completed`` (daily or manual).

    Runs already completed at the first observation are the baseline. Several runs completed
    between two polls yield one event each, oldest completion first. Failed and cancelled runs
    yield nothing. See the module docstring for the watermark and errors.

    :param leadpipe_conn_id: the ``leadpipe`` connection id (never the key itself).
    :param audience_id: the audience (UUID).
    :param poll_interval: seconds between checks of the audience's runs (any positive number).
    :param hook_params: hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        audience_id: str,
        poll_interval: float = 300,
        hook_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.init_trigger(leadpipe_conn_id, poll_interval, hook_params)
        self.audience_id = validation.uuid_id(audience_id, "audience_id")

    def kwargs(self) -> dict[str, Any]:
        return {**super().kwargs(), "audience_id": self.audience_id}

    def described(self) -> str:
        return f"audience_id={self.audience_id!r}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        state = WatcherState(
            self, {"watch": "audience-runs", "conn": self.leadpipe_conn_id, "audience": self.audience_id}
        )
        saved = await state.load()
        seen: list[str] | None = None
        if isinstance(saved, dict) and isinstance(saved.get("completed"), list):
            seen = [str(run_id) for run_id in saved["completed"]]
        resumed = seen is not None  # from a saved watermark: say what the first answer finds
        while True:
            delay = self.poll_interval
            try:
                async with self.new_hook() as hook:
                    while True:
                        runs = await hook.alist_audience_runs(self.audience_id, limit=RECENT_RUNS)
                        completed = [run for run in reversed(runs) if run.status.is_success]
                        if seen is None:
                            self.log.info(
                                "baseline: %d completed run(s) of audience %s",
                                len(completed),
                                self.audience_id,
                            )
                        else:
                            known = set(seen)
                            new = sorted(
                                (run for run in completed if run.id not in known),
                                key=lambda run: run.completed_at or run.created_at or "",
                            )
                            if resumed:
                                resumed = False
                                self.log.info(
                                    "resumed from the saved watermark (%d completed run(s) known): "
                                    "%d new completed run(s)",
                                    len(known),
                                    len(new),
                                )
                            for run in new:
                                message = f"audience {self.audience_id}: run {run.id} completed"
                                self.log.info("%s", message)
                                yield TriggerEvent(
                                    {
                                        "audience_id": self.audience_id,
                                        "run": run.to_dict(),
                                        "message": message,
                                    }
                                )
                                seen = _remember(seen, [run.id])
                                await state.save({"completed": seen})
                        remembered = _remember(seen or [], [run.id for run in completed])
                        if remembered != seen:
                            seen = remembered
                            await state.save({"completed": seen})
                        await asyncio.sleep(self.poll_interval)
            except RETRY_AT_INTERVAL as exc:
                self.log.warning("Leadpipe audience runs check failed, will retry: %s", exc)
            except Exception as exc:  # refused key, unknown audience, no connection: never end
                delay = _slow_retry(self.poll_interval)
                self.log.error(
                    "Leadpipe audience %s cannot be watched (the watcher is NOT watching); retry in %gs: %s",
                    self.audience_id,
                    delay,
                    exc,
                )
            await asyncio.sleep(delay)


def _slow_retry(poll_interval: float) -> float:
    """Seconds before retrying what a poll cannot fix (read at call time: tests shorten it)."""
    return max(SLOW_RETRY, poll_interval)


def _remember(seen: list[str], ids: list[str]) -> list[str]:
    """``seen`` plus ``ids`` (new ones last), keeping the newest :data:`SEEN_RUNS`."""
    known = set(seen)
    merged = seen + [run_id for run_id in ids if run_id not in known]
    return merged[-SEEN_RUNS:]
