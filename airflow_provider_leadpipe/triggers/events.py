"""The events LeadpipeAccountTrigger yields, and how the sensor turns one back into a result;
:func:`outcome`, the one-event ``run()`` of the account and the audience run triggers.

Every payload is a dict of JSON primitives with a ``status`` key:

========== ===================================================================================
status     payload and meaning
========== ===================================================================================
success    ``account``: the ``AccountStatus.to_dict()`` that satisfied the condition; ``message``
failure    waiting cannot help (HTTP 401/403, a ``fail_on_statuses`` status, no intent product):
           ``error`` (the exception class name), ``message``, ``http_status``
error      anything else that ended the wait (bad connection, malformed response, a bug):
           ``error``, ``message``, ``http_status``
timeout    the sensor's deadline passed before the condition held: ``message``
========== ===================================================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout

from airflow_provider_leadpipe import exceptions
from airflow_provider_leadpipe.exceptions import LeadpipeAccountError, LeadpipeAuthError, LeadpipeError
from airflow_provider_leadpipe.hooks.responses import forget_locals
from airflow_provider_leadpipe.models import AccountStatus

SUCCESS, FAILURE, ERROR, TIMEOUT = "success", "failure", "error", "timeout"

#: Errors an event may name, re-raised as the same type by :func:`result_of`.
_ERRORS: dict[str, type[LeadpipeError]] = {
    cls.__name__: cls
    for cls in vars(exceptions).values()
    if isinstance(cls, type) and issubclass(cls, LeadpipeError)
}


def success(account: dict[str, Any], message: str) -> dict[str, Any]:
    return {"status": SUCCESS, "account": account, "message": message}


def timeout(message: str) -> dict[str, Any]:
    return {"status": TIMEOUT, "message": message}


def from_exception(exc: BaseException, message: str | None = None) -> dict[str, Any]:
    """A ``failure`` event for errors waiting cannot fix, an ``error`` event for anything else."""
    return {
        "status": FAILURE if isinstance(exc, AirflowFailException) else ERROR,
        "error": type(exc).__name__,
        "message": message if message is not None else (str(exc) or type(exc).__name__),
        "http_status": getattr(exc, "http_status", None),
    }


async def outcome(trigger: Any, wait: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """The payload of a trigger's one event: what ``wait()`` returns, or the event of the exception
    it raises (an exception escaping ``run()`` would skip the task's ``execute_complete``).

    A ``LeadpipeError`` is the news itself; anything else is logged with its traceback, whose
    frames' local variables are cleared first (tracebacks that print locals would show them).
    """
    try:
        return await wait()
    except Exception as exc:
        if not isinstance(exc, LeadpipeError):
            forget_locals(exc)
            trigger.log.exception("%s failed unexpectedly", type(trigger).__name__)
        return from_exception(exc)


def result_of(event: Any) -> dict[str, Any]:
    """The account dict of a ``success`` event; any other event is raised as its error.

    :raises AirflowSensorTimeout: a ``timeout`` event (``soft_fail`` skips it, as in poke mode).
    :raises AirflowFailException: a ``failure`` event, as the same typed error the sensor raises
        in poke mode (``LeadpipeAuthError``, ``LeadpipeAccountError``).
    :raises LeadpipeError: an ``error`` event, or an event that is missing or malformed.
    """
    if not isinstance(event, Mapping):
        raise LeadpipeError(
            f"LeadpipeAccountTrigger resumed the sensor without an event (got {type(event).__name__}); "
            "refusing to treat that as success"
        )
    status = event.get("status")
    message = str(event.get("message") or "no message")
    if status == SUCCESS:
        account = event.get("account")
        if not isinstance(account, Mapping):
            raise LeadpipeError("LeadpipeAccountTrigger sent a success event without an 'account' object")
        return AccountStatus.from_data(account).to_dict()
    if status == TIMEOUT:
        raise AirflowSensorTimeout(message)
    if status in (FAILURE, ERROR):
        name = str(event.get("error") or "")
        http_status = event.get("http_status")
        cls = _ERRORS.get(name)
        if status == FAILURE and (cls is None or not issubclass(cls, AirflowFailException)):
            cls = LeadpipeAuthError if http_status in (401, 403) else LeadpipeAccountError
        if cls is None:
            cls, message = LeadpipeError, f"{name or 'error'}: {message}"
        raise cls(message, http_status=http_status if isinstance(http_status, int) else None)
    raise LeadpipeError(
        f"LeadpipeAccountTrigger sent an event with unknown status {status!r}; expected one of "
        f"{[SUCCESS, FAILURE, ERROR, TIMEOUT]}"
    )
