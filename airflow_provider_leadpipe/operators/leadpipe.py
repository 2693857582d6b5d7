"""LeadpipeAccountStatusOperator: fetch the account status, log it, push it to XCom."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_leadpipe import validation
from airflow_provider_leadpipe.conditions import AccountCondition, parse_bool
from airflow_provider_leadpipe.exceptions import LeadpipeAccountError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AccountStatus
from airflow_provider_leadpipe.validation import has_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class LeadpipeBaseOperator(BaseOperator):
    """Base of the Leadpipe operators: a templated, validated connection id and a cached hook.

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated). Default ``leadpipe_default``.
    """

    template_fields: Sequence[str] = ("leadpipe_conn_id",)

    def __init__(self, *, leadpipe_conn_id: str = LeadpipeHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A string (maybe a template), or an XComArg that Airflow resolves before execute().
        if not hasattr(leadpipe_conn_id, "resolve"):
            validation.conn_id(leadpipe_conn_id)
        self.leadpipe_conn_id = leadpipe_conn_id

    @cached_property
    def hook(self) -> LeadpipeHook:
        """The hook for ``leadpipe_conn_id`` (built on first use, after templating)."""
        return LeadpipeHook(leadpipe_conn_id=self.leadpipe_conn_id)

    def fetch_account_status(self) -> AccountStatus:
        """``GET /v1/data/account`` through the hook; its HTTP client is closed afterwards."""
        try:
            return self.hook.get_account_status()
        finally:
            self.hook.close()


class LeadpipeAccountStatusOperator(LeadpipeBaseOperator):
    """Fetch the Leadpipe account status and push it to XCom.

    The XCom value (the return value) is the API's ``data`` object with the API's own key names,
    so ``{{ ti.xcom_pull(task_ids="account")["credits"]["remaining"] }}`` works. One summary line
    is logged.

    The checks are the sensor's own :class:`~airflow_provider_leadpipe.conditions.AccountCondition`,
    applied once instead of waited for.

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated). Default ``leadpipe_default``.
    :param fail_if_unhealthy: fail (without retries) when the API reports ``healthy: false``
        (templated).
    :param min_credits: fail (without retries) when fewer credits than this remain (templated).
        An uncapped plan (``remaining: null``) never fails this check.
    :raises LeadpipeAccountError: when a check fails (an ``AirflowFailException``).
    """

    template_fields: Sequence[str] = ("leadpipe_conn_id", "fail_if_unhealthy", "min_credits")

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        fail_if_unhealthy: bool | str = False,
        min_credits: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(leadpipe_conn_id=leadpipe_conn_id, **kwargs)
        self.fail_if_unhealthy = fail_if_unhealthy
        self.min_credits = min_credits
        if not has_template(fail_if_unhealthy, min_credits):
            self.condition  # noqa: B018 - bad arguments fail at DAG parse, not at run time

    @property
    def condition(self) -> AccountCondition:
        """The checks as an :class:`AccountCondition` (validated; re-read after templating)."""
        return AccountCondition(
            require_healthy=parse_bool("fail_if_unhealthy", self.fail_if_unhealthy),
            min_credits=self.min_credits,  # type: ignore[arg-type]  # a templated string is parsed
            fail_on_statuses=(),
        )

    def execute(self, context: Context) -> dict[str, Any]:
        condition = self.condition
        status = self.fetch_account_status()
        self.log.info("Leadpipe account: %s", status.summary())
        satisfied, reason = condition.evaluate(status)
        if not satisfied:
            raise LeadpipeAccountError(
                f"Leadpipe account {status.organization.name!r} fails the task's checks: {reason}"
            )
        return status.to_dict()
