"""When is a Leadpipe account ready? The one place that decides, for the sensor and the trigger alike.

:class:`AccountCondition` is plain data (bools, numbers, strings), so the trigger can serialize it
and the sensor can evaluate the very same object: the two can never disagree on whether an
account is ready, on why it is not, or on what waiting cannot fix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeAccountError, LeadpipeConfigError

__all__ = ["DEFAULT_FAIL_ON_STATUSES", "AccountCondition", "LeadpipeAccountError"]
from airflow_provider_leadpipe.models import AccountStatus

#: Organization statuses that waiting cannot fix. Leadpipe publishes no full list of statuses;
#: ``expired`` is the one seen in live responses. Add your own with ``fail_on_statuses``.
DEFAULT_FAIL_ON_STATUSES: tuple[str, ...] = ("expired",)

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def unavailable(message: str) -> str:
    """The reason to keep waiting when the API stayed unreachable through the hook's retries.

    Transient failures (``TRANSIENT_ERRORS``: network errors, 429, 5xx) count as "not yet" in
    poke, reschedule and deferrable mode alike: the sensor waits until its timeout.
    """
    return f"Leadpipe API unavailable, will retry: {message}"


def parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise LeadpipeConfigError(f"{name} must be true or false, got {value!r}")


def _parse_number(
    name: str, value: Any, *, maximum: float | None = None, whole: bool = False
) -> int | float | None:
    """None, or a finite number >= 0 (and <= ``maximum``); numeric strings from templates are accepted."""
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "null"}):
        return None
    kind = "a whole number" if whole else "a number"
    limits = f" from 0 to {maximum:g}" if maximum is not None else " >= 0"
    problem = f"{name} must be {kind}{limits} (or None), got {value!r}"
    if isinstance(value, bool):
        raise LeadpipeConfigError(problem)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise LeadpipeConfigError(problem) from None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise LeadpipeConfigError(problem)
    if maximum is not None and value > maximum:
        raise LeadpipeConfigError(problem)
    if float(value).is_integer():
        return int(value)
    if whole:
        raise LeadpipeConfigError(problem)
    return float(value)


def _parse_statuses(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise LeadpipeConfigError(f"{name} must be a list of organization statuses, got {value!r}")
    statuses = []
    for item in items:
        if not isinstance(item, str):
            raise LeadpipeConfigError(f"{name} must hold strings, got {item!r}")
        if item.strip():
            statuses.append(item.strip().lower())
    return tuple(dict.fromkeys(statuses))


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class AccountCondition:
    """What "ready" means for one sensor; evaluate it with :meth:`evaluate`.

    :param require_healthy: the account must report ``healthy: true``.
    :param min_credits: ``credits.remaining`` must be at least this; a null ``remaining``
        (no credit cap) satisfies any value. None or 0 disables the check.
    :param max_percent_used: ``credits.percentUsed`` must be at most this (0-100); a null
        ``percentUsed`` satisfies it. None disables the check.
    :param min_audience_slots: ``intent.audienceSlotsAvailable`` must be at least this. An
        account without the intent product (null ``intent``) fails fast. None disables the check.
    :param fail_on_statuses: organization statuses that fail at once instead of waiting
        (compared case-insensitively).
    """

    require_healthy: bool = True
    min_credits: int | float | None = 1
    max_percent_used: int | float | None = None
    min_audience_slots: int | None = None
    fail_on_statuses: tuple[str, ...] = DEFAULT_FAIL_ON_STATUSES

    def __post_init__(self) -> None:
        # Validates every construction path (keyword arguments, from_dict, templated strings).
        parsed = {
            "require_healthy": parse_bool("require_healthy", self.require_healthy),
            "min_credits": _parse_number("min_credits", self.min_credits),
            "max_percent_used": _parse_number("max_percent_used", self.max_percent_used, maximum=100),
            "min_audience_slots": _parse_number("min_audience_slots", self.min_audience_slots, whole=True),
            "fail_on_statuses": _parse_statuses("fail_on_statuses", self.fail_on_statuses),
        }
        for name, value in parsed.items():
            object.__setattr__(self, name, value)

    # -- serialization (trigger kwargs hold only primitives) -------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable primitives; :meth:`from_dict` rebuilds an equal condition."""
        data = asdict(self)
        data["fail_on_statuses"] = list(self.fail_on_statuses)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountCondition:
        """Rebuild a condition from :meth:`to_dict` output; unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise LeadpipeConfigError(f"an account condition must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LeadpipeConfigError(
                f"unknown account condition key(s) {unknown}; expected some of {sorted(known)}"
            )
        return cls(**data)

    # -- evaluation ------------------------------------------------------------------------------

    def check_fixable(self, status: AccountStatus) -> None:
        """Raise :class:`LeadpipeAccountError` when waiting cannot make ``status`` satisfy this condition."""
        org = status.organization
        if org.status.strip().lower() in self.fail_on_statuses:
            raise LeadpipeAccountError(
                f"Leadpipe organization '{org.name}' is '{org.status}', which waiting cannot fix "
                f"(fail_on_statuses={list(self.fail_on_statuses)})"
            )
        if self.min_audience_slots is not None and status.intent is None:
            raise LeadpipeAccountError(
                f"min_audience_slots={self.min_audience_slots} was requested, but Leadpipe organization "
                f"'{org.name}' has no intent product (its account status has a null 'intent' block); "
                "waiting cannot fix this"
            )

    def evaluate(self, status: AccountStatus) -> tuple[bool, str]:
        """``(satisfied, reason)`` for one account status; the reason is one readable line.

        :raises LeadpipeAccountError: the account is in a state that waiting cannot fix.
        """
        self.check_fixable(status)
        credits = status.credits
        unmet: list[str] = []
        if self.require_healthy and not status.healthy:
            unmet.append(f"account not healthy (organization status '{status.organization.status}')")
        credits_short = False
        if self.min_credits and credits.remaining is not None and credits.remaining < self.min_credits:
            unmet.append(f"{_fmt(credits.remaining)} credits left, need {_fmt(self.min_credits)}")
            credits_short = True
        if (
            self.max_percent_used is not None
            and credits.percent_used is not None
            and credits.percent_used > self.max_percent_used
        ):
            unmet.append(f"{_fmt(credits.percent_used)}% of credits used, max {_fmt(self.max_percent_used)}%")
            credits_short = True
        if self.min_audience_slots is not None and status.intent is not None:
            available = status.intent.audience_slots_available
            if available < self.min_audience_slots:
                unmet.append(f"{_fmt(available)} audience slots available, need {self.min_audience_slots}")
        if unmet:
            if credits_short and credits.resets_at is not None:
                unmet.append(f"credits reset {credits.resets_at.to_iso8601_string()}")
            return False, "; ".join(unmet)
        return True, f"ready: {status.summary()}"
