"""Plans: every endpoint written once, for the sync and the async hook alike.

A plan is a generator that yields the requests it needs (:class:`Call`) and receives each one's
result, or has its failure thrown in (a plan may explain or absorb a failed call). The hook runs
plans with one sync driver (``LeadpipeHook._run``) and one async driver (``_arun``), which differ
only in the line that awaits the transport; :class:`Steps` is everything else they do.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, NamedTuple, TypeVar

import httpx

from airflow_provider_leadpipe.hooks.responses import Handler, forget_locals, handle_response

T = TypeVar("T")


class Call(NamedTuple):
    """One request of a plan, and how its response becomes the value sent back into the plan.

    With ``stream=True`` a 200 answer comes back unread and open (the caller closes it). (A tuple:
    made for every request, and cheaper to make than a frozen dataclass.)"""

    method: str
    path: str
    handler: Handler = handle_response
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None
    stream: bool = False

    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The request to send with ``client``."""
        return client.build_request(
            self.method, self.path, params=self.params, json=self.json, headers=self.headers
        )


Plan = Generator[Call, Any, T]


def single(call: Call) -> Plan[Any]:
    """The plan of one call: its result."""
    return (yield call)


class Steps(Generic[T]):
    """One plan being run, everything of a driver but the transport: the driver sends
    :attr:`call`, stores its result in :attr:`result` and calls :meth:`answered`, or hands its
    failure to :meth:`failed`, until :attr:`call` is None; :attr:`value` is then the plan's
    return value. Used as a context manager around the whole run.

    A plan left suspended by a failure still holds what it was sent (answers: people's data);
    closing it clears its frame, which the failure's traceback would otherwise reach. Whatever
    escapes leaves the plan's finished frames cleared, and no result is held between calls.
    """

    __slots__ = ("_plan", "call", "result", "value")

    def __init__(self, plan: Plan[T]):
        self._plan = plan
        self.call: Call | None = None
        self.result: Any = None
        self.value: Any = None

    def __enter__(self) -> Steps[T]:
        try:
            self.answered()  # the plan's first call
        except BaseException as failure:
            self.__exit__(type(failure), failure, None)
            raise
        return self

    def answered(self) -> None:
        """Send :attr:`result` (of :attr:`call`) into the plan: its next call, or its end."""
        result, self.result = self.result, None
        self._advance(self._plan.send, result)

    def failed(self, error: BaseException) -> None:
        """Throw the failure of :attr:`call` into the plan, which may explain or absorb it."""
        self._advance(self._plan.throw, error)

    def _advance(self, step: Any, argument: Any) -> None:
        try:
            self.call = step(argument)
        except StopIteration as finished:
            self.call, self.value = None, finished.value

    def __exit__(self, kind: Any, failure: BaseException | None, trace: Any) -> None:
        self.result = None
        self._plan.close()
        if failure is not None:
            forget_locals(failure)
