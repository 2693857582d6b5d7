"""LeadpipeAudienceRunSensor: wait for an Orbit audience run, or for a fresh enough daily run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_leadpipe import validation
from airflow_provider_leadpipe.audience_conditions import AudienceRunCondition
from airflow_provider_leadpipe.conditions import unavailable
from airflow_provider_leadpipe.exceptions import TRANSIENT_ERRORS, LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.triggers.audiences import LeadpipeAudienceRunTrigger, result_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Extra time given to the framework's deferral timeout, so the trigger's own timeout event comes first.
DEFERRAL_GRACE = 60.0


class LeadpipeAudienceRunSensor(BaseSensorOperator):
    """Wait until an Orbit audience run has completed; push the run (API key names) to XCom.

    With ``audience_run_id`` it waits for that run; a failed or cancelled run fails the task at
    once (``LeadpipeAudienceRunError``, with ``errorCode`` and ``errorMessage``). Without it, it
    waits until the audience has a completed run whose ``dataDate`` is on or after
    ``min_data_date`` (any completed run when None): the daily runs Leadpipe makes by itself.
    Transient API failures count as "not yet".

    Poke, reschedule and deferrable modes work as for
    :class:`~airflow_provider_leadpipe.sensors.leadpipe.LeadpipeAccountSensor`: in deferrable mode
    the sensor checks once, then waits in the triggerer every ``poke_interval`` seconds until
    ``timeout``, counted from the first check.

    :param audience_id: the audience's id, a UUID (templated).
    :param audience_run_id: the run to wait for, a UUID (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='run', key='audience_run_id') }}"``.
    :param min_data_date: without a run id, the earliest ``dataDate`` (``YYYY-MM-DD``, templated,
        e.g. ``"{{ ds }}"``).
    :param leadpipe_conn_id: the ``leadpipe`` connection (templated).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("audience_id", "audience_run_id", "min_data_date", "leadpipe_conn_id")
    ui_color = "#d9f2e6"

    def __init__(
        self,
        *,
        audience_id: str,
        audience_run_id: str | None = None,
        min_data_date: str | None = None,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.audience_id = audience_id
        self.audience_run_id = audience_run_id
        self.min_data_date = min_data_date
        self.leadpipe_conn_id = leadpipe_conn_id
        if deferrable is None:
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = bool(deferrable)
        self._started_at: float | None = None
        # Bad literals fail at DAG parse time; templated values are checked once rendered.
        if not validation.has_template(leadpipe_conn_id):
            self._named(validation.conn_id, leadpipe_conn_id)
        if not validation.has_template(audience_id, audience_run_id, min_data_date):
            self.condition  # noqa: B018

    def _named(self, parse: Any, *args: Any) -> Any:
        try:
            return parse(*args)
        except LeadpipeConfigError as exc:
            raise LeadpipeConfigError(f"{type(self).__name__} '{self.task_id}': {exc}") from None

    @property
    def condition(self) -> AudienceRunCondition:
        """What this sensor waits for (validated; re-read after templating)."""
        return self._named(AudienceRunCondition, self.audience_id, self.audience_run_id, self.min_data_date)

    @cached_property
    def hook(self) -> LeadpipeHook:
        return LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id)

    def execute(self, context: Context) -> Any:
        self._started_at = time.time()
        self.condition  # noqa: B018 -- rendered values are checked before anything is sent
        with self.hook:
            if not self.deferrable:
                return super().execute(context)
            checked = self.poke(context)
        if checked.is_done:
            return checked.xcom_value
        self._defer()

    def poke(self, context: Context) -> PokeReturnValue:
        try:
            run, reason = self.condition.check(self.hook)
        except TRANSIENT_ERRORS as exc:
            run, reason = None, unavailable(str(exc))
        if run is None:
            self.log.info("waiting: %s", reason)
            return PokeReturnValue(is_done=False)
        self.log.info("%s", reason)
        return PokeReturnValue(is_done=True, xcom_value=run.to_dict())

    def _defer(self) -> None:
        started = self._started_at if self._started_at is not None else time.time()
        deadline = started + float(self.timeout)
        remaining = deadline - time.time()
        if remaining <= 0:
            raise AirflowSensorTimeout(f"Sensor has timed out: the timeout of {self.timeout:g} s has passed.")
        self.defer(
            trigger=LeadpipeAudienceRunTrigger(
                leadpipe_conn_id=self.leadpipe_conn_id,
                **self.condition.to_dict(),
                poll_interval=float(self.poke_interval),
                deadline=deadline,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining + max(DEFERRAL_GRACE, 2 * float(self.poke_interval))),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume from the trigger: the run dict (XCom), or the event's error raised."""
        run = result_of(event, timeout_error=AirflowSensorTimeout)
        self.log.info("%s", event.get("message") if isinstance(event, dict) else "completed")
        return run
