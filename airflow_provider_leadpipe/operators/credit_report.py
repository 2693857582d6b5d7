"""LeadpipeCreditReportOperator: credits used since the last run, burn rate and runway, and
threshold alerts sent through Airflow notifiers."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_leadpipe.conditions.credit_alerts import (
    PARSERS,
    THRESHOLDS,
    AlertDecision,
    CreditThresholds,
    alert_payload,
    decide_alerts,
    previous_state,
)
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models.credit_report import CreditReport, Observation, build_credit_report
from airflow_provider_leadpipe.operators.base import LeadpipeBaseOperator
from airflow_provider_leadpipe.utils.tasks import Literal

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def _alert_context(context: Context, payload: dict[str, Any]) -> Any:
    """A copy of the task's context with ``leadpipe_alert`` (a notifier merges its own fields into
    the context it gets: the task's is left alone)."""
    if AIRFLOW_V_3_0_PLUS or not hasattr(context, "_context"):  # a plain mapping (tests, 3.x)
        return {**context, "leadpipe_alert": payload}
    # Airflow 2's lazy Context warns on every deprecated key read: copy it without reading them.
    from airflow.utils.context import context_copy_partial  # type: ignore[attr-defined,unused-ignore]

    fresh = context_copy_partial(context, set(context.keys()))
    fresh["leadpipe_alert"] = payload
    return fresh


def _notifiers(value: Any) -> tuple[Callable[..., Any], ...]:
    """``notifiers``: a list of Airflow ``BaseNotifier`` instances (any callable taking the context)."""
    if value is None:
        return ()
    if callable(value) or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise LeadpipeConfigError(
            f"notifiers must be a list of Airflow notifiers (BaseNotifier), got {type(value).__name__}"
        )
    items = tuple(value)
    for index, item in enumerate(items):
        if not callable(item):
            raise LeadpipeConfigError(
                f"notifiers[{index}] must be an Airflow notifier (BaseNotifier), got {type(item).__name__}"
            )
    return items


