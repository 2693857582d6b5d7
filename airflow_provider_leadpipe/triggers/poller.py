"""Coalesced account polling: one request per credential per interval, however many triggers wait.

Every :class:`~airflow_provider_leadpipe.triggers.account.LeadpipeAccountTrigger` whose connection
resolves to the same account asks the same question. In one event loop (one triggerer), they
therefore share one :class:`AccountPoller` per credential:

- Sharing follows what the connection *resolves to*, not its id: each trigger's connection is
  read in that trigger's context (as the triggerer's per-team secrets lookup requires) and the
  trigger joins the poller of :func:`~airflow_provider_leadpipe.hooks.settings.sharing_key` of those
  settings (base URL, a salted fingerprint of the key, proxy, CA bundle, and the ``hook_params``
  timeout and retries).
  Two ids with one key share a poll; one id that resolves to two keys (a rotation, per-team
  secrets) never shares an answer between them. The poller never re-reads a connection.
- Reading a connection costs more than everything else a starting trigger does (nearly all of
  it inside Airflow's lookup, and a secrets backend may be a remote service), so triggers of one
  connection share reads
  (:func:`subscribe`): a read may be joined only until it starts, so whatever a trigger gets was
  read after it asked, and reads of one connection start at most once per :data:`LOOKUP_GATHER`.
  Airflow's triggerer creates the triggers handed to it in one pass of its loop, about once a
  second: a pass costs a read or two however many triggers it starts; a lone trigger waits for
  none. The read attaches the waiting subscriptions to their poller itself, so a starting trigger
  suspends only on its subscription.

- The poller is a single task that fetches ``GET /v1/data/account`` every
  ``min(subscriber intervals)`` (measured start to start; at most one request in flight) and
  pushes each answer to every subscriber. A status change thus reaches every trigger within one
  interval, and no trigger's answer is older than its own interval.
- Each subscriber judges the answer against its own condition (memoised per distinct condition
  per answer, so thousands of identical sensors cost one evaluation) and its trigger keeps its own
  deadline. A trigger coroutine is woken only when its verdict is final or its reason to wait
  changed: O(1) work per trigger per answer, no per-trigger client, no blocking call.
- The poller owns one ``LeadpipeHook`` (one ``httpx.AsyncClient``): the first subscriber's. It
  starts with its first subscriber and, when its last subscriber leaves, stops and closes its
  client. Different credentials have independent pollers, so a failing one disturbs no other.
- Pollers are registered per event loop, weakly keyed, so tests and ``dag.test`` (new loops) start
  from scratch. Nothing is kept beyond process memory; the key lives only inside the hook, the
  registry holds its salted fingerprint.

The poller task runs in an empty ``contextvars`` context: Airflow's triggerer binds each trigger's
log routing to its task's context, and the shared poller's own log lines (retries, errors) belong
to the triggerer log, not to whichever trigger happened to start it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from airflow_provider_leadpipe.conditions.account import AccountCondition, LeadpipeAccountError, unavailable
from airflow_provider_leadpipe.exceptions import TRANSIENT_ERRORS
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.hooks.responses import forget_locals
from airflow_provider_leadpipe.hooks.settings import sharing_key
from airflow_provider_leadpipe.models import AccountStatus
from airflow_provider_leadpipe.triggers import events

log = logging.getLogger("airflow.providers.leadpipe.poller")

#: Reads of one connection by starting triggers begin at most once per this many seconds; the
#: triggers arriving in between share the next one (see :func:`subscribe`), so triggers that keep
#: arriving do not read the connection (a secrets backend lookup) once each. Airflow's triggerer
#: starts triggers in passes about a second apart, so a pass waits for none.
LOOKUP_GATHER = 0.2

_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bytes, AccountPoller]] = (
    weakref.WeakKeyDictionary()
)


def subscribe(
    conn_id: str,
    hook_params: Mapping[str, Any],
    subscription: Subscription,
    refused: Mapping[bytes, dict[str, Any]] | None = None,
) -> None:
    """Subscribe ``subscription`` to the poller of what ``conn_id`` resolves to, once it is read.

    Returns at once; the connection is read in the background, then ``subscription`` is attached
    to :meth:`AccountPoller.for_key` of its :func:`~airflow_provider_leadpipe.hooks.settings.sharing_key`
    (``subscription.poller``). If the read fails, or the key is in ``refused`` (sharing key: the
    final event it got), the subscription is finished with that error's event instead. Leave with
    :meth:`Subscription.leave` in any case.

    Subscriptions of one connection and ``hook_params`` share reads. A read may be joined only
    until it starts, so every subscription is served by a read that started after it asked; it
    starts at once when none did in the last :data:`LOOKUP_GATHER` seconds, else that long after
    the last one did. A starting trigger thus waits on nothing but its subscription.
    """
    loop = asyncio.get_running_loop()
    reads = _READS.get(loop)
    if reads is None:
        reads = _READS[loop] = _Reads()
    reads.join((conn_id, *sorted(hook_params.items())), conn_id, hook_params, subscription, refused)


class _Read:
    """One connection read and the subscriptions waiting for it (with their refused keys)."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting: dict[Subscription, Mapping[bytes, dict[str, Any]] | None] = {}


