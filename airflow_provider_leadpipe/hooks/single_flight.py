"""One lookup for callers that ask together: asyncio has no single-flight helper; this is the few
lines it takes."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


async def single_flight(key: Hashable, lookup: Callable[[], Awaitable[T]], gather: float = 0.0) -> T:
    """``await lookup()``, shared by every caller with the same ``key`` that asks before it starts.

    The lookup starts in the next pass of the event loop, so the callers of this pass join it;
    with ``gather``, no sooner than ``gather`` seconds after the previous lookup of ``key`` started,
    so callers that keep arriving share one lookup per ``gather`` seconds (a lone caller waits for
    none). A lookup that has started is never joined: whatever a caller gets was read after it
    asked (a key rotated in between is never handed to a later caller). Nothing is kept once a
    lookup completes: a later call looks up again. One waiter's cancellation does not fail the
    others; a lookup that every waiter left before it started never runs.
    """
    loop = asyncio.get_running_loop()
    flights = _FLIGHTS.get(loop)
    if flights is None:
        flights = _FLIGHTS[loop] = _Flights()
    flight = flights.waiting.get(key)
    if flight is None:
        flight = flights.waiting[key] = _Flight(loop.create_task(flights.run(key, lookup, gather)))
    flight.waiters += 1
    try:
        return await asyncio.shield(flight.task)  # type: ignore[no-any-return]
    finally:
        flight.waiters -= 1
        if not flight.waiters and flights.waiting.get(key) is flight:
            del flights.waiting[key]  # nobody waits for it any more: it never starts
            flight.task.cancel()


class _Flight:
    """One lookup and how many callers wait for it."""

    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.waiters = 0
        task.add_done_callback(_retrieved)


class _Flights:
    """The lookups of one event loop (no reference to the loop: :data:`_FLIGHTS` is keyed weakly
    by it)."""

    __slots__ = ("started", "waiting")

    def __init__(self) -> None:
        #: Lookups not started yet, which a caller may join.
        self.waiting: dict[Hashable, _Flight] = {}
        #: When the latest lookup of a key started, for ``gather`` seconds after it did.
        self.started: dict[Hashable, float] = {}

    async def run(self, key: Hashable, lookup: Callable[[], Awaitable[T]], gather: float) -> T:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(max(0.0, self.started.get(key, -gather) + gather - loop.time()))
        finally:
            flight = self.waiting.get(key)
            if flight is not None and flight.task is asyncio.current_task():
                del self.waiting[key]  # started: a caller from now on starts a lookup of its own
        if gather > 0:
            started = self.started[key] = loop.time()
            loop.call_later(gather, self._forget, key, started)
        return await lookup()

    def _forget(self, key: Hashable, started: float) -> None:
        if self.started.get(key) == started:
            del self.started[key]


def _retrieved(done: asyncio.Task[Any]) -> None:
    if not done.cancelled():
        done.exception()  # retrieved: no "exception was never retrieved" when every waiter left


_FLIGHTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flights] = weakref.WeakKeyDictionary()