class LeadpipeCreditReportOperator(LeadpipeBaseOperator):
    """Report credit usage since this task's previous run, project when credits run out, and
    alert through Airflow notifiers when a threshold is crossed.

    Each run fetches the account status, finds the most recent earlier report pushed by this
    same task (in any earlier DAG run), and computes credits used since then, the daily burn
    rate, the projected exhaustion time and whether that comes before ``credits.resetsAt``
    (see :mod:`airflow_provider_leadpipe.models.credit_report`). The report is logged as a short block and
    returned (XCom): a JSON dict that includes the current ``account`` status and ``observed_at``,
    which the next run compares against, ``leadpipe_conn_id`` (the Leadpipe page in the
    Airflow UI charts each connection's reports) and ``alerts``.

    The previous report is chosen by its own ``observed_at`` wall-clock time, never by logical
    date, so runs triggered through the API (``logical_date: null``) chain correctly.

    **Alerts.** Each threshold (:class:`~airflow_provider_leadpipe.conditions.credit_alerts.CreditThresholds`)
    is sent to every notifier once per crossing per billing cycle, not on every run (see
    :func:`~airflow_provider_leadpipe.conditions.credit_alerts.decide_alerts`). A notifier is called
    with the task's context plus ``leadpipe_alert`` (a dict with the ``message`` and its figures),
    so a template such as ``text="{{ leadpipe_alert.message }}"`` renders it; each alert gets a fresh
    copy of the notifier, since a ``BaseNotifier`` renders its fields in place. A notifier that
    raises is logged (WARNING, with the traceback) and does not fail the report; when every
    notifier failed for a threshold, it is not counted as sent, and the next run tries again.

    The state that remembers what was sent lives in the report's own XCom (``alerts.notified``),
    read back with the previous report: it is in Airflow's metadata database, so it survives
    workers and restarts; it arrives in the one pull that already finds the previous report, so
    it cannot disagree with the report it is compared with (another organisation starts unarmed);
    and it needs no Variable (global, writable by anyone, racy between DAGs) nor local disk.
    Clearing this task's earlier XComs (``airflow db clean``) forgets it, so an alert may be sent
    once more.

    ``alerts`` in the XCom: ``thresholds`` (those on), ``crossed`` (crossed now), ``fired`` (sent this
    run), ``notified`` (the state above) and ``failed`` (``{"threshold", "notifier"}`` per notifier
    that raised).

    :param leadpipe_conn_id: the ``leadpipe`` connection (templated). Default ``leadpipe_default``.
    :param min_credits: alert when fewer credits than this are left (templated). Default None (off).
    :param max_percent_used: alert when more than this share of credits (0-100) is used
        (templated). Default None (off).
    :param exhaustion_margin_hours: alert when credits are projected to run out before the next
        reset, or less than this many hours after it (templated). Default None (off).
    :param notifiers: Airflow notifiers (``BaseNotifier`` instances: Slack, SMTP, Apprise, your
        own) that receive each alert. Default none: alerts are only logged and put in the XCom.
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    :raises LeadpipeConfigError: a bad threshold, at DAG parse time (once rendered, when templated).
    """

    template_fields: Sequence[str] = ("leadpipe_conn_id", *THRESHOLDS)
    literals = tuple(Literal((name,), PARSERS[name]) for name in THRESHOLDS)

    def __init__(
        self,
        *,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        min_credits: float | str | None = None,
        max_percent_used: float | str | None = None,
        exhaustion_margin_hours: float | str | None = None,
        notifiers: Iterable[Callable[..., Any]] | None = None,
        hook_params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(leadpipe_conn_id=leadpipe_conn_id, hook_params=hook_params, **kwargs)
        self.min_credits = min_credits
        self.max_percent_used = max_percent_used
        self.exhaustion_margin_hours = exhaustion_margin_hours
        self.notifiers = self.checked(_notifiers, notifiers)
        self.check_literals()

    @property
    def thresholds(self) -> CreditThresholds:
        """The thresholds (validated; re-read after templating)."""
        return self.checked(CreditThresholds, **{name: getattr(self, name) for name in THRESHOLDS})

    def execute(self, context: Context) -> dict[str, Any]:
        thresholds = self.thresholds  # a bad rendered value fails before any request
        with self.hook as hook:
            status = hook.get_account_status()
        observed_at = pendulum.now("UTC")
        previous, previous_value = self.previous_report(context, before=observed_at)
        report = build_credit_report(status, observed_at=observed_at, previous=previous)
        self.log.info("%s", report.render())
        # Only a report compared with the previous one inherits its alert state (same organisation).
        state = previous_state(previous_value.get("alerts")) if report.previous is not None else None
        decision = decide_alerts(thresholds, report, state)
        alerts = self.send_alerts(context, thresholds, report, decision)
        # The connection id lets the Leadpipe UI page chart each connection's reports.
        return {**report.to_dict(), "leadpipe_conn_id": self.leadpipe_conn_id, "alerts": alerts}

    def send_alerts(
        self, context: Context, thresholds: CreditThresholds, report: CreditReport, decision: AlertDecision
    ) -> dict[str, Any]:
        """Log and send each due alert to every notifier; the ``alerts`` part of the XCom."""
        sent: list[str] = []
        failed: list[dict[str, str]] = []
        if decision.crossed and not decision.due:
            self.log.info("Credit thresholds still crossed, already alerted: %s", ", ".join(decision.crossed))
        for name in decision.due:
            payload = alert_payload(name, thresholds, report, leadpipe_conn_id=self.leadpipe_conn_id)
            self.log.warning("%s", payload["message"])
            delivered = not self.notifiers  # with no notifier, the log line and the XCom are the alert
            for notifier in self.notifiers:
                label = type(notifier).__name__
                try:
                    # A BaseNotifier renders its template fields in place: one copy per alert.
                    copy.copy(notifier)(_alert_context(context, payload))
                except Exception as exc:
                    failed.append({"threshold": name, "notifier": label})
                    self.log.warning(
                        "Notifier %s failed to send the %s alert (the report goes on): %s: %s",
                        label,
                        name,
                        type(exc).__name__,
                        exc,
                        exc_info=True,
                    )
                else:
                    delivered = True
            if delivered:
                sent.append(name)
        return {
            "thresholds": thresholds.to_dict(),
            "crossed": list(decision.crossed),
            "fired": sent,
            "notified": decision.state(sent),
            "failed": failed,
        }

    def previous_report(
        self, context: Context, *, before: pendulum.DateTime
    ) -> tuple[Observation | None, Mapping[str, Any]]:
        """The latest observation this task stored in an earlier run and that report's XCom value
        (``(None, {})`` when there is none).

        ``xcom_pull(include_prior_dates=True)`` is used only to *fetch* candidates: on Airflow 3
        (task SDK 1.3) it returns every earlier run's value, in no useful order (a single value
        when there is one); Airflow 2 returns the value of the latest logical date. Either way the
        newest ``observed_at`` before ``before`` wins, which needs no logical date.
        """
        pulled = context["ti"].xcom_pull(task_ids=self.task_id, include_prior_dates=True)
        one_value = pulled is None or isinstance(pulled, (Mapping, str)) or not isinstance(pulled, Iterable)
        candidates = [pulled] if one_value else list(pulled)
        latest: Observation | None = None
        latest_value: Mapping[str, Any] = {}
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
                latest, latest_value = observation, value
        if ignored:
            self.log.warning("Ignored %d earlier XCom value(s) that are not credit reports", ignored)
        return latest, latest_value