class _Reads:
    """The connection reads of starting subscriptions in one event loop: see :func:`subscribe`.
    (asyncio has no single-flight helper; this is the few lines it takes. It attaches the
    waiting subscriptions itself, rather than have each await a shared future, so a starting
    trigger waits on one thing, its subscription.)"""

    def __init__(self) -> None:
        # No reference to the loop: _READS is keyed weakly by it.
        #: Reads not started yet, which a subscription may join.
        self.waiting: dict[tuple[Any, ...], _Read] = {}
        #: When the latest read started, for LOOKUP_GATHER seconds after it did.
        self.started: dict[tuple[Any, ...], float] = {}
        #: The read tasks (the event loop keeps only weak references to tasks).
        self.tasks: set[asyncio.Task[None]] = set()

    def join(
        self,
        key: tuple[Any, ...],
        conn_id: str,
        hook_params: Mapping[str, Any],
        subscription: Subscription,
        refused: Mapping[bytes, dict[str, Any]] | None,
    ) -> None:
        read = self.waiting.get(key)
        if read is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self.started.get(key, -LOOKUP_GATHER) + LOOKUP_GATHER - loop.time())
            hook = LeadpipeHook(leadpipe_conn_id=conn_id, **hook_params)
            read = _Read()
            # Created in the asking trigger's context, as its own read would be (per-team secrets).
            task = loop.create_task(self._read(key, read, hook, delay))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            self.waiting[key] = read
        read.waiting[subscription] = refused
        subscription.read = read

    async def _read(self, key: tuple[Any, ...], read: _Read, hook: LeadpipeHook, delay: float) -> None:
        await asyncio.sleep(delay)  # at least to the next pass of the loop: its triggers join
        if self.waiting.get(key) is read:
            del self.waiting[key]  # started: a subscription from now on waits for a read of its own
        if not read.waiting:
            return  # every subscription left before the read started: no read
        loop = asyncio.get_running_loop()
        started = self.started[key] = loop.time()
        loop.call_later(LOOKUP_GATHER, self._forget, key, started)
        outcome: bytes | dict[str, Any]
        try:
            outcome = sharing_key(await hook.aget_settings())
        except Exception as exc:  # no connection, bad settings: an error event, as a bad answer
            outcome = events.from_exception(exc)  # (nothing read: no key to redact)
        # In an empty context, as the poller's own work: what it logs is no one trigger's business.
        contextvars.Context().run(_hand_over, read, hook, outcome)

    def _forget(self, key: tuple[Any, ...], started: float) -> None:
        if self.started.get(key) == started:
            del self.started[key]


def _hand_over(read: _Read, hook: LeadpipeHook, outcome: bytes | dict[str, Any]) -> None:
    """Attach the subscriptions waiting for ``read`` to the poller of ``outcome``, the sharing key
    read, or finish them with the event of their refused key, or with ``outcome``, the error event
    of a failed read."""
    waiting, read.waiting = list(read.waiting.items()), {}  # who waits now (some may have left)
    poller = None
    handled = 0
    try:
        for subscription, refused in waiting:
            subscription.read = None
            if isinstance(outcome, dict):
                subscription.finish(outcome)
            elif refused is not None and outcome in refused:
                subscription.finish(refused[outcome])  # still the key that was refused
            else:
                if poller is None:
                    poller = AccountPoller.for_key(outcome, hook)
                poller.attach(subscription)
            handled += 1
    except Exception as exc:  # a bug: the triggers not handed over get its error event now
        forget_locals(exc)
        log.exception("Leadpipe connection read: handing triggers to their poller failed")
        error = events.from_exception(exc)
        for subscription, _ in waiting[handled:]:
            subscription.read = None
            subscription.finish(error)


_READS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Reads] = weakref.WeakKeyDictionary()


