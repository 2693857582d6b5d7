"""LeadpipeRetryPolicy: the provider's typed errors decide how Airflow retries a task (Airflow 3.3+).

Airflow 3.3 evaluates a task's ``retry_policy=`` with the exception that failed the try (in the
worker). This policy decides by the provider's error classes
(:mod:`airflow_provider_leadpipe.exceptions`):

* :class:`LeadpipeRateLimitError`: retry after the server's ``Retry-After``, capped at
  ``max_retry_after`` seconds (without one, the task's own backoff);
* :class:`LeadpipeServerError`, :class:`LeadpipeConnectionError`: retry with the task's own backoff
  (``retry_delay``, ``retry_exponential_backoff``);
* :class:`LeadpipeConfigError`, :class:`LeadpipeAuthError`, :class:`LeadpipeSlotsFullError`,
  :class:`LeadpipeAccountError`: fail at once (retrying cannot fix them);
* anything else: Airflow's default.

A retry is still bounded by the task's ``retries``. Importing this module on Airflow before 3.3
raises an ``ImportError`` naming the version.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAccountError,
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeConnectionError,
    LeadpipeRateLimitError,
    LeadpipeServerError,
    LeadpipeSlotsFullError,
)

try:
    from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy
except ImportError as exc:  # Airflow < 3.3: no retry_policy= on tasks
    from airflow import __version__ as _airflow_version

    raise ImportError(
        f"LeadpipeRetryPolicy needs Airflow 3.3 or later (tasks take retry_policy= from 3.3); "
        f"this is Airflow {_airflow_version}. Use the task's retries and retry_delay instead."
    ) from exc

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

__all__ = ["DEFAULT_MAX_RETRY_AFTER", "FAIL_AT_ONCE", "LeadpipeRetryPolicy"]

#: The longest ``Retry-After`` a task waits by default before its next try (seconds).
DEFAULT_MAX_RETRY_AFTER = 900.0

#: Errors that retrying cannot fix: the policy fails the task at once.
FAIL_AT_ONCE: tuple[type[Exception], ...] = (
    LeadpipeConfigError,
    LeadpipeAuthError,
    LeadpipeSlotsFullError,
    LeadpipeAccountError,
)


class LeadpipeRetryPolicy(RetryPolicy):
    """Retry Leadpipe tasks by the provider's typed errors (see the module docstring).

    :param max_retry_after: the longest wait, in seconds, a rate limit's ``Retry-After`` may
        set before the next try (above 0). Default :data:`DEFAULT_MAX_RETRY_AFTER`.
    :raises LeadpipeConfigError: a bad ``max_retry_after``.
    """

    def __init__(self, *, max_retry_after: float = DEFAULT_MAX_RETRY_AFTER) -> None:
        if (
            isinstance(max_retry_after, bool)
            or not isinstance(max_retry_after, (int, float))
            or not math.isfinite(max_retry_after)
            or max_retry_after <= 0
        ):
            raise LeadpipeConfigError(
                f"max_retry_after must be a number of seconds above 0, got {max_retry_after!r}"
            )
        self.max_retry_after = float(max_retry_after)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_retry_after={self.max_retry_after:g})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.max_retry_after == self.max_retry_after  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.max_retry_after))

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        """The decision for ``exception``; reasons name the error class only (never its text)."""
        kind = type(exception).__name__
        if isinstance(exception, LeadpipeRateLimitError):
            retry_after = exception.retry_after
            if retry_after is None or not math.isfinite(retry_after):
                return RetryDecision.retry(reason=f"{kind} without Retry-After: the task's backoff")
            delay = min(max(float(retry_after), 0.0), self.max_retry_after)
            return RetryDecision.retry(
                timedelta(seconds=delay),
                reason=f"{kind}: retrying after the server's Retry-After ({delay:g} s)",
            )
        if isinstance(exception, (LeadpipeServerError, LeadpipeConnectionError)):
            return RetryDecision.retry(reason=f"{kind}: transient, the task's backoff")
        if isinstance(exception, FAIL_AT_ONCE):
            return RetryDecision.fail(reason=f"{kind}: retrying cannot fix it")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        """JSON primitives; :meth:`deserialize` rebuilds an equal policy."""
        return {
            "__type": f"{type(self).__module__}.{type(self).__qualname__}",
            "max_retry_after": self.max_retry_after,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> LeadpipeRetryPolicy:
        """Rebuild a policy from :meth:`serialize` output."""
        if not isinstance(data, dict) or "max_retry_after" not in data:
            raise LeadpipeConfigError("a LeadpipeRetryPolicy is serialized as a dict with 'max_retry_after'")
        return cls(max_retry_after=data["max_retry_after"])
