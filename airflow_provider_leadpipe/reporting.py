"""Credit report maths: pure functions over two account observations, no Airflow, no I/O.

:func:`build_credit_report` compares the account status seen now with the one seen by the
previous report and works out credits used in between, the daily burn rate, when credits run out
at that rate, and whether that happens before the next reset (``credits.resetsAt``).

Rules, in the order they apply:

* **First run** (no previous observation): nothing to compare, so usage, burn rate and projection
  are ``None`` (unknown), except that an unlimited or an exhausted account is known either way.
* **Reset between runs**: ``credits.used`` went down, or the previous ``resetsAt`` fell between the
  two observations. Usage is then ``credits.used`` (spent since the reset), and the burn rate is
  measured from the reset time when it is known, else from the previous observation (a lower bound).
* **Unlimited plan** (null ``limit`` or ``remaining``): usage and burn rate are still reported;
  credits never run out.
* **No time elapsed** (same instant, or a previous observation from the future): usage is reported
  but the burn rate is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pendulum

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.models.account import AccountStatus, _fmt

SECONDS_PER_DAY = 86_400.0
#: Bumped when the XCom layout of :meth:`CreditReport.to_dict` changes incompatibly.
REPORT_VERSION = 1


@dataclass(frozen=True)
class Observation:
    """An account status and the moment it was seen."""

    status: AccountStatus
    observed_at: pendulum.DateTime

    @classmethod
    def from_report(cls, value: Any) -> Observation:
        """The observation stored in an earlier report's XCom (see :meth:`CreditReport.to_dict`).

        :raises ValueError: naming what is missing or unusable (the value is not echoed back).
        """
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a credit report dict, got {type(value).__name__}")
        for key in ("observed_at", "account"):
            if key not in value:
                raise ValueError(f"credit report has no {key!r}")
        observed_at = _parse_datetime(value["observed_at"], "observed_at")
        try:
            status = AccountStatus.from_data(value["account"])
        except LeadpipeResponseError as exc:
            raise ValueError(f"credit report 'account' is not an account status: {exc}") from None
        return cls(status=status, observed_at=observed_at)


@dataclass(frozen=True)
class CreditReport:
    """What changed between two observations, and where the current burn rate leads."""

    current: Observation
    previous: Observation | None = None
    #: Seconds between the two observations (None on a first run).
    elapsed_seconds: float | None = None
    #: Credits used since the previous observation; after a reset, since the reset.
    credits_used: float | None = None
    reset_detected: bool = False
    #: Credits per day over the measured window (None when unknown).
    daily_burn_rate: float | None = None
    #: When credits run out at the current burn rate (None: never, or unknown).
    projected_exhaustion_at: pendulum.DateTime | None = None
    #: True/False, or None when unknown (first run, no elapsed time).
    runs_out_before_reset: bool | None = None
    notes: tuple[str, ...] = ()

    @property
    def observed_at(self) -> pendulum.DateTime:
        return self.current.observed_at

    @property
    def unlimited(self) -> bool:
        return _unlimited(self.current.status)

    @property
    def days_until_exhaustion(self) -> float | None:
        if self.projected_exhaustion_at is None:
            return None
        return (self.projected_exhaustion_at - self.observed_at).total_seconds() / SECONDS_PER_DAY

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable XCom value; ``observed_at`` + ``account`` feed the next run."""
        credits = self.current.status.credits
        return {
            "report_version": REPORT_VERSION,
            "observed_at": _iso(self.observed_at),
            "account": self.current.status.to_dict(),
            "previous_observed_at": _iso(self.previous.observed_at) if self.previous else None,
            "elapsed_seconds": self.elapsed_seconds,
            "credits_used": self.credits_used,
            "reset_detected": self.reset_detected,
            "daily_burn_rate": _round(self.daily_burn_rate, 3),
            "unlimited": self.unlimited,
            "remaining": credits.remaining,
            "resets_at": _iso(credits.resets_at),
            "projected_exhaustion_at": _iso(self.projected_exhaustion_at),
            "days_until_exhaustion": _round(self.days_until_exhaustion, 2),
            "runs_out_before_reset": self.runs_out_before_reset,
            "notes": list(self.notes),
        }

    def render(self) -> str:
        """A short human-readable block for the task log."""
        lines = [
            f"Leadpipe credit report, observed {_iso(self.observed_at, seconds=True)}",
            f"  Account:     {self.current.status.summary()}",
        ]
        if self.previous is None:
            lines.append("  Since last:  first report, nothing to compare with")
        else:
            since = "since the reset" if self.reset_detected else "since the previous report"
            lines.append(
                f"  Since last:  {_fmt(self.credits_used)} used {since} "
                f"(previous report {_iso(self.previous.observed_at, seconds=True)}, "
                f"{_hours(self.elapsed_seconds)} ago)"
            )
        rate = "unknown" if self.daily_burn_rate is None else f"{_fmt(round(self.daily_burn_rate, 2))}/day"
        lines.append(f"  Burn rate:   {rate}")
        lines.append(f"  Exhaustion:  {self._outlook()}")
        if self.previous is not None:  # on a first run the "Since last" line says it all
            lines.extend(f"  Note:        {note}" for note in self.notes)
        return "\n".join(lines)

    def _outlook(self) -> str:
        if self.unlimited:
            return "never (no credit cap)"
        if self.projected_exhaustion_at is None:
            if self.runs_out_before_reset is False:
                return "not at the current burn rate"
            return "unknown until a second report"
        when = _iso(self.projected_exhaustion_at, seconds=True)
        days = self.days_until_exhaustion or 0.0
        eta = "now" if days <= 0 else f"{when} (in {days:.1f} days)"
        if self.runs_out_before_reset:
            return f"{eta}, BEFORE the next reset"
        return f"{eta}, after the next reset"