class Answer:
    """One answer of the account endpoint (a status or an error), shared by every subscriber."""

    __slots__ = ("_account", "_verdicts", "error", "message", "received_at", "status")

    def __init__(
        self,
        received_at: float,
        status: AccountStatus | None = None,
        error: Exception | None = None,
        message: str = "",
    ):
        self.received_at = received_at
        self.status = status
        self.error = error
        #: The error's message, with the API key redacted.
        self.message = message
        self._account: dict[str, Any] | None = None
        self._verdicts: dict[AccountCondition, tuple[dict[str, Any] | None, str | None]] = {}

    def verdict(self, condition: AccountCondition) -> tuple[dict[str, Any] | None, str | None]:
        """``(final event payload, None)`` or ``(None, reason to keep waiting)``; memoised per condition.

        Triggers with equal conditions receive the same (read-only) payload object.
        """
        verdict = self._verdicts.get(condition)
        if verdict is None:
            verdict = self._verdicts[condition] = self._judge(condition)
        return verdict

    def _judge(self, condition: AccountCondition) -> tuple[dict[str, Any] | None, str | None]:
        if self.error is not None:
            if isinstance(self.error, TRANSIENT_ERRORS):
                return None, unavailable(self.message)
            return events.from_exception(self.error, self.message), None
        assert self.status is not None
        try:
            satisfied, reason = condition.evaluate(self.status)
        except LeadpipeAccountError as exc:
            return events.from_exception(exc), None
        if not satisfied:
            return None, reason
        if self._account is None:
            self._account = self.status.to_dict()
        return events.success(self._account, reason), None


