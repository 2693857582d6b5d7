"""The retry policy (tenacity): what is retried, how long to wait (``Retry-After`` honoured), and
the log line of each retry."""

from __future__ import annotations

import email.utils
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
import tenacity
from tenacity.wait import wait_base

from airflow_provider_leadpipe.exceptions import (
    TRANSIENT_ERRORS,
    LeadpipeConnectionError,
    LeadpipeRateLimitError,
)
from airflow_provider_leadpipe.hooks.settings import MAX_BACKOFF

if TYPE_CHECKING:
    from airflow_provider_leadpipe.hooks.settings import ApiSettings

#: The longest ``Retry-After`` honoured; a longer one is shortened to this.
MAX_RETRY_AFTER = 60.0

log = logging.getLogger("airflow.providers.leadpipe")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone also accepts "²" (latin-1 0xB2)
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
#: The request header that makes a POST safe to repeat where the API honours it (Orbit's
#: ``POST .../runs``: "reusing the same key returns the same run").
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"


def replay_safe(request: httpx.Request) -> bool:
    """True when sending ``request`` twice has the effect of sending it once: an idempotent method,
    or a request carrying an ``Idempotency-Key``."""
    return request.method in _IDEMPOTENT or IDEMPOTENCY_KEY_HEADER in request.headers


def _is_retryable(exc: BaseException | None, method: str, replay_safe: bool = False) -> bool:
    if not isinstance(exc, TRANSIENT_ERRORS):
        return False
    if replay_safe or method in _IDEMPOTENT:
        return True
    # Non-idempotent (POST): retry only what certainly was not processed.
    if isinstance(exc, LeadpipeConnectionError):
        return not exc.request_sent
    return isinstance(exc, LeadpipeRateLimitError) or exc.http_status == 503


class wait_retry_after(wait_base):
    """Wait what the server's ``Retry-After`` says (capped); otherwise the fallback backoff.

    tenacity has no built-in notion of a server-advised delay, hence this small strategy.
    """

    def __init__(self, fallback: wait_base, cap: float = MAX_RETRY_AFTER):
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.cap)
        return self.fallback(retry_state)


def retry_kwargs(settings: ApiSettings, method: str, *, replay_safe: bool = False) -> dict[str, Any]:
    """Arguments for ``tenacity.Retrying`` / ``AsyncRetrying``: the one retry policy.

    :param replay_safe: the request may be repeated whatever happened to it (see :func:`replay_safe`);
        otherwise a POST is retried only when it certainly was not processed.
    """
    method = method.upper()

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retry %d of %d in %.1f s", exc, state.attempt_number, settings.max_retries, wait)

    return {
        "stop": tenacity.stop_after_attempt(settings.max_retries + 1),
        # Exponential backoff plus jitter; spelled as a sum because tenacity 9.2 renamed
        # wait_exponential_jitter's arguments and we support tenacity >= 8.3.
        "wait": wait_retry_after(
            tenacity.wait_exponential(multiplier=settings.retry_backoff, max=MAX_BACKOFF)
            + tenacity.wait_random(0, settings.retry_backoff)
        ),
        "retry": tenacity.retry_if_exception(lambda exc: _is_retryable(exc, method, replay_safe)),
        "before_sleep": log_retry,
        "reraise": True,
    }


def policy(settings: ApiSettings, request: httpx.Request) -> dict[str, Any]:
    """:func:`retry_kwargs` for sending ``request``."""
    return retry_kwargs(settings, request.method, replay_safe=replay_safe(request))


def replay_first_failure(attempt: tenacity.AttemptManager, failure: BaseException) -> None:
    """Make a failed first attempt, made before entering the retry loop, tenacity's attempt 1.

    Most requests succeed at once, and tenacity's retry state costs about as much CPU as the
    provider's other per-request work together and leaves objects in reference cycles for the
    garbage collector, whose passes grow with a triggerer's heap. So the hooks
    send the first attempt bare and enter ``tenacity.(Async)Retrying`` only after a transient
    failure, whose attempt 1 then re-raises that failure here instead of sending again: the same
    attempt count, waits, ``Retry-After``, retry log lines and final error as one retry loop.
    """
    if attempt.retry_state.attempt_number == 1:
        raise failure
