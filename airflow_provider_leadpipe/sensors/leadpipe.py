"""LeadpipeAccountSensor: gate a DAG on a Leadpipe account's health, credits and audience slots."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_leadpipe import validation
from airflow_provider_leadpipe.conditions import (
    DEFAULT_FAIL_ON_STATUSES,
    AccountCondition,
    unavailable,
)
from airflow_provider_leadpipe.exceptions import TRANSIENT_ERRORS, LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.triggers import events
from airflow_provider_leadpipe.triggers.leadpipe import LeadpipeAccountTrigger
from airflow_provider_leadpipe.validation import has_template

try:  # not in common-compat's map
    from airflow.sdk.exceptions import TaskDeferralError, TaskDeferralTimeout
except ImportError:  # Airflow 2.x: a framework deferral timeout is a TaskDeferralError
    from airflow.exceptions import TaskDeferralError  # type: ignore[no-redef]

    TaskDeferralTimeout = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Errors that ``soft_fail`` turns into a skip in poke mode (``BaseSensorOperator.execute``).
_SOFT_FAIL_SKIPS = (AirflowSensorTimeout, AirflowTaskTimeout, AirflowFailException, AirflowSkipException)


def _skipped_in_poke_mode(exc: BaseException) -> bool:
    """Whether poke mode's ``soft_fail`` would skip ``exc`` (the framework's deferral timeout counts)."""
    if isinstance(exc, _SOFT_FAIL_SKIPS):
        return True
    if TaskDeferralTimeout is not None:
        return isinstance(exc, TaskDeferralTimeout)
    return isinstance(exc, TaskDeferralError) and "timeout" in str(exc).lower()  # Airflow 2.x


#: Extra time given to the framework's deferral timeout, so the trigger's own timeout event (which
#: reaches ``execute_complete``) always comes first; the framework timeout only backs it up.
DEFERRAL_GRACE = 60.0


class LeadpipeAccountSensor(BaseSensorOperator):
    """Wait until a Leadpipe account is healthy and has what this run needs.

    Succeeds when the account satisfies every condition and pushes the account status
    (``AccountStatus.to_dict()``) to XCom. While it waits it logs one line saying why, e.g.
    ``waiting: 0 credits left, need 500; credits reset 2026-12-01T00:00:00Z``. HTTP 401/403 and
    states waiting cannot fix (``fail_on_statuses``; ``min_audience_slots`` on an account without
    the intent product) fail at once without retries; transient API failures count as "not yet".

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated).
    :param require_healthy: the account must report ``healthy: true`` (templated).
    :param min_credits: ``credits.remaining >= min_credits``; an uncapped plan (null ``remaining``)
        always satisfies it; None or 0 disables the check (templated).
    :param max_percent_used: ``credits.percentUsed <= max_percent_used`` (0-100); a null
        ``percentUsed`` satisfies it (templated).
    :param min_audience_slots: ``intent.audienceSlotsAvailable >= min_audience_slots`` (templated).
    :param fail_on_statuses: organization statuses that fail at once (default ``("expired",)``;
        a list or a comma-separated string, templated).
    :param deferrable: wait in the triggerer instead of a worker slot (default:
        ``[operators] default_deferrable``). The sensor pokes once first and defers only if needed.

    Everything :class:`~airflow.sdk.BaseSensorOperator` takes also applies (``poke_interval``,
    ``timeout``, ``mode``, ``soft_fail``, ``exponential_backoff``, ...). In deferrable mode the
    trigger checks every ``poke_interval`` seconds until ``timeout``, counted from the first poke.
    """

    template_fields: Sequence[str] = (
        "leadpipe_conn_id",
        "require_healthy",
        "min_credits",
        "max_percent_used",
        "min_audience_slots",
        "fail_on_statuses",
    )
    ui_color = "#d9f2e6"

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        require_healthy: bool | str = True,
        min_credits: float | str | None = 1,
        max_percent_used: float | str | None = None,
        min_audience_slots: int | str | None = None,
        fail_on_statuses: Iterable[str] | str | None = DEFAULT_FAIL_ON_STATUSES,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.leadpipe_conn_id = validation.conn_id(leadpipe_conn_id)
        except LeadpipeConfigError as exc:
            raise self._named(exc) from None
        self.require_healthy = require_healthy
        self.min_credits = min_credits
        self.max_percent_used = max_percent_used
        self.min_audience_slots = min_audience_slots
        self.fail_on_statuses = fail_on_statuses
        if deferrable is None:
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = bool(deferrable)
        self._started_at: float | None = None
        # Fail at DAG parse time on bad values; templated ones are checked once rendered.
        self._check_condition({k: v for k, v in self._condition_kwargs().items() if not has_template(v)})

    def _named(self, exc: LeadpipeConfigError) -> LeadpipeConfigError:
        """``exc`` with this task named, e.g. ``LeadpipeAccountSensor 'gate': min_credits must ...``."""
        return LeadpipeConfigError(f"{type(self).__name__} '{self.task_id}': {exc}")

    def _check_condition(self, kwargs: dict[str, Any]) -> AccountCondition:
        try:
            return AccountCondition(**kwargs)
        except LeadpipeConfigError as exc:
            raise self._named(exc) from None

    def _condition_kwargs(self) -> dict[str, Any]:
        return {
            "require_healthy": self.require_healthy,
            "min_credits": self.min_credits,
            "max_percent_used": self.max_percent_used,
            "min_audience_slots": self.min_audience_slots,
            "fail_on_statuses": self.fail_on_statuses,
        }

    @property
    def condition(self) -> AccountCondition:
        """The (rendered) condition this sensor waits for."""
        return self._check_condition(self._condition_kwargs())

    @cached_property
    def hook(self) -> LeadpipeHook:
        return LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id)

    def execute(self, context: Context) -> Any:
        self._started_at = time.time()
        return super().execute(context)

    def poke(self, context: Context) -> PokeReturnValue:
        condition = self.condition
        try:
            status = self.hook.get_account_status()
        except TRANSIENT_ERRORS as exc:
            return self._not_yet(unavailable(str(exc)))
        satisfied, reason = condition.evaluate(status)  # raises LeadpipeAccountError: fail fast
        if not satisfied:
            return self._not_yet(reason)
        self.log.info("%s", reason)
        return PokeReturnValue(is_done=True, xcom_value=status.to_dict())

    def _not_yet(self, reason: str) -> PokeReturnValue:
        self.log.info("waiting: %s", reason)
        if self.deferrable:
            self._defer()
        return PokeReturnValue(is_done=False)

    def _defer(self) -> None:
        started = self._started_at if self._started_at is not None else time.time()
        deadline = started + self.timeout
        remaining = deadline - time.time()
        if remaining <= 0:
            raise AirflowSensorTimeout(f"Sensor has timed out: the timeout of {self.timeout:g} s has passed.")
        self.defer(
            trigger=LeadpipeAccountTrigger(
                leadpipe_conn_id=self.leadpipe_conn_id,
                condition=self.condition.to_dict(),
                poke_interval=float(self.poke_interval),
                deadline=deadline,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=remaining + max(DEFERRAL_GRACE, 2 * float(self.poke_interval))),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume from the trigger: return the account status dict (XCom) or raise the event's error."""
        account = events.result_of(event)
        self.log.info("%s", event.get("message") if isinstance(event, dict) else "ready")
        return account

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Apply ``soft_fail`` and ``never_fail`` after a deferral exactly as poke mode does.

        Airflow's sensor skips on *any* ``AirflowException`` after a deferral when ``soft_fail`` is
        set (apache/airflow#71255), so a malformed event or a broken connection would be skipped in
        deferrable mode but fail in poke mode: only timeouts and fail-fast errors are skipped here.
        Airflow 2.x also ignores ``never_fail`` after a deferral.
        """
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as skip:
            cause = skip.__cause__
            if self.soft_fail and cause is not None and not _skipped_in_poke_mode(cause):
                raise cause from None
            raise
        except Exception as exc:
            if self.soft_fail and _skipped_in_poke_mode(exc):
                # Airflow 3.0's sensor applies no soft_fail at all after a deferral.
                raise AirflowSkipException(f"Skipping due to soft_fail: {exc}") from exc
            if getattr(self, "never_fail", False):
                raise AirflowSkipException("Skipping due to never_fail is set to True.") from exc
            raise
