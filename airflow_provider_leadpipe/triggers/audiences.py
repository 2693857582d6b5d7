"""LeadpipeAudienceRunTrigger: wait in the triggerer for an Orbit audience run.

It yields one event of :mod:`airflow_provider_leadpipe.triggers.events`' protocol, whose payload
is :data:`RUN`: ``run``, the completed run (``AudienceRun.to_dict()``, the API's key names), or
with a ``failure`` the failed or cancelled run; a ``timeout`` says when the trigger cancelled the
still-queued run (``cancel_queued_run``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_leadpipe.conditions.account import unavailable
from airflow_provider_leadpipe.conditions.audiences import AudienceRunCondition
from airflow_provider_leadpipe.exceptions import (
    TRANSIENT_ERRORS,
    LeadpipeAudienceRunError,
    LeadpipeConfigError,
    LeadpipeConflictError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AudienceRun
from airflow_provider_leadpipe.triggers import events
from airflow_provider_leadpipe.triggers.base import LeadpipeWaitTrigger, acheck
from airflow_provider_leadpipe.utils import validation


class LeadpipeAudienceRunTrigger(LeadpipeWaitTrigger):
    """Poll an Orbit audience run until it completes, fails or the deadline passes; yield one event.

    The condition is :class:`~airflow_provider_leadpipe.conditions.audiences.AudienceRunCondition`:
    a given run's completion, or (without a run id) a completed run whose ``dataDate`` is on or
    after ``min_data_date``. Transient API failures are logged and waited out. The hook is built
    inside :meth:`run`; all arguments are primitives (the connection id, never the key), so a
    trigger re-created from ``serialize()`` after a triggerer restart keeps its deadline.

    With ``cancel_queued_run`` (the run operator's trigger: the task queued the run) the run is
    cancelled while it is still queued when the deadline passes, and when a user ends the deferred
    task (marks it failed or success, or clears it): Airflow 3.3+ then calls :meth:`on_kill`,
    not on a triggerer restart, the deferral's own timeout or a move to another triggerer (the task
    is then still deferred: :meth:`on_kill` asks).

    Takes :class:`~airflow_provider_leadpipe.triggers.base.LeadpipeWaitTrigger`'s arguments, the
    condition's (``audience_id``, ``audience_run_id``, ``min_data_date``) and:

    :param cancel_queued_run: cancel the run (``audience_run_id``) if it is still queued at the
        deadline or when a user ends the task (the sensor waits for others' runs: False).
    """

    condition_class = AudienceRunCondition
    condition: AudienceRunCondition

    def __init__(self, *, cancel_queued_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cancel_queued_run = validation.boolean(cancel_queued_run, "cancel_queued_run")
        if self.cancel_queued_run and self.condition.audience_run_id is None:
            raise LeadpipeConfigError("cancel_queued_run needs audience_run_id: the run to cancel")

    def kwargs(self) -> dict[str, Any]:
        return {**super().kwargs(), "cancel_queued_run": self.cancel_queued_run}

    def described(self) -> str:
        return self.condition.describe()

    async def _wait(self) -> dict[str, Any]:
        last_reason = None
        checks = 1  # the task checked once before deferring
        async with self.new_hook() as hook:
            while True:
                try:
                    run, reason = await acheck(hook, self.condition.reads())
                except LeadpipeAudienceRunError as exc:  # failed or cancelled: waiting cannot fix it
                    self.log.info("%s", exc)
                    return {**events.from_exception(exc), "run": _run_of(exc)}
                except TRANSIENT_ERRORS as exc:
                    run, reason = None, unavailable(str(exc))
                if run is not None:
                    self.log.info("%s", reason)
                    return {"status": events.SUCCESS, "run": run.to_dict(), "message": reason}
                if reason != last_reason:
                    self.log.info("waiting: %s", reason)
                    last_reason = reason
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    cancelled = await self._cancel_queued_run(hook)
                    return events.timeout(
                        f"Leadpipe {self.condition.describe()} not ready before the timeout; "
                        f"last state: {reason}" + ("; the queued run was cancelled" if cancelled else "")
                    )
                checks += 1
                await asyncio.sleep(min(self.interval_after(checks), remaining))

    async def on_kill(self) -> None:
        """Cancel the run if it is still queued (``cancel_queued_run``); best effort, never raises.

        Airflow 3.3+ calls this when a user ends the deferred task: marks it failed or success, or
        clears it. Not on a triggerer restart or the deferral's timeout; 2.11-3.2 never call it.
        """
        if not self.cancel_queued_run:
            return
        if await self._still_deferred():
            self.log.info(
                "Audience run %s left as it is: its task is still deferred (the trigger moved to "
                "another triggerer, not ended by a user)",
                self.condition.audience_run_id,
            )
            return
        try:
            async with self.new_hook() as hook:
                await self._cancel_queued_run(hook)
        except Exception as exc:  # the connection could not be read: the kill goes on either way
            self.log.warning("Could not cancel audience run %s: %s", self.condition.audience_run_id, exc)

    async def _still_deferred(self) -> bool:
        """Whether Airflow still has this trigger's task instance deferred.

        Airflow 3.3 also stops a trigger "by user action" when it moves it off a triggerer whose
        heartbeat fell behind (``TriggerRunnerSupervisor.update_triggers``); the task then still
        waits, deferred, on another triggerer, and its run must stay. A user's mark failed, mark
        success or clear has changed the state before the trigger is stopped. False when the state
        cannot be read (no task instance, or no supervisor to ask, as outside a triggerer).
        """
        ti = self.task_instance
        if ti is None:
            return False
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
            from asgiref.sync import sync_to_async

            states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
                dag_id=ti.dag_id, map_index=ti.map_index, task_ids=[ti.task_id], run_ids=[ti.run_id]
            )
        except Exception as exc:  # best effort: a user's kill is what Airflow says this is
            self.log.debug("Could not read the state of task %s: %s", ti.task_id, type(exc).__name__)
            return False
        by_task = states.get(ti.run_id) or {}
        return any(getattr(state, "value", state) == "deferred" for state in by_task.values())

    async def _cancel_queued_run(self, hook: LeadpipeHook) -> bool:
        """Ask Orbit to cancel the run (it cancels only a queued one); True if it did. Never raises."""
        run_id = self.condition.audience_run_id
        if not self.cancel_queued_run or run_id is None:
            return False
        try:
            await hook.acancel_audience_run(self.condition.audience_id, run_id)
        except LeadpipeConflictError as exc:  # running or finished meanwhile
            self.log.info("Audience run %s not cancelled: Orbit cancels only queued runs (%s)", run_id, exc)
            return False
        except Exception as exc:  # best effort
            self.log.warning("Could not cancel audience run %s: %s", run_id, exc)
            return False
        self.log.info("Cancelled the queued audience run %s", run_id)
        return True


def _run_of(exc: LeadpipeAudienceRunError) -> dict[str, Any]:
    """The failed run's fields an event carries (ids, status, errorCode, errorMessage)."""
    return {
        "id": exc.run_id,
        "status": exc.status,
        "errorCode": exc.error_code,
        "errorMessage": exc.error_message,
    }


def _failed_run(run: Mapping[str, Any], message: str | None) -> LeadpipeAudienceRunError:
    return LeadpipeAudienceRunError(
        str(message or "the audience run failed"),
        run_id=run.get("id"),
        status=run.get("status"),
        error_code=run.get("errorCode"),
        error_message=run.get("errorMessage"),
    )


#: The trigger's ``success`` payload (``run``) for :func:`.events.result_of`; a ``failure`` event
#: with a ``run`` is the run's ``LeadpipeAudienceRunError``.
RUN = events.Payload(
    "LeadpipeAudienceRunTrigger",
    "task",
    "run",
    lambda run: AudienceRun.from_data(dict(run)).to_dict(),
    failed=_failed_run,
    timeout_message="timed out",
)
