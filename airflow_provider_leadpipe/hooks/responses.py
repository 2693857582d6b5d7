"""Answers and errors: how a response becomes a result or a typed error (:func:`answer`,
:func:`handle_response`), how a network error becomes one (:func:`transport_error`), and a short
redacted summary of an error body (:func:`summarize_error_body`)."""

from __future__ import annotations

import ssl
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAuthError,
    LeadpipeConflictError,
    LeadpipeConnectionError,
    LeadpipeError,
    LeadpipeNotFoundError,
    LeadpipeRateLimitError,
    LeadpipeRequestError,
    LeadpipeResponseError,
    LeadpipeServerError,
    LeadpipeSlotsFullError,
)
from airflow_provider_leadpipe.hooks.body import Unreadable
from airflow_provider_leadpipe.hooks.redaction import redact, response_text
from airflow_provider_leadpipe.hooks.retry import parse_retry_after
from airflow_provider_leadpipe.hooks.settings import ApiSettings


class _Undecodable(str):
    """What :func:`_json_body` returns for a body it cannot decode: the reason, not the body."""


NOT_JSON, TOO_DEEP = _Undecodable("a body that is not JSON"), _Undecodable("JSON nested too deeply to decode")


def _json_body(response: httpx.Response) -> Any:
    """The decoded body, or :data:`NOT_JSON` / :data:`TOO_DEEP`.

    Returns rather than raises, so no decoder exception (whose ``doc`` holds the whole body) is
    left as the context of the error raised from it."""
    try:
        return response.json()
    except RecursionError:
        return TOO_DEEP
    except (ValueError, UnicodeDecodeError):
        return NOT_JSON


def _content_type(response: httpx.Response, settings: ApiSettings) -> str:
    header = redact(response.headers.get("content-type", "no content type"), settings)  # before the cut
    return response_text(header.split(";")[0], settings, 60)


def summarize_error_body(response: httpx.Response, settings: ApiSettings) -> tuple[str, str | None]:
    """A short human summary of an error body, whatever its shape (never the whole body), and the
    API's error code (``error.code`` of the envelope, when it is a string) or None.

    Both are redacted here, field by field, before they are joined or shortened, so no caller
    holds an unredacted copy in a variable (tracebacks that print locals, like Airflow 3's, would
    show it)."""
    body = _json_body(response)
    message: Any = None
    code: Any = None
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message, code = error.get("message"), error.get("code")
        elif isinstance(error, str):
            message = error
        for key in ("message", "detail", "title"):
            if message is None and isinstance(body.get(key), str):
                message = body[key]
    api_code = response_text(code, settings, 80) if isinstance(code, str) else None
    if message is None:
        shape = f", {body}" if isinstance(body, _Undecodable) else ""
        return f"{_content_type(response, settings)} body{shape}, {len(response.content)} bytes", api_code
    text = response_text(message, settings)
    summary = f"{text} [{api_code}]" if api_code and api_code != "HTTP_ERROR" else text
    return summary, api_code


def describe(request: httpx.Request) -> str:
    return f"{request.method} {request.url.path}"


#: Turns one response into a result, or raises a typed error (:func:`handle_response` is the default).
Handler = Callable[[httpx.Response, "ApiSettings"], Any]


def handle_response(response: httpx.Response, settings: ApiSettings) -> Any:
    """Return the JSON payload of a 2xx response; raise the matching typed error otherwise."""
    status = response.status_code
    where = describe(response.request)
    if 200 <= status < 300:
        payload = _envelope(response, settings)
        if isinstance(payload, str):  # what is wrong with it, never the body itself
            raise LeadpipeResponseError(
                f"Leadpipe {where} answered HTTP {status} {payload}", http_status=status
            )
        return payload
    detail, code = summarize_error_body(response, settings)
    base = f"Leadpipe {where} failed with HTTP {status}: {detail}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 403 and (code == "SLOTS_FULL" or "SLOTS_FULL" in detail):
        raise LeadpipeSlotsFullError(
            f"{base} (every Orbit audience slot is in use: free one by pausing another audience, "
            "or add slots to the plan)",
            http_status=status,
            api_code="SLOTS_FULL",
        )
    if status in (401, 403):
        raise LeadpipeAuthError(
            f"{base} (connection '{settings.conn_id}': check the API key and that the organization "
            "is active)",
            http_status=status,
            api_code=code,
        )
    if status == 429:
        raise LeadpipeRateLimitError(base, retry_after=retry_after, http_status=status, api_code=code)
    if status >= 500:
        raise LeadpipeServerError(base, retry_after=retry_after, http_status=status, api_code=code)
    if status == 404:
        raise LeadpipeNotFoundError(base, http_status=status, api_code=code)
    if status == 409:
        raise LeadpipeConflictError(base, http_status=status, api_code=code)
    if 400 <= status < 500:
        raise LeadpipeRequestError(base, http_status=status, api_code=code)
    raise LeadpipeResponseError(
        f"Leadpipe {where} answered with unexpected HTTP {status}", http_status=status
    )


