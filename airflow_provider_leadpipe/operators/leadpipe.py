"""LeadpipeAccountStatusOperator: fetch the account status, log it, push it to XCom."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_leadpipe.exceptions import LeadpipeAccountUnusableError, LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AccountStatus, _fmt

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
        resolvable = hasattr(leadpipe_conn_id, "resolve")
        if not resolvable and (not isinstance(leadpipe_conn_id, str) or not leadpipe_conn_id.strip()):
            raise LeadpipeConfigError("leadpipe_conn_id must be a non-empty string")
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

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated). Default ``leadpipe_default``.
    :param fail_if_unhealthy: fail (without retries) when the API reports ``healthy: false``.
    :param min_credits: fail (without retries) when fewer credits than this remain. An uncapped
        plan (``remaining: null``) never fails this check.
    :raises LeadpipeAccountUnusableError: when a check fails (an ``AirflowFailException``).
    """

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        fail_if_unhealthy: bool = False,
        min_credits: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(leadpipe_conn_id=leadpipe_conn_id, **kwargs)
        if not isinstance(fail_if_unhealthy, bool):
            raise LeadpipeConfigError(
                f"fail_if_unhealthy must be True or False, not {type(fail_if_unhealthy).__name__}"
            )
        if min_credits is not None and (
            isinstance(min_credits, bool)
            or not isinstance(min_credits, (int, float))
            or not math.isfinite(min_credits)
            or min_credits < 0
        ):
            raise LeadpipeConfigError("min_credits must be None or a finite number >= 0")
        self.fail_if_unhealthy = fail_if_unhealthy
        self.min_credits = min_credits

    def execute(self, context: Context) -> dict[str, Any]:
        status = self.fetch_account_status()
        self.log.info("Leadpipe account: %s", status.summary())
        self.check(status)
        return status.to_dict()

    def check(self, status: AccountStatus) -> None:
        """Apply ``fail_if_unhealthy`` and ``min_credits`` to a status."""
        name = status.organization.name
        if self.fail_if_unhealthy and not status.healthy:
            raise LeadpipeAccountUnusableError(
                f"Leadpipe account {name!r} is not healthy (organization status "
                f"{status.organization.status!r}) and fail_if_unhealthy=True"
            )
        remaining = status.credits.remaining
        if self.min_credits is not None and remaining is not None and remaining < self.min_credits:
            raise LeadpipeAccountUnusableError(
                f"Leadpipe account {name!r} has {_fmt(remaining)} credits left, "
                f"below min_credits={_fmt(self.min_credits)}"
            )
