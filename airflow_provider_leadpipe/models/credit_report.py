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
* **Another organisation** (the connection's key changed): the previous report is not compared,
  and ``previous_ignored`` says why. Organisations are told apart by name (and ``id`` when the API
  sends one).
* **Far future**: a projection more than :data:`PROJECTION_YEARS` years ahead (a huge balance at a
  tiny burn rate) is reported as "not within N years", not as a date; figures too large for a
  float (JSON numbers can be) never end in an ``OverflowError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pendulum

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.models.account import AccountStatus
from airflow_provider_leadpipe.utils.text import iso as _iso
from airflow_provider_leadpipe.utils.text import number_text as _fmt
from airflow_provider_leadpipe.utils.text import parse_datetime

SECONDS_PER_DAY = 86_400.0
#: Projections further ahead than this are "not within N years" (and no date).
PROJECTION_YEARS = 100
_HORIZON_DAYS = PROJECTION_YEARS * 365.25
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
        try:
            observed_at = parse_datetime(value["observed_at"])
        except ValueError:
            raise ValueError("credit report 'observed_at' is not an ISO 8601 date-time") from None
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
    #: :data:`PROJECTION_YEARS` when credits last longer than that at the current rate, else None.
    exhaustion_not_within_years: int | None = None
    #: Why an earlier report was not compared (another organisation), else None.
    previous_ignored: str | None = None
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
            "exhaustion_not_within_years": self.exhaustion_not_within_years,
            "previous_ignored": self.previous_ignored,
            "notes": list(self.notes),
        }

    def render(self) -> str:
        """A short human-readable block for the task log."""
        lines = [
            f"Leadpipe credit report, observed {_iso(self.observed_at, seconds=True)}",
            f"  Account:     {self.current.status.summary()}",
        ]
        if self.previous_ignored is not None:
            lines.append(f"  Since last:  not compared: {self.previous_ignored}")
        elif self.previous is None:
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
        if self.exhaustion_not_within_years is not None:
            return f"not within {self.exhaustion_not_within_years} years at the current burn rate"
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
    ignored = None
    if previous is not None and not _same_organisation(previous.status, status):
        ignored = (
            f"the previous report is for another organisation ({previous.status.organization.name!r}, "
            f"now {status.organization.name!r}): usage and burn rate start again from this report"
        )
        previous = None

    if previous is None:
        notes.append(ignored or "first report: usage and burn rate need a previous report")
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
            used = _difference(credits.used, before.used)
        window = (observed_at - window_start).total_seconds()
        if window <= 0:
            notes.append("no time elapsed since the previous report (or the reset): burn rate unknown")
        else:
            rate = _quotient(used, window / SECONDS_PER_DAY)
            if not math.isfinite(rate):
                rate = None
                notes.append("the burn rate is too large to express: unknown")

    exhaustion, runs_out, beyond = _project(status, observed_at, rate)
    return CreditReport(
        current=current,
        previous=previous,
        elapsed_seconds=elapsed,
        credits_used=used,
        reset_detected=reset,
        daily_burn_rate=rate,
        projected_exhaustion_at=exhaustion,
        runs_out_before_reset=runs_out,
        exhaustion_not_within_years=PROJECTION_YEARS if beyond else None,
        previous_ignored=ignored,
        notes=tuple(notes),
    )


def _project(
    status: AccountStatus, observed_at: pendulum.DateTime, rate: float | None
) -> tuple[pendulum.DateTime | None, bool | None, bool]:
    """(projected exhaustion time, runs out before the next reset?, beyond the horizon?)."""
    credits = status.credits
    remaining = credits.remaining
    if remaining is None or credits.limit is None:  # no credit cap
        return None, False, False
    if remaining <= 0:
        return observed_at, True, False
    if rate is None:
        return None, None, False
    if rate <= 0:
        return None, False, False
    days = _quotient(remaining, rate)
    if days > _HORIZON_DAYS:
        return None, False, True
    try:
        # Whole seconds: a projection has no sub-second meaning.
        exhaustion = observed_at.add(seconds=round(days * SECONDS_PER_DAY))
    except (OverflowError, ValueError):  # past year 9999, the calendar's end
        return None, False, True
    # No reset date (e.g. a trial without a billing cycle): nothing will top the credits up.
    runs_out = credits.resets_at is None or exhaustion < credits.resets_at
    return exhaustion, runs_out, False


def _quotient(dividend: float, divisor: float) -> float:
    """``dividend / divisor``, signed infinity where the result (or an int operand) exceeds a float."""
    try:
        return dividend / divisor
    except OverflowError:  # an int too large for a float (JSON numbers have no size limit)
        return math.inf if (dividend > 0) == (divisor > 0) else -math.inf


def _difference(minuend: float, subtrahend: float) -> float:
    """``minuend - subtrahend``, exact in whole numbers where an int operand exceeds a float."""
    try:
        return minuend - subtrahend
    except OverflowError:  # the int dwarfs the float: dropping the float's fraction changes nothing
        return int(minuend) - int(subtrahend)


def _same_organisation(a: AccountStatus, b: AccountStatus) -> bool:
    """Same name, and the same ``id`` when both carry one (the API may add it)."""
    first, second = a.organization, b.organization
    ids = ((first.model_extra or {}).get("id"), (second.model_extra or {}).get("id"))
    return first.name == second.name and (None in ids or ids[0] == ids[1])


def _unlimited(status: AccountStatus) -> bool:
    return status.credits.limit is None or status.credits.remaining is None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _hours(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 3600:.1f} h"
