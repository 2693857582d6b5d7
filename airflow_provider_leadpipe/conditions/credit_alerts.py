"""When does a credit report raise an alert? Thresholds crossed, each alert once per crossing per
billing cycle, decided without I/O (the operator sends; this module only decides).

The thresholds keep the account checks' names where they mean the same thing
(:data:`airflow_provider_leadpipe.conditions.account.CHECKS`): an account "should have" at least
``min_credits`` and at most ``max_percent_used``; an alert says it no longer does. Every
threshold is off with ``None``.

Once per crossing per billing cycle: :func:`decide_alerts` takes the threshold states the previous
report recorded (:attr:`AlertDecision.notified`: threshold -> the cycle it was sent in, named by
its ``resetsAt``) and fires a crossed threshold only when it was not already sent in this cycle. A
threshold no longer crossed is dropped from the state (re-armed: credits back, then falling again,
fire again); a new ``resetsAt`` is a new cycle (re-armed even when still crossed). A threshold that
cannot be judged this run (e.g. no burn rate on a first report) keeps its previous state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from airflow_provider_leadpipe.conditions.account import PARSERS as _ACCOUNT_PARSERS
from airflow_provider_leadpipe.models.account import Credits
from airflow_provider_leadpipe.models.credit_report import CreditReport
from airflow_provider_leadpipe.utils import validation
from airflow_provider_leadpipe.utils.text import iso as _iso
from airflow_provider_leadpipe.utils.text import number_text as _fmt

__all__ = ["PARSERS", "THRESHOLDS", "AlertDecision", "CreditThresholds", "alert_payload", "decide_alerts"]

#: The thresholds' argument names, in the order alerts are sent.
THRESHOLDS: tuple[str, ...] = ("min_credits", "max_percent_used", "exhaustion_margin_hours")

#: Each threshold's parser (the account checks' own for the names they share).
PARSERS: dict[str, Callable[[Any], Any]] = {
    "min_credits": _ACCOUNT_PARSERS["min_credits"],
    "max_percent_used": _ACCOUNT_PARSERS["max_percent_used"],
    "exhaustion_margin_hours": lambda value: validation.number(value, "exhaustion_margin_hours"),
}

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class CreditThresholds:
    """When a credit report calls for an alert. Each is off with ``None`` (the default).

    :param min_credits: alert when ``credits.remaining`` is below this (a null ``remaining``, no
        credit cap, never is).
    :param max_percent_used: alert when ``credits.percentUsed`` is above this (0-100); "percent
        left below P" is ``max_percent_used=100 - P``.
    :param exhaustion_margin_hours: alert when credits are projected to run out before the next
        reset, or less than this many hours after it (``0``: strictly before it). Without a
        ``resetsAt`` any projected exhaustion counts. Unknown until a second report.
    """

    min_credits: int | float | None = None
    max_percent_used: int | float | None = None
    exhaustion_margin_hours: int | float | None = None

    def __post_init__(self) -> None:
        for name in THRESHOLDS:
            object.__setattr__(self, name, PARSERS[name](getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """The thresholds that are on, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def crossed(self, report: CreditReport) -> dict[str, bool | None]:
        """Each threshold that is on: crossed (True), not (False), or cannot tell yet (None)."""
        result: dict[str, bool | None] = {**self.balance_crossed(report.current.status.credits)}
        if self.exhaustion_margin_hours is not None:
            result["exhaustion_margin_hours"] = self._runs_out(report)
        return result

    def balance_crossed(self, credits: Credits) -> dict[str, bool]:
        """``min_credits`` and ``max_percent_used`` (those that are on), judged on one balance alone:
        crossed (True) or not (False)."""
        result: dict[str, bool] = {}
        if self.min_credits is not None:
            result["min_credits"] = credits.remaining is not None and credits.remaining < self.min_credits
        if self.max_percent_used is not None:
            percent = credits.percent_used
            result["max_percent_used"] = percent is not None and percent > self.max_percent_used
        return result

    def _runs_out(self, report: CreditReport) -> bool | None:
        exhaustion = report.projected_exhaustion_at
        if exhaustion is None:
            # Unknown (first report, no elapsed time) stays unknown; never / beyond the horizon is False.
            return None if report.runs_out_before_reset is None else False
        resets_at = report.current.status.credits.resets_at
        if resets_at is None:
            return True
        margin = float(self.exhaustion_margin_hours or 0) * _SECONDS_PER_HOUR
        return (exhaustion - resets_at).total_seconds() < margin

    def reason(self, name: str, report: CreditReport) -> str:
        """Why threshold ``name`` is crossed, in one line."""
        credits = report.current.status.credits
        if name != "exhaustion_margin_hours":
            return self.balance_reason(name, credits)
        when = _iso(report.projected_exhaustion_at, seconds=True)
        if credits.resets_at is None:
            return f"credits run out {when} and there is no reset date"
        margin = f" + {_fmt(self.exhaustion_margin_hours)} h" if self.exhaustion_margin_hours else ""
        return f"credits run out {when}, before the next reset{margin}"

    def balance_reason(self, name: str, credits: Credits) -> str:
        """Why ``min_credits`` or ``max_percent_used`` is crossed by ``credits``, in one line."""
        if name == "min_credits":
            return f"{_fmt(credits.remaining)} credits left, below min_credits={_fmt(self.min_credits)}"
        if name == "max_percent_used":
            return (
                f"{_fmt(credits.percent_used)}% of credits used, above "
                f"max_percent_used={_fmt(self.max_percent_used)}"
            )
        raise ValueError(f"unknown threshold {name!r}")


