"""LeadpipeSensorBase: the control flow every Leadpipe sensor shares.

``execute`` pokes (poke and reschedule mode: until done); deferrable, it pokes once, then defers to
the sensor's :meth:`~LeadpipeSensorBase.trigger` with a wall-clock deadline counted from the first
poke. ``soft_fail``, ``never_fail`` and ``silent_fail`` behave after a deferral exactly as in poke
mode. A sensor supplies ``poke()``, ``trigger(deadline)`` and ``execute_complete()``.
"""

from __future__ import annotations

import time
import traceback
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseSensorOperator,
    PokeReturnValue,
)

from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.utils import compat
from airflow_provider_leadpipe.utils.tasks import LeadpipeTaskMixin, deferral_timeout

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.triggers.base import BaseTrigger


class LeadpipeSensorBase(LeadpipeTaskMixin, BaseSensorOperator):
    """Poke, reschedule and deferrable modes alike; subclasses implement ``poke`` and ``trigger``."""

    deferrable: bool

    @cached_property
    def hook(self) -> LeadpipeHook:
        """The hook for ``leadpipe_conn_id`` with ``hook_params`` (built on first use, after
        templating); open it with ``with self.hook as hook:`` so its client is closed there."""
        return LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id, **self.hook_params)

    def poke(self, context: Context) -> PokeReturnValue:
        """Check once: done (with the XCom value) or not yet; raise only what waiting cannot fix."""
        raise NotImplementedError

    def trigger(self, deadline: float) -> BaseTrigger:
        """The trigger that waits for what :meth:`poke` checks, until ``deadline`` (epoch seconds)."""
        raise NotImplementedError

    # -- the methods Airflow calls -----------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Poke (poke and reschedule mode: until done); deferrable: poke once, then defer if needed."""
        if not self.deferrable:
            return super().execute(context)
        deadline = time.time() + self.timeout  # counted from the first poke, as in poke mode
        try:
            result = self.poke(context)
        except Exception as exc:
            self._apply_flags(exc)  # raises, unless silent_fail says "keep waiting"
            result = PokeReturnValue(is_done=False)
        if result.is_done:
            return result.xcom_value
        self._defer(deadline)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Apply ``soft_fail``, ``never_fail`` and ``silent_fail`` after a deferral as poke mode does."""
        try:
            return compat.resume_without_sensor_flags(self, next_method, next_kwargs, context)
        except Exception as exc:
            self._apply_flags(exc)
        # silent_fail: keep waiting, against the deadline of the first poke.
        deadline = (next_kwargs or {}).get("deadline")
        self._defer(float(deadline) if isinstance(deadline, (int, float)) else time.time() + self.timeout)

    # -- helpers ---------------------------------------------------------------------------------

    def _not_yet(self, reason: str) -> PokeReturnValue:
        self.log.info("waiting: %s", reason)
        return PokeReturnValue(is_done=False)

    def _apply_flags(self, exc: Exception) -> None:
        """What poke mode does with an error (``BaseSensorOperator.execute``): raise it, skip, or
        (``silent_fail``, for errors that are not Airflow's fail/skip/timeout signals) log it and
        return, to keep waiting."""
        if compat.is_deferral_timeout(exc):  # the framework's backstop: a timeout like any other
            timeout = AirflowSensorTimeout(f"Sensor has timed out: {exc}")
            timeout.__cause__, exc = exc, timeout
        if isinstance(exc, AirflowSensorTimeout):
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {exc}") from exc
            raise exc
        if isinstance(exc, AirflowSkipException):
            raise exc
        if isinstance(exc, (AirflowTaskTimeout, AirflowFailException)):
            if self.soft_fail:
                raise AirflowSkipException("Skipping due to soft_fail is set to True.") from exc
            if self.never_fail:
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from exc
            raise exc
        if self.silent_fail:
            self.log.error("Sensor poke failed: \n %s", "".join(traceback.format_exception(exc)))
            return
        if self.never_fail:
            raise AirflowSkipException("Skipping due to never_fail is set to True.") from exc
        raise exc

    def _defer(self, deadline: float) -> None:
        remaining = deadline - time.time()
        if remaining <= 0:
            self._apply_flags(
                AirflowSensorTimeout(f"Sensor has timed out: the timeout of {self.timeout:g} s has passed.")
            )
        self.defer(
            trigger=self.trigger(deadline),
            method_name="execute_complete",
            kwargs={"deadline": deadline},
            timeout=deferral_timeout(remaining, self.poke_interval),
        )
