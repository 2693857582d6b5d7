"""Credits you can act on: alerts from the daily report, a DAG started when credits run low.

Two DAGs:

- `leadpipe_credit_alerts` (`@daily`): `pull_visitors` writes the last day's visitors as gzipped
  JSON Lines to `params.output_dir` (with `retry_policy=LeadpipeRetryPolicy(...)` on Airflow 3.3+:
  a rate limit waits out the server's `Retry-After`, a refused key fails at once). Then
  `credit_report` (LeadpipeCreditReportOperator, whatever the pull did) compares the account with
  the previous report and alerts through its notifiers when fewer than `MIN_CREDITS` credits are
  left, more than 90% are used, or credits run out before the next reset (or within 48 h after
  it): each threshold once per crossing per billing cycle, not on every run. `any_failed` fails
  the run when a task above failed (without it, the report, which runs anyway, would make a run
  whose pull failed a success: a run's state is its last tasks').
- `leadpipe_credits_low` (Airflow 3.0+): scheduled on the asset
  `leadpipe://api.aws53.cloud/account/credits-low`, whose watcher (LeadpipeCreditsLowEventTrigger,
  in the triggerer) emits one event each time the balance falls below `MIN_CREDITS` or above 90%
  used, between reports. `credits_low_message` reads the events' messages (organization, credits
  left of the limit; never the key) and its notifier sends them. On Airflow 2.x there are no
  watchers: the DAG has no schedule and no notifier, and a run by hand has nothing to tell (it
  skips).

The notifier is Airflow's SMTP notifier (`apache-airflow-providers-smtp`, connection
`smtp_default`) to `LEADPIPE_EXAMPLE_ALERT_EMAIL` (default `ops@example.com`); swap in Slack,
Apprise or your own `BaseNotifier`. Without the SMTP provider the alerts go to the task log and the
report's XCom only. `MIN_CREDITS` is `LEADPIPE_EXAMPLE_MIN_CREDITS` (default 500), the watcher
polls every `LEADPIPE_EXAMPLE_WATCH_INTERVAL` seconds (default 300) and the pull retries after
`LEADPIPE_EXAMPLE_RETRY_DELAY` seconds (default 120), all read when the file is parsed (the
watcher's arguments must be fixed values). Needs a `leadpipe` connection named
`leadpipe_default`.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_leadpipe.operators.credit_report import LeadpipeCreditReportOperator
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
from airflow_provider_leadpipe.triggers.credits import LeadpipeCreditsLowEventTrigger

try:
    from airflow.sdk import Asset, AssetWatcher, dag, task
except ImportError:  # Airflow 2.x: no asset watchers
    from airflow.decorators import dag, task

    Asset = AssetWatcher = None

try:
    from airflow_provider_leadpipe.utils.retry_policy import LeadpipeRetryPolicy
except ImportError:  # Airflow < 3.3: tasks take no retry_policy (retries and retry_delay alone)
    LeadpipeRetryPolicy = None

try:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
except ImportError:  # no SMTP provider: the alerts are logged and in the XCom only
    SmtpNotifier = None

MIN_CREDITS = float(os.environ.get("LEADPIPE_EXAMPLE_MIN_CREDITS", "500"))
WATCH_INTERVAL = float(os.environ.get("LEADPIPE_EXAMPLE_WATCH_INTERVAL", "300"))
RETRY_DELAY = float(os.environ.get("LEADPIPE_EXAMPLE_RETRY_DELAY", "120"))
MAX_PERCENT_USED = 90
ALERT_EMAIL = os.environ.get("LEADPIPE_EXAMPLE_ALERT_EMAIL", "ops@example.com")
OUTPUT_DIR = os.environ.get("LEADPIPE_EXAMPLE_OUTPUT_DIR", "/tmp/leadpipe-example")


def mail_notifiers(subject: str, body: str) -> list[Any]:
    """An SMTP notifier, or none without the SMTP provider. ``subject`` is a template; ``body`` is
    a Jinja expression, HTML-escaped in the mail (an organization name is the API's text)."""
    if SmtpNotifier is None:
        return []
    return [
        SmtpNotifier(
            to=ALERT_EMAIL,
            from_email="airflow@example.com",
            subject=subject,
            html_content="<pre>{{ (" + body + ") | e }}</pre>",
        )
    ]


#: The pull's retries: Airflow 3.3's retry_policy where it exists, plain retries everywhere.
PULL_RETRIES: dict[str, Any] = {"retries": 3, "retry_delay": pendulum.duration(seconds=RETRY_DELAY)}
if LeadpipeRetryPolicy is not None:
    PULL_RETRIES["retry_policy"] = LeadpipeRetryPolicy(max_retry_after=900)


@dag(
    dag_id="leadpipe_credit_alerts",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"output_dir": OUTPUT_DIR},
    tags=["leadpipe", "example", "alerts"],
    doc_md=__doc__,
)
def leadpipe_credit_alerts():
    pull = LeadpipeVisitorsToStorageOperator(
        task_id="pull_visitors",
        path="{{ params.output_dir }}/visitors/{{ run_id | replace(':', '-') | replace('+', '_') }}.jsonl.gz",
        timeframe="24h",
        **PULL_RETRIES,
    )
    report = LeadpipeCreditReportOperator(
        task_id="credit_report",
        min_credits=MIN_CREDITS,
        max_percent_used=MAX_PERCENT_USED,
        exhaustion_margin_hours=48,
        notifiers=mail_notifiers("{{ leadpipe_alert.reason }}", "leadpipe_alert.message"),
        trigger_rule="all_done",  # report (and alert) even when the pull failed
    )

    @task(trigger_rule="one_failed", retries=0)
    def any_failed() -> None:
        """Runs only when a task above failed (else it is skipped), and fails the run."""
        raise AirflowFailException("a task of this run failed (pull_visitors or credit_report): see its log")

    pull >> report
    [pull, report] >> any_failed()


leadpipe_credit_alerts()

if Asset is not None:
    #: The account's credits running low; its watcher turns each downward crossing into an event.
    credits_low = Asset(
        "leadpipe://api.aws53.cloud/account/credits-low",
        watchers=[
            AssetWatcher(
                name="leadpipe_credits_low",
                trigger=LeadpipeCreditsLowEventTrigger(
                    min_credits=MIN_CREDITS, max_percent_used=MAX_PERCENT_USED, poll_interval=WATCH_INTERVAL
                ),
            )
        ],
    )
    SCHEDULE: Any = [credits_low]
else:
    credits_low = None
    SCHEDULE = None


@dag(
    dag_id="leadpipe_credits_low",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["leadpipe", "example", "alerts", "event-driven"],
    doc_md=__doc__,
)
def leadpipe_credits_low():
    # Airflow 3 only (where there are events): Airflow 2 runs a task's success callback when the
    # task skips too, and would mail an empty message for a run by hand.
    @task(
        on_success_callback=mail_notifiers(
            "Leadpipe credits low", "ti.xcom_pull(task_ids='credits_low_message')"
        )
        if credits_low is not None
        else []
    )
    def credits_low_message(triggering_asset_events: Any = None) -> str:
        """The watcher's messages, one per event; skips when there is none (a run by hand)."""
        events = triggering_asset_events[credits_low] if triggering_asset_events and credits_low else []
        messages = [event.extra["payload"]["message"] for event in events if event.extra.get("payload")]
        if not messages:
            raise AirflowSkipException("no credits-low event: nothing to tell")
        return "\n\n".join(messages)

    credits_low_message()


leadpipe_credits_low()
