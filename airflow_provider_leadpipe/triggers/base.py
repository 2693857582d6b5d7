"""What the Leadpipe triggers share.

- :class:`LeadpipeTriggerMixin`: the connection id (never the key), the hook settings, the
  interval, and ``serialize()`` from them (JSON primitives only), for every trigger.
- :class:`LeadpipeWaitTrigger`: a trigger that waits for a condition until a wall-clock deadline
  and yields one event (:mod:`~airflow_provider_leadpipe.triggers.events`). Its condition travels
  as the condition's own flat ``to_dict()`` keyword arguments; a trigger re-created from
  ``serialize()`` after a triggerer restart keeps its deadline.
- :func:`check` and :func:`acheck`: drive a condition's reads (its ``reads()`` plan) with a hook,
  in a worker or in the triggerer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.triggers import events
from airflow_provider_leadpipe.utils import validation

if TYPE_CHECKING:
    from airflow_provider_leadpipe.conditions.audiences import Read

T = TypeVar("T")


class Condition(Protocol):
    """A condition as trigger kwargs: flat JSON primitives; ``from_dict`` refuses unknown keys
    with a typed error."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition: ...


class LeadpipeTriggerMixin:
    """Connection id, hook settings and interval of a Leadpipe trigger; ``serialize()`` and
    ``repr()`` from them. Call :meth:`init_trigger` from ``__init__``; extend :meth:`kwargs`."""

    leadpipe_conn_id: str
    hook_params: dict[str, Any]
    poll_interval: float

    #: The interval may be 0 (a sensor's ``poke_interval``: Airflow allows 0).
    zero_interval: ClassVar[bool] = False

    def init_trigger(self, leadpipe_conn_id: Any, poll_interval: Any, hook_params: Any) -> None:
        self.leadpipe_conn_id = validation.conn_id(leadpipe_conn_id)
        self.poll_interval = validation.positive_seconds(
            poll_interval, "poll_interval", zero=self.zero_interval
        )
        self.hook_params = validation.hook_params(hook_params)

    def kwargs(self) -> dict[str, Any]:
        """The constructor's keyword arguments, JSON primitives only (never the key)."""
        return {
            "leadpipe_conn_id": self.leadpipe_conn_id,
            "poll_interval": self.poll_interval,
            "hook_params": self.hook_params,
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self.kwargs()

    def described(self) -> str:
        """What the trigger watches, for ``repr()`` (``""``: the account)."""
        return ""

    def __repr__(self) -> str:
        what = self.described()
        deadline = getattr(self, "deadline", None)
        return (
            f"{type(self).__name__}(leadpipe_conn_id={self.leadpipe_conn_id!r}, "
            + (f"{what}, " if what else "")
            + f"poll_interval={self.poll_interval:g}"
            + (f", deadline={deadline:.3f})" if deadline is not None else ")")
        )

    def new_hook(self) -> LeadpipeHook:
        """A hook for the connection, read in this trigger's context (per-team secrets)."""
        return LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id, **self.hook_params)


class LeadpipeWaitTrigger(LeadpipeTriggerMixin, BaseTrigger):
    """Wait until a condition holds or ``deadline`` passes; yield exactly one event.

    :param leadpipe_conn_id: the ``leadpipe`` connection id (never the key itself).
    :param poll_interval: seconds between checks.
    :param deadline: wall-clock epoch seconds (``time.time()``) after which the trigger times out.
    :param hook_params: the task's hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    :param exponential_backoff: the interval grows after each check as a poking sensor's does
        (:func:`backoff_interval`), up to ``max_wait`` seconds.
    :param max_wait: the longest interval with ``exponential_backoff``, in seconds.
    :param condition: the keys of :attr:`condition_class`'s ``to_dict()`` (unknown keys are refused).
    """

    #: The condition this trigger waits for, rebuilt from its keyword arguments.
    condition_class: ClassVar[type[Condition]]

    def __init__(
        self,
        *,
        leadpipe_conn_id: str,
        poll_interval: float,
        deadline: float,
        hook_params: Mapping[str, Any] | None = None,
        exponential_backoff: bool = False,
        max_wait: float | None = None,
        **condition: Any,
    ) -> None:
        super().__init__()
        self.init_trigger(leadpipe_conn_id, poll_interval, hook_params)
        self.deadline = validation.positive_seconds(deadline, "deadline")
        self.exponential_backoff = validation.boolean(exponential_backoff, "exponential_backoff")
        self.max_wait = None if max_wait is None else validation.positive_seconds(max_wait, "max_wait")
        self.condition = self.condition_class.from_dict(condition)

    def kwargs(self) -> dict[str, Any]:
        return {
            **super().kwargs(),
            **self.condition.to_dict(),
            "deadline": self.deadline,
            "exponential_backoff": self.exponential_backoff,
            "max_wait": self.max_wait,
        }

    def interval_after(self, checks: int) -> float:
        """The wait after check number ``checks`` (the task's own check before deferring is 1)."""
        if not self.exponential_backoff:
            return self.poll_interval
        return backoff_interval(self.poll_interval, checks, self.max_wait)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await events.outcome(self, self._wait))

    async def _wait(self) -> dict[str, Any]:
        """The event's payload (see :mod:`~airflow_provider_leadpipe.triggers.events`)."""
        raise NotImplementedError


def backoff_interval(poll_interval: float, check_number: int, max_wait: float | None) -> float:
    """The wait after check number ``check_number`` with ``exponential_backoff``: a poking sensor's
    lower bound (``BaseSensorOperator._get_next_poke_interval`` without its jitter, which spreads
    sensors that the shared poller coalesces anyway), capped at ``max_wait``."""
    interval = float(max(int(poll_interval * 2 ** (check_number - 2)), 1))
    return min(interval, max_wait) if max_wait else interval


def check(hook: LeadpipeHook, plan: Generator[Read, Any, T]) -> T:
    """Run ``plan``'s reads with the hook's blocking methods; its verdict."""
    answer: Any = None
    try:
        while True:
            name, args, kwargs = plan.send(answer)
            answer = getattr(hook, name)(*args, **kwargs)
    except StopIteration as done:
        return done.value


async def acheck(hook: LeadpipeHook, plan: Generator[Read, Any, T]) -> T:
    """:func:`check` in the triggerer: the same plan, awaited reads (the hook's ``a`` twins)."""
    answer: Any = None
    try:
        while True:
            name, args, kwargs = plan.send(answer)
            answer = await getattr(hook, f"a{name}")(*args, **kwargs)
    except StopIteration as done:
        return done.value