def build_credit_report(
    status: AccountStatus,
    *,
    observed_at: pendulum.DateTime,
    previous: Observation | None = None,
) -> CreditReport:
    """Compare ``status`` (seen at ``observed_at``) with the previous observation, if any."""
    current = Observation(status=status, observed_at=observed_at)
    credits = status.credits
    notes: list[str] = []
    elapsed = used = rate = None
    reset = False

    if previous is None:
        notes.append("first report: usage and burn rate need a previous report")
    else:
        before = previous.status.credits
        elapsed = (observed_at - previous.observed_at).total_seconds()
        window_start = previous.observed_at
        reset_at = before.resets_at
        reset_passed = reset_at is not None and previous.observed_at < reset_at <= observed_at
        reset = credits.used < before.used or reset_passed
        if reset:
            used = credits.used
            if reset_passed and reset_at is not None:
                window_start = reset_at
            else:
                notes.append("credits were reset at an unknown time: the burn rate is a lower bound")
        else:
            used = credits.used - before.used
        window = (observed_at - window_start).total_seconds()
        if window > 0:
            rate = used / (window / SECONDS_PER_DAY)
        else:
            notes.append("no time elapsed since the previous report (or the reset): burn rate unknown")

    exhaustion, runs_out = _project(status, observed_at, rate)
    return CreditReport(
        current=current,
        previous=previous,
        elapsed_seconds=elapsed,
        credits_used=used,
        reset_detected=reset,
        daily_burn_rate=rate,
        projected_exhaustion_at=exhaustion,
        runs_out_before_reset=runs_out,
        notes=tuple(notes),
    )


def _project(
    status: AccountStatus, observed_at: pendulum.DateTime, rate: float | None
) -> tuple[pendulum.DateTime | None, bool | None]:
    """(projected exhaustion time, runs out before the next reset?)."""
    credits = status.credits
    remaining = credits.remaining
    if remaining is None or credits.limit is None:  # no credit cap
        return None, False
    if remaining <= 0:
        return observed_at, True
    if rate is None:
        return None, None
    if rate <= 0:
        return None, False
    # Whole seconds: a projection has no sub-second meaning.
    exhaustion = observed_at.add(seconds=round(remaining / rate * SECONDS_PER_DAY))
    # No reset date (e.g. a trial without a billing cycle): nothing will top the credits up.
    runs_out = credits.resets_at is None or exhaustion < credits.resets_at
    return exhaustion, runs_out


def _unlimited(status: AccountStatus) -> bool:
    return status.credits.limit is None or status.credits.remaining is None


def _parse_datetime(value: Any, name: str) -> pendulum.DateTime:
    try:
        parsed = pendulum.parse(value) if isinstance(value, str) else None
    except (ValueError, TypeError):  # pendulum's ParserError is a ValueError
        parsed = None
    if not isinstance(parsed, pendulum.DateTime):
        raise ValueError(f"credit report {name!r} is not an ISO 8601 date-time")
    return parsed


def _iso(value: pendulum.DateTime | None, *, seconds: bool = False) -> str | None:
    """ISO 8601 in UTC; ``seconds=True`` drops the fraction (for the log)."""
    if value is None:
        return None
    value = value.in_timezone("UTC")
    return (value.replace(microsecond=0) if seconds else value).to_iso8601_string()


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _hours(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 3600:.1f} h"
