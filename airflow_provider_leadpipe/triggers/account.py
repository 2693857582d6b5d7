"""LeadpipeAccountTrigger: wait in the triggerer until a Leadpipe account satisfies a condition."""

from __future__ import annotations

import time
from typing import Any

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.exceptions import LeadpipeAuthError
from airflow_provider_leadpipe.triggers import events
from airflow_provider_leadpipe.triggers.base import LeadpipeWaitTrigger
from airflow_provider_leadpipe.triggers.poller import Subscription, subscribe


class LeadpipeAccountTrigger(LeadpipeWaitTrigger):
    """Poll a Leadpipe account until it satisfies the condition; yield exactly one event.

    The event is ``success`` (with the account status dict), ``failure`` (HTTP 401/403 or a state
    waiting cannot fix), ``error`` (anything unexpected) or ``timeout`` (``deadline`` passed); see
    :mod:`airflow_provider_leadpipe.triggers.events`. Transient API failures are logged and waited
    out. Triggers whose connections resolve to the same key in one triggerer share one poll (see
    :mod:`airflow_provider_leadpipe.triggers.poller`); each keeps its own condition and deadline.
    When the key is refused (HTTP 401/403) the trigger reads its connection again once: a rotated
    key is picked up; the same key fails.

    Takes :class:`~airflow_provider_leadpipe.triggers.base.LeadpipeWaitTrigger`'s arguments (the
    shared poll runs at the shortest ``poll_interval``, which may be 0 like a sensor's
    ``poke_interval``) and the condition's: ``AccountCondition.to_dict()``'s keys.
    """

    condition_class = AccountCondition
    condition: AccountCondition
    zero_interval = True

    async def _wait(self) -> dict[str, Any]:
        refused: dict[bytes, dict[str, Any]] = {}
        refusal: dict[str, Any] | None = None
        # The sensor checked once before deferring: the trigger's n-th answer is check n + 1.
        schedule = (lambda answers: self.interval_after(answers + 1)) if self.exponential_backoff else None
        while True:
            subscription = Subscription(self.condition, self.poll_interval, schedule)
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
