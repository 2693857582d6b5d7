"""LeadpipeCreditReportOperator: credits used since the last run, burn rate and runway."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pendulum

from airflow_provider_leadpipe.models.credit_report import Observation, build_credit_report
from airflow_provider_leadpipe.operators.base import LeadpipeBaseOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class LeadpipeCreditReportOperator(LeadpipeBaseOperator):
    """Report credit usage since this task's previous run and project when credits run out.

    Each run fetches the account status, finds the most recent earlier report pushed by this
    same task (in any earlier DAG run), and computes credits used since then, the daily burn
    rate, the projected exhaustion time and whether that comes before ``credits.resetsAt``
    (see :mod:`airflow_provider_leadpipe.models.credit_report`). The report is logged as a short block and
    returned (XCom): a JSON dict that includes the current ``account`` status and ``observed_at``,
    which the next run compares against, and ``leadpipe_conn_id`` (the Leadpipe page in the
    Airflow UI charts each connection's reports).

    The previous report is chosen by its own ``observed_at`` wall-clock time, never by logical
    date, so runs triggered through the API (``logical_date: null``) chain correctly.

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated). Default ``leadpipe_default``.
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    def execute(self, context: Context) -> dict[str, Any]:
        with self.hook as hook:
            status = hook.get_account_status()
        observed_at = pendulum.now("UTC")
        previous = self.previous_observation(context, before=observed_at)
        report = build_credit_report(status, observed_at=observed_at, previous=previous)
        self.log.info("%s", report.render())
        # The connection id lets the Leadpipe UI page chart each connection's reports.
        return {**report.to_dict(), "leadpipe_conn_id": self.leadpipe_conn_id}

    def previous_observation(self, context: Context, *, before: pendulum.DateTime) -> Observation | None:
        """The latest observation this task stored in an earlier run, or None.

        ``xcom_pull(include_prior_dates=True)`` is used only to *fetch* candidates: on Airflow 3
        (task SDK 1.3) it returns every earlier run's value, in no useful order (a single value
        when there is one); Airflow 2 returns the value of the latest logical date. Either way the
        newest ``observed_at`` before ``before`` wins, which needs no logical date.
        """
        pulled = context["ti"].xcom_pull(task_ids=self.task_id, include_prior_dates=True)
        one_value = pulled is None or isinstance(pulled, (Mapping, str)) or not isinstance(pulled, Iterable)
        candidates = [pulled] if one_value else list(pulled)
        latest: Observation | None = None
        ignored = 0
        for value in candidates:
            if value is None:
                continue
            try:
                observation = Observation.from_report(value)
            except ValueError as exc:
                ignored += 1
                self.log.debug("Ignoring an earlier XCom value that is not a credit report: %s", exc)
                continue
            if observation.observed_at < before and (
                latest is None or observation.observed_at > latest.observed_at
            ):
                latest = observation
        if ignored:
            self.log.warning("Ignored %d earlier XCom value(s) that are not credit reports", ignored)
        return latest
