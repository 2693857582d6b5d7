"""Typed errors raised by the Leadpipe provider.

Every error is an :class:`~airflow.exceptions.AirflowException`, so Airflow treats it as a task
failure, and every message names what was wrong without ever containing the API key.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class LeadpipeError(AirflowException):
    """Base class of every error the provider raises.

    :param http_status: HTTP status of the response that caused the error, if any. (Not
        ``status_code``: Airflow's own ``AirflowException.status_code`` means something else.)
    :param api_code: the ``error.code`` of Leadpipe's error body, if any.
    """

    def __init__(self, message: str, *, http_status: int | None = None, api_code: str | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.api_code = api_code


class LeadpipeConfigError(LeadpipeError, ValueError):
    """A connection, parameter or argument is unusable (missing key, bad base URL, bad value)."""


class LeadpipeInvalidConfigError(LeadpipeConfigError, AirflowFailException):
    """Orbit reported a config invalid; ``problems`` lists each bad key or value as it reported it.
    Retrying cannot fix the config: the task fails at once."""

    def __init__(self, message: str, *, problems: list[str] | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.problems = list(problems or [])


class LeadpipeAuthError(LeadpipeError, AirflowFailException):
    """HTTP 401/403: the key is invalid or revoked, or the organization is not active.

    Subclasses :class:`AirflowFailException`, so the task fails at once: retrying cannot help.
    """


class LeadpipeRateLimitError(LeadpipeError):
    """HTTP 429 after every retry. ``retry_after`` is the server's advice in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class LeadpipeServerError(LeadpipeError):
    """HTTP 5xx after every retry."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class LeadpipeConnectionError(LeadpipeError):
    """The API could not be reached (refused, DNS, timeout, reset) after every retry.

    ``request_sent`` is False when the failure happened before the request left (connect phase),
    so even a non-idempotent request may be retried safely.
    """

    def __init__(self, message: str, *, request_sent: bool = True, **kwargs):
        super().__init__(message, **kwargs)
        self.request_sent = request_sent


class LeadpipeRequestError(LeadpipeError):
    """Any other HTTP 4xx: the request itself was rejected (bad query or body)."""


class LeadpipeNotFoundError(LeadpipeRequestError):
    """HTTP 404: the addressed object (e.g. a pixel id) does not exist."""


class LeadpipeConflictError(LeadpipeRequestError):
    """HTTP 409: the object already exists (e.g. a pixel for that domain)."""


class LeadpipeSlotsFullError(LeadpipeRequestError, AirflowFailException):
    """HTTP 403 ``SLOTS_FULL``: activating an Orbit audience needs a free audience slot.

    Subclasses :class:`AirflowFailException`: retrying cannot free a slot; pausing another
    audience (or buying more slots) can.
    """


class LeadpipeResponseError(LeadpipeError):
    """The API answered, but not with the documented shape; the message names the field."""


class LeadpipeIncompleteError(LeadpipeResponseError):
    """A pull returned fewer records than the API announced (``on_incomplete="fail"``).

    Not an :class:`AirflowFailException`: a retry may well get every record.
    ``expected`` is the announced count, ``received`` what the pull returned.
    """

    def __init__(self, message: str, *, expected: int, received: int, **kwargs):
        super().__init__(message, **kwargs)
        self.expected = expected
        self.received = received


#: Errors worth retrying (transient); everything else fails at once.
TRANSIENT_ERRORS: tuple[type[LeadpipeError], ...] = (
    LeadpipeRateLimitError,
    LeadpipeServerError,
    LeadpipeConnectionError,
)


class LeadpipeAccountError(LeadpipeError, AirflowFailException):
    """The account cannot serve the task, and waiting or retrying cannot change that.

    Raised by the sensor/trigger for states waiting cannot fix (e.g. an expired organization) and
    by :class:`LeadpipeAccountStatusOperator` when its checks fail. Subclasses
    :class:`AirflowFailException`: the task fails at once, without retries, and a sensor with
    ``soft_fail=True`` is skipped instead.
    """


class LeadpipeAudienceRunError(LeadpipeError, AirflowFailException):
    """An Orbit audience run failed or was cancelled (or its results answered HTTP 409).

    Subclasses :class:`AirflowFailException`: waiting cannot fix a finished run. ``status`` is the
    run's state (``failed``/``cancelled``; None when the API did not say), ``error_code`` and
    ``error_message`` the API's ``errorCode`` / ``errorMessage``.
    """

    def __init__(
        self,
        message: str,
        *,
        audience_id: str | None = None,
        run_id: str | None = None,
        status: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        **kwargs,
    ):
        super().__init__(message, **kwargs)
        self.audience_id = audience_id
        self.run_id = run_id
        self.status = status
        self.error_code = error_code
        self.error_message = error_message


class LeadpipeAudienceSizeError(LeadpipeError, AirflowFailException):
    """An audience's preview counts fewer people than ``min_audience_size`` or more than
    ``max_audience_size``: it was not made (or left) active. ``total_count`` is the preview's."""

    def __init__(self, message: str, *, total_count: int, minimum: int | None, maximum: int | None, **kwargs):
        super().__init__(message, **kwargs)
        self.total_count = total_count
        self.minimum = minimum
        self.maximum = maximum


class LeadpipeAudienceRunTimeoutError(LeadpipeError, AirflowFailException):
    """An Orbit audience run was still unfinished when the task's ``timeout`` ran out."""


class LeadpipeExportTruncatedError(LeadpipeError, AirflowFailException):
    """An audience run holds more people than ``export.csv`` serves (its row cap), and the task
    was told to fail then (``on_truncated="fail"``). Retrying cannot change the cap."""


class LeadpipeStateError(LeadpipeError, AirflowFailException):
    """An ``only_new`` state object is corrupt, foreign or of another version (named in the message).

    Not retried: a retry would read the same object. Nothing is overwritten; move the object away
    (the next pull then lands every record again) or restore it.
    """