class Subscription:
    """One trigger's place at a poller: its condition and interval, and what it has been told."""

    __slots__ = (
        "_notified",
        "_wakeup",
        "answers",
        "condition",
        "interval",
        "poller",
        "read",
        "reason",
        "result",
        "schedule",
    )

    def __init__(
        self, condition: AccountCondition, interval: float, schedule: Callable[[int], float] | None = None
    ):
        self.condition = condition
        self.interval = interval
        #: The interval wanted after ``n`` answers (exponential backoff), or None for a fixed one.
        self.schedule = schedule
        #: Answers delivered so far.
        self.answers = 0
        #: The final event payload, once there is one.
        self.result: dict[str, Any] | None = None
        #: The latest reason to keep waiting.
        self.reason: str | None = None
        self._notified: str | None = None
        self._wakeup: asyncio.Future[None] | None = None
        #: The poller it is attached to, once it is.
        self.poller: AccountPoller | None = None
        #: The connection read it waits for before that (see :func:`subscribe`).
        self.read: _Read | None = None

    def leave(self) -> None:
        """Stop waiting: leave the connection read or the poller (which stops with its last)."""
        if self.read is not None:
            self.read.waiting.pop(self, None)
            self.read = None
        if self.poller is not None:
            self.poller.unsubscribe(self)

    def deliver(self, answer: Answer) -> None:
        """Judge one answer (called by the poller; synchronous, O(1))."""
        if self.result is not None:
            return
        self.answers += 1
        result, reason = answer.verdict(self.condition)
        if result is not None:
            self.finish(result)
        elif reason != self.reason:
            self.reason = reason
            self._wake()

    def finish(self, result: dict[str, Any]) -> None:
        """Set the final event payload and wake the trigger."""
        self.result = result
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            _settle(self._wakeup)

    async def next_change(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` s for a final result or a new reason; return the new reason, if any."""
        if self.result is None and self.reason == self._notified:
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait((self._wakeup,), timeout=timeout)
            finally:
                self._wakeup = None
        if self.result is None and self.reason != self._notified:
            self._notified = self.reason
            return self.reason
        return None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AccountPoller:
    """The single poll loop of one credential in one event loop; see the module docstring.

    :param hook: a hook whose settings are already read (``aget_settings()``); the poller owns it.
    :param key: the :func:`~airflow_provider_leadpipe.hooks.settings.sharing_key` of those settings
        (held in memory only; never log it).
    """

    def __init__(self, hook: LeadpipeHook, key: bytes, loop: asyncio.AbstractEventLoop):
        #: The id of the connection that started the poller (for log lines only).
        self.conn_id = hook.leadpipe_conn_id
        self.key = key
        self._loop = loop
        self._subscribers: dict[Subscription, None] = {}  # an insertion-ordered set
        self._intervals: Counter[float] = Counter()
        self._last: Answer | None = None
        self._hook: LeadpipeHook | None = hook
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._closing = False
        #: Account fetches started (each is one request, plus the hook's retries).
        self.fetches = 0

    def __repr__(self) -> str:
        return f"AccountPoller(conn_id={self.conn_id!r}, subscribers={len(self._subscribers)})"

    @classmethod
    def for_key(cls, key: bytes, hook: LeadpipeHook) -> AccountPoller:
        """The running event loop's poller for ``key``, the
        :func:`~airflow_provider_leadpipe.hooks.settings.sharing_key` of ``hook``'s settings; created
        on first use, owning ``hook`` (otherwise ``hook`` is not needed: it opened no client).
        """
        loop = asyncio.get_running_loop()
        pollers = _REGISTRY.get(loop)
        if pollers is None:
            pollers = _REGISTRY[loop] = {}
        poller = pollers.get(key)
        if poller is None:
            poller = pollers[key] = cls(hook, key, loop)
        return poller

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def attach(self, subscription: Subscription) -> Subscription:
        """Add a subscription (see :func:`subscribe`; leave with :meth:`Subscription.leave`). A
        :class:`Subscription` subclass whose ``deliver`` keeps every answer observes the account
        instead of waiting for a verdict (the asset watchers in
        :mod:`airflow_provider_leadpipe.triggers.watchers` do)."""
        subscription.poller = self
        interval = subscription.interval
        shorter = not self._intervals or interval < min(self._intervals)
        self._subscribers[subscription] = None
        self._intervals[interval] += 1
        # An answer younger than the newcomer's interval is as good as a fresh one.
        if self._last is not None and self._loop.time() - self._last.received_at < interval:
            self._deliver(subscription, self._last)
        if self._task is None:
            # An empty context: see the module docstring (log routing in the triggerer).
            self._task = contextvars.Context().run(
                self._loop.create_task, self._run(), name=f"leadpipe-account-poller[{self.conn_id}]"
            )
        elif shorter and self._wake is not None:
            _settle(self._wake)  # re-plan the next fetch with the shorter interval
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._remove(subscription)
        if not self._subscribers:
            self._stop()

    def _remove(self, subscription: Subscription) -> None:
        if self._subscribers.pop(subscription, False) is None:
            self._intervals[subscription.interval] -= 1
            if not self._intervals[subscription.interval]:
                del self._intervals[subscription.interval]

    def _stop(self) -> None:
        pollers = _REGISTRY.get(self._loop)
        if pollers is not None and pollers.get(self.key) is self:
            del pollers[self.key]
            if not pollers:
                del _REGISTRY[self._loop]
        task = self._task
        if task is not None and not self._closing and not task.done() and task is not asyncio.current_task():
            task.cancel()  # its finally block closes the client

    # -- the poll loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self._subscribers:
                started = self._loop.time()
                answer = await self._fetch()
                self._last = answer
                for subscription in list(self._subscribers):
                    self._deliver(subscription, answer)
                await self._sleep_until_due(started)
        finally:
            self._stop()
            self._closing = True  # a late unsubscribe must not cancel the closing of the client
            await self._close_hook()

    def _deliver(self, subscription: Subscription, answer: Answer) -> None:
        try:
            subscription.deliver(answer)
        except Exception as exc:  # a bug in one verdict must not stop the others' polling
            log.exception("Leadpipe poller %r: judging an answer failed", self.conn_id)
            subscription.finish(events.from_exception(exc))
        if subscription.result is not None:
            self._remove(subscription)  # done: no more answers for it
        elif subscription.schedule is not None:
            self._retime(subscription, subscription.schedule(subscription.answers))

    def _retime(self, subscription: Subscription, interval: float) -> None:
        """Give a waiting subscription a new interval (the next fetch is planned with it)."""
        if interval != subscription.interval and subscription in self._subscribers:
            self._remove(subscription)
            subscription.interval = interval
            self._subscribers[subscription] = None
            self._intervals[interval] += 1

    async def _sleep_until_due(self, started: float) -> None:
        while self._subscribers:
            delay = started + min(self._intervals) - self._loop.time()
            if delay <= 0:
                return
            self._wake = self._loop.create_future()
            try:
                await asyncio.wait((self._wake,), timeout=delay)
            finally:
                self._wake = None

    async def _fetch(self) -> Answer:
        # The hook is closed only when the loop ends, and the loop ends before any later fetch.
        assert self._hook is not None
        hook = self._hook
        self.fetches += 1
        try:
            status = await hook.aget_account_status()
            return Answer(self._loop.time(), status=status)
        except Exception as exc:
            error = exc
        return Answer(self._loop.time(), error=error, message=hook.redact(str(error) or type(error).__name__))

    async def _close_hook(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            with suppress(Exception):
                await hook.aclose()
