"""One lookup for callers that ask together: asyncio has no single-flight helper; this is the few
lines it takes."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

#: Lookups waiting to start, per event loop and key.
_WAITING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, asyncio.Task[Any]]] = (
    weakref.WeakKeyDictionary()
)


async def single_flight(key: Hashable, lookup: Callable[[], Awaitable[T]]) -> T:
    """``await lookup()``, shared by every caller with the same ``key`` in this pass of the event loop.

    A lookup that has started is never joined: whatever a caller gets was read after it asked (a
    key rotated in between is never handed to a later caller). Nothing is kept once a lookup
    completes: a later call looks up again. One waiter's cancellation does not fail the others.
    """
    loop = asyncio.get_running_loop()
    waiting = _WAITING.get(loop)
    if waiting is None:
        waiting = _WAITING[loop] = {}
    task = waiting.get(key)
    if task is None:
        task = waiting[key] = loop.create_task(_started(waiting, key, lookup))
        task.add_done_callback(lambda done: _land(waiting, key, done))
    return await asyncio.shield(task)  # type: ignore[no-any-return]


async def _started(
    waiting: dict[Hashable, asyncio.Task[Any]], key: Hashable, lookup: Callable[[], Awaitable[T]]
) -> T:
    await asyncio.sleep(0)  # callers in this pass of the event loop join
    if waiting.get(key) is asyncio.current_task():
        del waiting[key]  # started: a caller from now on starts a lookup of its own
    return await lookup()


def _land(waiting: dict[Hashable, asyncio.Task[Any]], key: Hashable, done: asyncio.Task[Any]) -> None:
    if waiting.get(key) is done:  # ended before it started (its loop closing)
        del waiting[key]
    if not done.cancelled():
        done.exception()  # retrieved: no "exception was never retrieved" when every waiter left