@dataclass(frozen=True)
class AlertDecision:
    """What one report's thresholds call for.

    :ivar crossed: thresholds crossed now (in :data:`THRESHOLDS` order).
    :ivar due: those to send this run (crossed, not yet sent in this billing cycle).
    :ivar cycle: this billing cycle, named by ``resetsAt`` (ISO 8601), or None without one.
    :ivar notified: the state to record: threshold -> cycle it was sent in, for those still crossed
        (or not judged this run) whose alert need not be sent again; add the ones sent this run
        with :meth:`state`.
    """

    crossed: tuple[str, ...]
    due: tuple[str, ...]
    cycle: str | None
    notified: Mapping[str, str | None]

    def state(self, sent: tuple[str, ...] | list[str]) -> dict[str, str | None]:
        """The state the next report reads back: :attr:`notified` plus the thresholds ``sent`` now."""
        return {**self.notified, **{name: self.cycle for name in sent}}


def previous_state(value: Any) -> dict[str, str | None]:
    """The ``notified`` state from an earlier report's ``alerts`` (see :meth:`AlertDecision.state`);
    anything else (an older report without alerts, a damaged value) reads as no state."""
    notified = value.get("notified") if isinstance(value, Mapping) else None
    if not isinstance(notified, Mapping):
        return {}
    return {
        name: cycle
        for name, cycle in notified.items()
        if name in THRESHOLDS and (cycle is None or isinstance(cycle, str))
    }


def decide_alerts(
    thresholds: CreditThresholds, report: CreditReport, previous: Mapping[str, str | None] | None = None
) -> AlertDecision:
    """Which thresholds ``report`` crosses and which of them to send, given the ``previous`` state.

    ``previous`` must come from a report of the same organisation: pass None when the report
    compared with none (:attr:`CreditReport.previous` is None), so a new account starts unarmed.
    """
    previous = previous or {}
    cycle = _iso(report.current.status.credits.resets_at)
    judged = thresholds.crossed(report)
    crossed = tuple(name for name, value in judged.items() if value)
    notified: dict[str, str | None] = {}
    for name, value in judged.items():
        already = name in previous and previous[name] == cycle
        if already and value is not False:  # still crossed, or cannot tell: keep the state
            notified[name] = cycle
    due = tuple(name for name in crossed if name not in notified)
    return AlertDecision(crossed=crossed, due=due, cycle=cycle, notified=notified)


def alert_payload(
    name: str, thresholds: CreditThresholds, report: CreditReport, *, leadpipe_conn_id: str
) -> dict[str, Any]:
    """The alert handed to notifiers (``leadpipe_alert`` in their context): plain figures and a
    ``message`` (organization, connection, credits left of limit, burn per day, when credits run
    out, when they reset). It holds nothing from the connection but its id: never the key."""
    status = report.current.status
    credits = status.credits
    rate = report.daily_burn_rate
    burn = "unknown" if rate is None else f"{_fmt(round(rate, 2))}/day"
    if credits.unlimited:
        balance = f"{_fmt(credits.used)} used, no credit cap"
    else:
        balance = f"{_fmt(credits.remaining)} of {_fmt(credits.limit)} left"
    if report.projected_exhaustion_at is not None:
        runs_out = _iso(report.projected_exhaustion_at, seconds=True)
    elif report.runs_out_before_reset is None:
        runs_out = "unknown until a second report"
    else:
        runs_out = "not at the current burn rate"
    resets = _iso(credits.resets_at, seconds=True) or "no reset date"
    reason = thresholds.reason(name, report)
    message = (
        f"Leadpipe credits alert ({name}): {reason}.\n"
        f"Organization: {status.organization.name} (connection {leadpipe_conn_id})\n"
        f"Credits: {balance}; burn {burn}; runs out {runs_out}; resets {resets}"
    )
    return {
        "threshold": name,
        "threshold_value": getattr(thresholds, name),
        "reason": reason,
        "message": message,
        "organization": status.organization.name,
        "leadpipe_conn_id": leadpipe_conn_id,
        "remaining": credits.remaining,
        "limit": credits.limit,
        "percent_used": credits.percent_used,
        "daily_burn_rate": None if rate is None else round(rate, 3),
        "projected_exhaustion_at": _iso(report.projected_exhaustion_at),
        "resets_at": _iso(credits.resets_at),
        "observed_at": _iso(report.observed_at),
    }
