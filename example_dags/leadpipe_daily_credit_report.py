"""Daily Leadpipe credit report: credits used since the last report, burn rate, runway.

`credit_report` compares the account with the report of its previous run (found by the report's
own observation time, not by logical date, so manual and API-triggered runs chain as well), logs a
short block and pushes the report to XCom. `check_runway` then fails the run, which sends your
usual failure alerts, when credits are projected to run out before the next reset.

Needs a `leadpipe` connection named `leadpipe_default` (API key as the password).
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import AirflowFailException

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task

from airflow_provider_leadpipe.operators.credit_report import LeadpipeCreditReportOperator


@dag(
    dag_id="leadpipe_daily_credit_report",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["leadpipe", "example"],
    doc_md=__doc__,
)
def leadpipe_daily_credit_report():
    report = LeadpipeCreditReportOperator(task_id="credit_report")

    @task
    def check_runway(report: dict) -> str:
        """Fail when credits run out before the next reset; otherwise return a one-word verdict."""
        if report["runs_out_before_reset"]:
            rate = report["daily_burn_rate"]
            burning = "an unknown number of" if rate is None else f"{rate:.1f}"
            raise AirflowFailException(
                f"Leadpipe credits run out at {report['projected_exhaustion_at']}, before the next "
                f"reset ({report['resets_at'] or 'none scheduled'}): {report['remaining']} left, "
                f"burning {burning} credits/day"
            )
        if report["unlimited"]:
            return "unlimited"
        return "unknown" if report["runs_out_before_reset"] is None else "ok"

    check_runway(report.output)


leadpipe_daily_credit_report()
