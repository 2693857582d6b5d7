"""LeadpipeAccountTrigger: wait in the triggerer until a Leadpipe account satisfies a condition."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.exceptions import LeadpipeAuthError
from airflow_provider_leadpipe.triggers import events
from airflow_provider_leadpipe.triggers.poller import Subscription, subscribe
from airflow_provider_leadpipe.utils import validation


class LeadpipeAccountTrigger(BaseTrigger):
    """Poll a Leadpipe account until it satisfies ``condition``; yield exactly one event.

    The event is ``success`` (with the account status dict), ``failure`` (HTTP 401/403 or a state
    waiting cannot fix), ``error`` (anything unexpected) or ``timeout`` (``deadline`` passed); see
    :mod:`airflow_provider_leadpipe.triggers.events`. Transient API failures are logged and waited
    out. Triggers whose connections resolve to the same key in one triggerer share one poll (see
    :mod:`airflow_provider_leadpipe.triggers.poller`); each keeps its own condition and deadline.
    When the key is refused (HTTP 401/403) the trigger reads its connection again once: a rotated
    key is picked up; the same key fails.

    All arguments are primitives, so ``serialize()`` round-trips them and a trigger re-created after
    a triggerer restart behaves the same, deadline included.

    :param leadpipe_conn_id: the ``leadpipe`` connection id (never the key itself).
    :param condition: an ``AccountCondition.to_dict()``.
    :param poke_interval: seconds between checks (the shared poll runs at the shortest interval).
    :param deadline: wall-clock epoch seconds (``time.time()``) after which the trigger times out.
    :param hook_params: the sensor's hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    :param exponential_backoff: the interval grows after each check, as a poking sensor's does
        (see :func:`backoff_interval`), up to ``max_wait`` seconds.
    """

    def __init__(
        self,
        *,
        leadpipe_conn_id: str,
        condition: Mapping[str, Any],
        poke_interval: float,
        deadline: float,
        hook_params: Mapping[str, Any] | None = None,
        exponential_backoff: bool = False,
        max_wait: float | None = None,
    ) -> None:
        super().__init__()
        self.leadpipe_conn_id = validation.conn_id(leadpipe_conn_id)
        self.condition = AccountCondition.from_dict(condition)
        self.poke_interval = validation.finite_number(poke_interval, "poke_interval", minimum=0)
        self.deadline = validation.finite_number(deadline, "deadline")
        self.hook_params = validation.hook_params(hook_params)
        self.exponential_backoff = validation.boolean(exponential_backoff, "exponential_backoff")
        if max_wait is not None:
            max_wait = validation.finite_number(max_wait, "max_wait", minimum=0)
        self.max_wait = max_wait

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(leadpipe_conn_id={self.leadpipe_conn_id!r}, "
            f"poke_interval={self.poke_interval:g}, deadline={self.deadline:.3f})"
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "leadpipe_conn_id": self.leadpipe_conn_id,
                "condition": self.condition.to_dict(),
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "hook_params": self.hook_params,
                "exponential_backoff": self.exponential_backoff,
                "max_wait": self.max_wait,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await events.outcome(self, self._wait))

    def _backoff(self, answers: int) -> float:
        # The sensor poked once before deferring: the trigger's n-th answer is check n + 1.
        return backoff_interval(self.poke_interval, answers + 1, self.max_wait)

    async def _wait(self) -> dict[str, Any]:
        refused: dict[bytes, dict[str, Any]] = {}
        refusal: dict[str, Any] | None = None
        schedule = self._backoff if self.exponential_backoff else None
        while True:
            subscription = Subscription(self.condition, self.poke_interval, schedule)
            # Attached once the connection is read: by a read that starts after this call, shared
            # with the triggers starting together.
            subscribe(self.leadpipe_conn_id, self.hook_params, subscription, refused or None)
            try:
                result = await self._wait_on(subscription)
            finally:
                subscription.leave()
            poller = subscription.poller
            if poller is None and refusal is not None and result["status"] == events.TIMEOUT:
                return refusal  # the deadline passed while the connection was read again
            if poller is None or result.get("error") != LeadpipeAuthError.__name__:
                return result
            refused[poller.key] = refusal = result  # read the connection again: a rotated key is picked up

    async def _wait_on(self, subscription: Subscription) -> dict[str, Any]:
        while subscription.result is None:
            remaining = self.deadline - time.time()
            if remaining <= 0:
                last = subscription.reason or "no answer yet"
                return events.timeout(
                    f"Leadpipe account on connection '{self.leadpipe_conn_id}' did not satisfy the "
                    f"condition before the sensor's timeout; last reason: {last}"
                )
            reason = await subscription.next_change(remaining)
            if reason is not None:
                self.log.info("waiting: %s", reason)
        self.log.info("%s", subscription.result.get("message"))
        return subscription.result


def backoff_interval(poke_interval: float, poke_count: int, max_wait: float | None) -> float:
    """The wait after check number ``poke_count`` with ``exponential_backoff``: a poking sensor's
    lower bound (``BaseSensorOperator._get_next_poke_interval`` without its jitter, which spreads
    sensors that the shared poller coalesces anyway), capped at ``max_wait``."""
    interval = float(max(int(poke_interval * 2 ** (poke_count - 2)), 1))
    return min(interval, max_wait) if max_wait else interval
