"""LeadpipeAccountSensor: gate a DAG on a Leadpipe account's health, credits and audience slots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    PokeReturnValue,
)

from airflow_provider_leadpipe.conditions.account import (
    CHECKS,
    DEFAULT_FAIL_ON_STATUSES,
    PARSERS,
    AccountCondition,
    unavailable,
)
from airflow_provider_leadpipe.exceptions import TRANSIENT_ERRORS
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.sensors.base import LeadpipeSensorBase
from airflow_provider_leadpipe.triggers import events
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from airflow_provider_leadpipe.utils.tasks import Literal

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.triggers.base import BaseTrigger


class LeadpipeAccountSensor(LeadpipeSensorBase):
    """Wait until a Leadpipe account is healthy and has what this run needs.

    Succeeds when the account satisfies every check and pushes the account status
    (``AccountStatus.to_dict()``) to XCom. While it waits it logs one line saying why, e.g.
    ``waiting: 0 credits left, need 500; credits reset 2026-12-01T00:00:00Z``. HTTP 401/403 and
    states waiting cannot fix (``fail_on_statuses``; ``min_audience_slots`` on an account without
    the intent product) fail at once without retries; transient API failures count as "not yet".

    The checks have the same names as :class:`~airflow_provider_leadpipe.operators.account.
    LeadpipeAccountStatusOperator`'s; each is off with None. The defaults wait for a usable account.

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated; an XComArg works too).
    :param require_healthy: the account must report ``healthy: true`` (templated). Default True.
    :param min_credits: ``credits.remaining >= min_credits``; an uncapped plan (null ``remaining``)
        always satisfies it (templated). Default 1.
    :param max_percent_used: ``credits.percentUsed <= max_percent_used`` (0-100); a null
        ``percentUsed`` satisfies it (templated).
    :param min_audience_slots: ``intent.audienceSlotsAvailable >= min_audience_slots`` (templated).
    :param fail_on_statuses: organization statuses that fail at once (default ``("expired",)``;
        a list, a list literal or a comma-separated string, templated).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``),
        handed on to the trigger in deferrable mode.
    :param deferrable: wait in the triggerer instead of a worker slot (default:
        ``[operators] default_deferrable``). The sensor pokes once first and defers only if needed.

    Everything :class:`~airflow.sdk.BaseSensorOperator` takes also applies (``poke_interval``,
    ``timeout``, ``mode``, ``soft_fail``, ``silent_fail``, ``never_fail``, ``exponential_backoff``,
    ``max_wait``), alike in every mode. In deferrable mode the trigger checks every
    ``poke_interval`` seconds (growing as in poke mode with ``exponential_backoff``) until
    ``timeout``, counted from the first poke.
    """

    template_fields: Sequence[str] = ("leadpipe_conn_id", *CHECKS)
    literals = tuple(Literal((name,), PARSERS[name]) for name in CHECKS)
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
        hook_params: Mapping[str, Any] | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_leadpipe(leadpipe_conn_id, hook_params)
        self.require_healthy = require_healthy
        self.min_credits = min_credits
        self.max_percent_used = max_percent_used
        self.min_audience_slots = min_audience_slots
        self.fail_on_statuses = fail_on_statuses
        self.init_deferrable(deferrable)
        self.check_literals()

    @property
    def condition(self) -> AccountCondition:
        """The (rendered) condition this sensor waits for."""
        return self.checked(AccountCondition, **{name: getattr(self, name) for name in CHECKS})

    # -- the three methods Airflow calls -----------------------------------------------------------

    def poke(self, context: Context) -> PokeReturnValue:
        """Check the account once: done (with the status as XCom) or not yet; raises what waiting
        cannot fix (``LeadpipeAuthError``, ``LeadpipeAccountError``)."""
        condition = self.condition
        try:
            with self.hook as hook:
                status = hook.get_account_status()
        except TRANSIENT_ERRORS as exc:
            return self._not_yet(unavailable(str(exc)))
        finally:
            # The next poke reads the connection again, so a rotated key is picked up as it is
            # by reschedule mode (a new process per poke) and by the trigger.
            self.__dict__.pop("hook", None)
        satisfied, reason = condition.evaluate(status)  # raises LeadpipeAccountError: fail fast
        if not satisfied:
            return self._not_yet(reason)
        self.log.info("%s", reason)
        return PokeReturnValue(is_done=True, xcom_value=status.to_dict())

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, deadline: float | None = None
    ) -> dict[str, Any]:
        """Resume from the trigger: return the account status dict (XCom) or raise the event's error.

        :param deadline: the wall-clock deadline of the first poke (for a ``silent_fail`` re-deferral).
        :raises AirflowSensorTimeout: a ``timeout`` event.
        :raises LeadpipeAuthError, LeadpipeAccountError: a ``failure`` event (fail fast).
        :raises LeadpipeError: an ``error`` event, or an event that is missing or malformed.
        """
        account = events.result_of(event)
        self.log.info("%s", event.get("message") if isinstance(event, dict) else "ready")
        return account

    def trigger(self, deadline: float) -> BaseTrigger:
        """The trigger that waits for the same condition in the triggerer, until ``deadline``."""
        return LeadpipeAccountTrigger(
            leadpipe_conn_id=self.leadpipe_conn_id,
            **self.condition.to_dict(),
            poll_interval=float(self.poke_interval),
            deadline=deadline,
            hook_params=self.hook_params,
            exponential_backoff=bool(self.exponential_backoff),
            max_wait=self.max_wait.total_seconds() if self.max_wait else None,
        )
