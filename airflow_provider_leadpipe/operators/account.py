"""LeadpipeAccountStatusOperator: fetch the account status, check it, push it to XCom."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_leadpipe.conditions.account import CHECKS, PARSERS, AccountCondition
from airflow_provider_leadpipe.exceptions import LeadpipeAccountError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.operators.base import LeadpipeBaseOperator
from airflow_provider_leadpipe.utils.tasks import Literal

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class LeadpipeAccountStatusOperator(LeadpipeBaseOperator):
    """Fetch the Leadpipe account status, apply the checks asked for, and push it to XCom.

    The XCom value (the return value) is the API's ``data`` object with the API's own key names,
    so ``{{ ti.xcom_pull(task_ids="account")["credits"]["remaining"] }}`` works. One summary line
    is logged.

    The checks are the sensor's own, with the sensor's argument names
    (:class:`~airflow_provider_leadpipe.conditions.AccountCondition`), applied once instead of
    waited for. By default nothing is checked; a check that fails fails the task without retries.

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated). Default ``leadpipe_default``.
    :param require_healthy: the API must report ``healthy: true`` (templated). Default False.
    :param min_credits: at least this many credits must remain; an uncapped plan
        (``remaining: null``) passes (templated). Default None (off).
    :param max_percent_used: at most this share of credits (0-100) may be used (templated).
    :param min_audience_slots: at least this many free audience slots (templated).
    :param fail_on_statuses: organization statuses that fail the task (templated; a list, a list
        literal or a comma-separated string).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    :raises LeadpipeAccountError: when a check fails (an ``AirflowFailException``).
    """

    template_fields: Sequence[str] = ("leadpipe_conn_id", *CHECKS)
    literals = tuple(Literal((name,), PARSERS[name]) for name in CHECKS)

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        require_healthy: bool | str = False,
        min_credits: float | str | None = None,
        max_percent_used: float | str | None = None,
        min_audience_slots: int | str | None = None,
        fail_on_statuses: Iterable[str] | str | None = None,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(leadpipe_conn_id=leadpipe_conn_id, hook_params=hook_params, **kwargs)
        self.require_healthy = require_healthy
        self.min_credits = min_credits
        self.max_percent_used = max_percent_used
        self.min_audience_slots = min_audience_slots
        self.fail_on_statuses = fail_on_statuses
        self.check_literals()

    @property
    def condition(self) -> AccountCondition:
        """The checks as an :class:`AccountCondition` (validated; re-read after templating)."""
        return self.checked(AccountCondition, **{name: getattr(self, name) for name in CHECKS})

    def execute(self, context: Context) -> dict[str, Any]:
        condition = self.condition
        with self.hook as hook:
            status = hook.get_account_status()
        self.log.info("Leadpipe account: %s", status.summary())
        satisfied, reason = condition.evaluate(status)
        if not satisfied:
            raise LeadpipeAccountError(
                f"Leadpipe account {status.organization.name!r} fails the task's checks: {reason}"
            )
        return status.to_dict()
