"""LeadpipeAudienceRunTrigger: wait in the triggerer for an Orbit audience run; its events.

Every event payload is a dict of JSON primitives with a ``status`` key:

========== ===================================================================================
status     payload and meaning
========== ===================================================================================
success    ``run``: the completed run (``AudienceRun.to_dict()``, the API's key names); ``message``
failure    waiting cannot help: a failed or cancelled run (``run`` is then the run dict), or HTTP
           401/403/404: ``error`` (the exception class name), ``message``, ``http_status``
error      anything else that ended the wait: ``error``, ``message``, ``http_status``
timeout    the deadline passed before the run completed: ``message`` (saying so when the trigger
           cancelled the still-queued run: ``cancel_queued_run``)
========== ===================================================================================
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_leadpipe.conditions.account import unavailable
from airflow_provider_leadpipe.conditions.audiences import AudienceRunCondition
from airflow_provider_leadpipe.exceptions import (
    TRANSIENT_ERRORS,
    LeadpipeAudienceRunError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AudienceRun
from airflow_provider_leadpipe.triggers import events
from airflow_provider_leadpipe.triggers.account import backoff_interval
from airflow_provider_leadpipe.triggers.base import acheck
from airflow_provider_leadpipe.utils import validation


class LeadpipeAudienceRunTrigger(BaseTrigger):
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

    :param leadpipe_conn_id: the ``leadpipe`` connection id.
    :param audience_id: the audience (UUID).
    :param audience_run_id: the run to wait for (UUID), or None.
    :param min_data_date: without a run id, the earliest acceptable ``dataDate`` (YYYY-MM-DD).
    :param poll_interval: seconds between checks (any positive number).
    :param deadline: wall-clock epoch seconds (``time.time()``) after which the trigger times out.
    :param hook_params: the task's hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    :param exponential_backoff: the interval grows after each check as a poking sensor's does
        (:func:`~airflow_provider_leadpipe.triggers.account.backoff_interval`), up to ``max_wait``.
    :param max_wait: the longest interval with ``exponential_backoff``, in seconds.
    :param cancel_queued_run: cancel the run (``audience_run_id``) if it is still queued at the
        deadline or when a user ends the task (the sensor waits for others' runs: False).
    """

    def __init__(
        self,
        *,
        leadpipe_conn_id: str,
        audience_id: str,
        audience_run_id: str | None = None,
        min_data_date: str | None = None,
        poll_interval: float,
        deadline: float,
        hook_params: Mapping[str, Any] | None = None,
        exponential_backoff: bool = False,
        max_wait: float | None = None,
        cancel_queued_run: bool = False,
    ) -> None:
        super().__init__()
        self.leadpipe_conn_id = validation.conn_id(leadpipe_conn_id)
        self.condition = AudienceRunCondition(audience_id, audience_run_id, min_data_date)
        self.poll_interval = validation.positive_seconds(poll_interval, "poll_interval")
        self.deadline = validation.positive_seconds(deadline, "deadline")
        self.hook_params = validation.hook_params(hook_params)
        self.exponential_backoff = validation.boolean(exponential_backoff, "exponential_backoff")
        self.max_wait = None if max_wait is None else validation.positive_seconds(max_wait, "max_wait")
        self.cancel_queued_run = validation.boolean(cancel_queued_run, "cancel_queued_run")
        if self.cancel_queued_run and self.condition.audience_run_id is None:
            raise LeadpipeConfigError("cancel_queued_run needs audience_run_id: the run to cancel")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(leadpipe_conn_id={self.leadpipe_conn_id!r}, "
            f"{self.condition.describe()}, poll_interval={self.poll_interval:g}, "
            f"deadline={self.deadline:.3f})"
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "leadpipe_conn_id": self.leadpipe_conn_id,
                **self.condition.to_dict(),
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "hook_params": self.hook_params,
                "exponential_backoff": self.exponential_backoff,
                "max_wait": self.max_wait,
                "cancel_queued_run": self.cancel_queued_run,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await events.outcome(self, self._wait))

    async def _wait(self) -> dict[str, Any]:
        last_reason = None
        checks = 1  # the task checked once before deferring
        async with LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id, **self.hook_params) as hook:
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
                interval = (
                    backoff_interval(self.poll_interval, checks, self.max_wait)
                    if self.exponential_backoff
                    else self.poll_interval
                )
                await asyncio.sleep(min(interval, remaining))

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
            async with LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id, **self.hook_params) as hook:
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


def result_of(event: Any, *, timeout_error: type[Exception]) -> dict[str, Any]:
    """The run dict of a ``success`` event; any other event is raised as its error.

    :param timeout_error: raised for a ``timeout`` event (the operator's
        ``LeadpipeAudienceRunTimeoutError``, the sensor's ``AirflowSensorTimeout``).
    :raises LeadpipeAudienceRunError: a failed or cancelled run (an ``AirflowFailException``).
    :raises LeadpipeError: an ``error`` event, or an event that is missing or malformed.
    """
    if not isinstance(event, Mapping):
        raise LeadpipeError(
            f"LeadpipeAudienceRunTrigger resumed the task without an event (got {type(event).__name__}); "
            "refusing to treat that as success"
        )
    status = event.get("status")
    if status == events.SUCCESS:
        run = event.get("run")
        if not isinstance(run, Mapping):
            raise LeadpipeError("LeadpipeAudienceRunTrigger sent a success event without a 'run' object")
        return AudienceRun.from_data(dict(run)).to_dict()
    if status == events.TIMEOUT:
        raise timeout_error(str(event.get("message") or "timed out"))
    run = event.get("run")
    if status == events.FAILURE and isinstance(run, Mapping):
        raise LeadpipeAudienceRunError(
            str(event.get("message") or "the audience run failed"),
            run_id=run.get("id"),
            status=run.get("status"),
            error_code=run.get("errorCode"),
            error_message=run.get("errorMessage"),
        )
    if status in (events.FAILURE, events.ERROR):
        events.result_of(event)  # raises the event's typed error
    raise LeadpipeError(
        f"LeadpipeAudienceRunTrigger sent an event with unknown status {status!r}; expected one of "
        f"{[events.SUCCESS, events.FAILURE, events.ERROR, events.TIMEOUT]}"
    )
