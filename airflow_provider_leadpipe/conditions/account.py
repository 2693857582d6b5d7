"""When is a Leadpipe account ready? The one place that decides, for the sensor, the trigger and
the account status operator alike.

:class:`AccountCondition` is plain data (bools, numbers, strings), so the trigger can serialize it
and the sensor can evaluate the very same object: the two can never disagree on whether an
account is ready, on why it is not, or on what waiting cannot fix. The operator applies the same
checks, under the same argument names (:data:`CHECKS`), once instead of waiting for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeAccountError, LeadpipeConfigError
from airflow_provider_leadpipe.models import AccountStatus
from airflow_provider_leadpipe.utils import validation
from airflow_provider_leadpipe.utils.text import number_text as _fmt

__all__ = [
    "CHECKS",
    "DEFAULT_FAIL_ON_STATUSES",
    "PARSERS",
    "AccountCondition",
    "LeadpipeAccountError",
    "unavailable",
]

#: Organization statuses that waiting cannot fix. Leadpipe publishes no full list of statuses;
#: ``expired`` is the one seen in live responses. Add your own with ``fail_on_statuses``.
DEFAULT_FAIL_ON_STATUSES: tuple[str, ...] = ("expired",)


def unavailable(message: str) -> str:
    """The reason to keep waiting when the API stayed unreachable through the hook's retries.

    Transient failures (``TRANSIENT_ERRORS``: network errors, 429, 5xx) count as "not yet" in
    poke, reschedule and deferrable mode alike: the sensor waits until its timeout.
    """
    return f"Leadpipe API unavailable, will retry: {message}"


#: The checks' argument names, the same on the sensor, the operator and the trigger's condition.
CHECKS: tuple[str, ...] = (
    "require_healthy",
    "min_credits",
    "max_percent_used",
    "min_audience_slots",
    "fail_on_statuses",
)


#: Each check's parser: what the condition, and a task at DAG parse time, accepts for it.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "require_healthy": lambda value: validation.boolean(value, "require_healthy"),
    "min_credits": lambda value: validation.number(value, "min_credits"),
    "max_percent_used": lambda value: validation.number(value, "max_percent_used", maximum=100),
    "min_audience_slots": lambda value: validation.number(value, "min_audience_slots", whole=True),
    "fail_on_statuses": lambda value: validation.string_list(value, "fail_on_statuses", lower=True),
}


@dataclass(frozen=True)
class AccountCondition:
    """What "ready" means; evaluate it with :meth:`evaluate`. Every check is off with ``None``
    (``require_healthy``: ``False``); the defaults are the sensor's: a usable account.

    :param require_healthy: the account must report ``healthy: true``.
    :param min_credits: ``credits.remaining`` must be at least this; a null ``remaining``
        (no credit cap) satisfies any value.
    :param max_percent_used: ``credits.percentUsed`` must be at most this (0-100); a null
        ``percentUsed`` satisfies it.
    :param min_audience_slots: ``intent.audienceSlotsAvailable`` must be at least this. An
        account without the intent product (null ``intent``) fails fast.
    :param fail_on_statuses: organization statuses that fail at once instead of waiting
        (compared case-insensitively); a list, a list literal or a comma-separated string.
    """

    require_healthy: bool = True
    min_credits: int | float | None = 1
    max_percent_used: int | float | None = None
    min_audience_slots: int | None = None
    fail_on_statuses: tuple[str, ...] | None = DEFAULT_FAIL_ON_STATUSES

    def __post_init__(self) -> None:
        # Validates every construction path (keyword arguments, from_dict, templated strings).
        for name in CHECKS:
            object.__setattr__(self, name, PARSERS[name](getattr(self, name)))

    # -- serialization (trigger kwargs hold only primitives) -------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable primitives; :meth:`from_dict` rebuilds an equal condition."""
        data = asdict(self)
        if self.fail_on_statuses is not None:
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
        if self.fail_on_statuses and org.status.strip().lower() in self.fail_on_statuses:
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
        if (
            self.min_credits is not None
            and credits.remaining is not None
            and credits.remaining < self.min_credits
        ):
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
