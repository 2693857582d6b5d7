"""The event protocol of the Leadpipe triggers that yield one event (the account trigger and the
audience run trigger), and how a task turns an event back into a result: :func:`outcome`, the
one-event ``run()``; :func:`result_of`, the task's side.

Every payload is a dict of JSON primitives with a ``status`` key:

========== ===================================================================================
status     payload and meaning
========== ===================================================================================
success    the trigger's payload key (:class:`Payload`: ``account``, the ``AccountStatus.to_dict()``
           that satisfied the condition; ``run``, the completed run); ``message``
failure    waiting cannot help (HTTP 401/403/404, a ``fail_on_statuses`` status, no intent
           product, a failed or cancelled run, whose dict is then ``run``): ``error`` (the
           exception class name), ``message``, ``http_status``
error      anything else that ended the wait (bad connection, malformed response, a bug):
           ``error``, ``message``, ``http_status``
timeout    the deadline passed before the condition held: ``message``
========== ===================================================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Payload:
    """What a trigger's ``success`` event carries, for :func:`result_of`.

    :param trigger: the trigger's class name, for errors about its events.
    :param waiter: what the trigger resumes ("sensor", "task"), for those errors.
    :param key: the payload's key (``account``, ``run``).
    :param parse: turns the payload into the task's result (validated).
    :param failed: the typed error of a ``failure`` event that carries the payload (with the
        event's message), if any.
    :param timeout_message: the message of a ``timeout`` event that has none.
    """

    trigger: str
    waiter: str
    key: str
    parse: Callable[[Mapping[str, Any]], dict[str, Any]]
    failed: Callable[[Mapping[str, Any], str | None], Exception] | None = None
    timeout_message: str = "no message"


ACCOUNT = Payload(
    "LeadpipeAccountTrigger", "sensor", "account", lambda data: AccountStatus.from_data(data).to_dict()
)


def result_of(
    event: Any, payload: Payload = ACCOUNT, *, timeout_error: type[Exception] = AirflowSensorTimeout
) -> dict[str, Any]:
    """The payload of a ``success`` event; any other event is raised as its error.

    :param timeout_error: raised for a ``timeout`` event (a sensor's ``AirflowSensorTimeout``:
        ``soft_fail`` skips it, as in poke mode; the run operator's own timeout error).
    :raises AirflowFailException: a ``failure`` event, as the same typed error the task raises
        without deferring (``LeadpipeAuthError``, ``LeadpipeAccountError``, a failed run's error).
    :raises LeadpipeError: an ``error`` event, or an event that is missing or malformed.
    """
    if not isinstance(event, Mapping):
        raise LeadpipeError(
            f"{payload.trigger} resumed the {payload.waiter} without an event (got {type(event).__name__}); "
            "refusing to treat that as success"
        )
    status = event.get("status")
    message = str(event.get("message") or "no message")
    if status == SUCCESS:
        data = event.get(payload.key)
        if not isinstance(data, Mapping):
            raise LeadpipeError(f"{payload.trigger} sent a success event without {_an(payload.key)} object")
        return payload.parse(data)
    if status == TIMEOUT:
        raise timeout_error(str(event.get("message") or payload.timeout_message))
    data = event.get(payload.key)
    if status == FAILURE and payload.failed is not None and isinstance(data, Mapping):
        raise payload.failed(data, event.get("message"))
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
        f"{payload.trigger} sent an event with unknown status {status!r}; expected one of "
        f"{[SUCCESS, FAILURE, ERROR, TIMEOUT]}"
    )


def _an(key: str) -> str:
    return f"an '{key}'" if key[0] in "aeiou" else f"a '{key}'"