def parsing(parse: Callable[[Any], Any] | None) -> Handler:
    """A handler: :func:`handle_response`, then ``parse`` (e.g. ``AccountStatus.from_response``) on
    the payload, so the payload is parsed inside :func:`answer`; without ``parse``,
    :func:`handle_response` itself."""
    if parse is None:
        return handle_response

    def handle(response: httpx.Response, settings: ApiSettings) -> Any:
        return parse(handle_response(response, settings))

    return handle


def answer(handler: Handler, response: httpx.Response, settings: ApiSettings) -> Any:
    """``handler(response, settings)``: the one place where an answer becomes a result or an error.

    Every hook call goes through here (``LeadpipeHook.send``), and every response is parsed inside
    a handler. On failure the error leaves with nothing of the answer in reach: the frames below
    (handlers, models, pydantic), whose arguments and locals held the body, are cleared; this
    frame drops the response; and an error that is not a ``LeadpipeError`` (a pydantic
    ``ValidationError`` quotes its input) becomes a ``LeadpipeResponseError`` naming only its type,
    raised without it as cause or context. Tracebacks that print locals (Airflow's rich ones) then
    show no copy of the body.
    """
    try:
        return handler(response, settings)
    except LeadpipeError as exc:
        failure: LeadpipeError = exc
    except Exception as exc:  # never kept: a model's or decoder's error may quote the body
        traceback.clear_frames(exc.__traceback__)
        failure = LeadpipeResponseError(
            f"Leadpipe {describe(response.request)} answered HTTP {response.status_code} with a body "
            f"that could not be read ({type(exc).__name__})",
            http_status=response.status_code,
        )
    del response
    forget_locals(failure)
    try:
        raise failure
    finally:
        del failure  # no reference cycle through this frame


def forget_locals(exc: BaseException) -> None:
    """Clear the local variables of every finished frame in the tracebacks of ``exc`` and of its
    ``__cause__`` / ``__context__`` chain (frames still running are left as they are)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def _envelope(response: httpx.Response, settings: ApiSettings) -> Mapping[str, Any] | str:
    """The payload of a 2xx answer, or a description of what is wrong with it."""
    payload = _json_body(response)
    if isinstance(payload, _Undecodable):
        return f"with {payload} ({_content_type(response, settings)}, {len(response.content)} bytes)"
    if not isinstance(payload, Mapping) or "data" not in payload:
        return "without the documented 'data' envelope"
    return payload


def transport_error(
    exc: httpx.TransportError, request: httpx.Request, settings: ApiSettings
) -> LeadpipeConnectionError:
    """Wrap an httpx network error; records whether the request may have reached the server.

    httpx's message can quote what the server sent (h11 reports an illegal status or header line
    in full), so it is redacted and shortened like any response text."""
    reason = type(exc).__name__
    text = response_text(str(exc), settings)
    # Connect-phase failures never reached the server, so even a POST may be retried safely.
    # A proxy that refuses the CONNECT tunnel (ProxyError) never forwarded the request either.
    unsent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
    sent = not isinstance(exc, unsent)
    suffix = f" ({text})" if text else ""
    if _caused_by(exc, ssl.SSLCertVerificationError):
        suffix += (
            "; the server's TLS certificate is not trusted: behind a TLS-inspecting proxy, set the "
            "connection's ca_bundle extra to a PEM file holding its CA"
        )
    return LeadpipeConnectionError(
        f"Leadpipe {describe(request)} to {request.url.host} failed: {reason}{suffix}", request_sent=sent
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl: a short chain
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unreadable(
    response: httpx.Response, reason: Unreadable, settings: ApiSettings
) -> httpx.Response | LeadpipeResponseError:
    """What an answer whose body could not be read (:class:`Unreadable`) becomes: for a 2xx, the
    error to raise; for any other status, a stand-in answer with the same status and headers and a
    one-line error body saying why, so the status decides as usual (a 5xx is still retried)."""
    if 200 <= response.status_code < 300:
        return LeadpipeResponseError(
            f"Leadpipe {describe(response.request)} answered HTTP {response.status_code} with "
            f"{response_text(str(reason), settings)}; not read",
            http_status=response.status_code,
        )
    skip = {"content-length", "content-type", "transfer-encoding"}
    headers = [(name, value) for name, value in response.headers.multi_items() if name.lower() not in skip]
    body = {"error": {"message": f"the body was not read: {response_text(str(reason), settings)}"}}
    return httpx.Response(response.status_code, headers=headers, json=body, request=response.request)


def failed_attempt(
    exc: httpx.TransportError | Unreadable,
    request: httpx.Request,
    response: httpx.Response | None,
    settings: ApiSettings,
) -> httpx.Response | LeadpipeError:
    """What an attempt that failed while sending or reading becomes: a network error the typed
    error to raise (:func:`transport_error`); a body too large once decoded, or in an encoding it
    cannot decode, what :func:`unreadable` says."""
    if isinstance(exc, httpx.TransportError):
        return transport_error(exc, request, settings)
    forget_locals(exc)  # the frames that read it held pieces of the body
    assert response is not None  # Unreadable comes from reading a response
    return unreadable(response, exc, settings)
