"""LeadpipeAudienceRunSensor: wait for an Orbit audience run, or for a fresh enough daily run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import PokeReturnValue

from airflow_provider_leadpipe.conditions.account import unavailable
from airflow_provider_leadpipe.conditions.audiences import AudienceRunCondition
from airflow_provider_leadpipe.exceptions import TRANSIENT_ERRORS
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.sensors.base import LeadpipeSensorBase
from airflow_provider_leadpipe.triggers.audiences import RUN, LeadpipeAudienceRunTrigger
from airflow_provider_leadpipe.triggers.base import check
from airflow_provider_leadpipe.triggers.events import result_of
from airflow_provider_leadpipe.utils.tasks import Literal

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.triggers.base import BaseTrigger


class LeadpipeAudienceRunSensor(LeadpipeSensorBase):
    """Wait until an Orbit audience run has completed; push the run (API key names) to XCom.

    With ``audience_run_id`` it waits for that run; a failed or cancelled run fails the task at
    once (``LeadpipeAudienceRunError``, with ``errorCode`` and ``errorMessage``). Without it, it
    waits until the audience has a completed run whose ``dataDate`` is on or after
    ``min_data_date`` (any completed run when None): the daily runs Leadpipe makes by itself.
    Transient API failures count as "not yet".

    Poke, reschedule and deferrable modes (and ``soft_fail``, ``silent_fail``, ``never_fail``,
    ``exponential_backoff``, ``max_wait``) work as for
    :class:`~airflow_provider_leadpipe.sensors.account.LeadpipeAccountSensor`: in deferrable mode
    the sensor checks once, then waits in the triggerer every ``poke_interval`` seconds until
    ``timeout``, counted from the first check.

    :param audience_id: the audience's id, a UUID (templated).
    :param audience_run_id: the run to wait for, a UUID (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='run', key='audience_run_id') }}"``.
    :param min_data_date: without a run id, the earliest ``dataDate`` (``YYYY-MM-DD``, templated,
        e.g. ``"{{ ds }}"``).
    :param leadpipe_conn_id: the ``leadpipe`` connection (templated).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``),
        handed on to the trigger in deferrable mode.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("audience_id", "audience_run_id", "min_data_date", "leadpipe_conn_id")
    literals = (Literal(("audience_id", "audience_run_id", "min_data_date"), AudienceRunCondition),)
    ui_color = "#d9f2e6"

    def __init__(
        self,
        *,
        audience_id: str,
        audience_run_id: str | None = None,
        min_data_date: str | None = None,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        hook_params: Mapping[str, Any] | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_leadpipe(leadpipe_conn_id, hook_params)
        self.audience_id = audience_id
        self.audience_run_id = audience_run_id
        self.min_data_date = min_data_date
        self.init_deferrable(deferrable)
        self.check_literals()

    @property
    def condition(self) -> AudienceRunCondition:
        """What this sensor waits for (validated; re-read after templating)."""
        return self.checked(AudienceRunCondition, self.audience_id, self.audience_run_id, self.min_data_date)

    def execute(self, context: Context) -> Any:
        self.condition  # noqa: B018 -- rendered values are checked before anything is sent
        return super().execute(context)

    def poke(self, context: Context) -> PokeReturnValue:
        """Check once: done (the run as XCom) or not yet; raises a failed or cancelled run's error."""
        condition = self.condition
        try:
            with self.hook as hook:
                run, reason = check(hook, condition.reads())
        except TRANSIENT_ERRORS as exc:
            run, reason = None, unavailable(str(exc))
        finally:
            self.__dict__.pop("hook", None)  # the next poke reads the connection again (key rotation)
        if run is None:
            return self._not_yet(reason)
        self.log.info("%s", reason)
        return PokeReturnValue(is_done=True, xcom_value=run.to_dict())

    def trigger(self, deadline: float) -> BaseTrigger:
        return LeadpipeAudienceRunTrigger(
            leadpipe_conn_id=self.leadpipe_conn_id,
            **self.condition.to_dict(),
            poll_interval=float(self.poke_interval),
            deadline=deadline,
            hook_params=self.hook_params,
            exponential_backoff=bool(self.exponential_backoff),
            max_wait=self.max_wait.total_seconds() if self.max_wait else None,
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, deadline: float | None = None
    ) -> dict[str, Any]:
        """Resume from the trigger: the run dict (XCom), or the event's error raised.

        :raises AirflowSensorTimeout: a ``timeout`` event.
        :raises LeadpipeAudienceRunError: a failed or cancelled run (fail fast).
        :raises LeadpipeError: an ``error`` event, or an event that is missing or malformed.
        """
        run = result_of(event, RUN)
        self.log.info("%s", event.get("message") if isinstance(event, dict) else "completed")
        return run
