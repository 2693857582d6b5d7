"""Orbit answers: how each audience endpoint's response becomes a value or a typed error.

Pure handlers (a response in, a value or a typed error out), the 409 of a run-scoped read
(:class:`Refused`) and its error, the streamed ``export.csv`` (:class:`ExportCsvStream`) and the
checks of a stored export's signed download URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAudienceRunError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeError,
    LeadpipeInvalidConfigError,
    LeadpipeNotFoundError,
    LeadpipeRequestError,
    LeadpipeResponseError,
)
from airflow_provider_leadpipe.hooks.body import Unreadable
from airflow_provider_leadpipe.hooks.redaction import redact
from airflow_provider_leadpipe.hooks.responses import (
    Handler,
    forget_locals,
    handle_response,
    summarize_error_body,
    transport_error,
)
from airflow_provider_leadpipe.hooks.settings import ApiSettings, is_loopback
from airflow_provider_leadpipe.models import (
    AudienceExport,
    AudienceResultsPage,
    AudienceRun,
    AudienceRunStatus,
)
from airflow_provider_leadpipe.models.audience_configs import AudienceConfigCheck, AudiencePreview

# -- response handlers (pure: a response in, a value or a typed error out) -------------------------


def parsing(parse: Callable[[Any], Any], what: str) -> Handler:
    """``handle_response`` then ``parse``; a 404 names the object (``what``)."""

    def handle(response: httpx.Response, settings: ApiSettings) -> Any:
        return parse(_checked(response, settings, what))

    return handle


def _checked(response: httpx.Response, settings: ApiSettings, what: str) -> Any:
    try:
        return handle_response(response, settings)
    except LeadpipeNotFoundError as exc:
        raise LeadpipeNotFoundError(
            f"Leadpipe {what} was not found (HTTP 404; check the id and the connection's organization)",
            http_status=exc.http_status,
            api_code=exc.api_code,
        ) from None


def opaque(what: str) -> Handler:
    """For DELETE: the ``data`` object if the API sent one, ``{}`` for an empty (e.g. 204) answer."""

    def handle(response: httpx.Response, settings: ApiSettings) -> dict[str, Any]:
        if 200 <= response.status_code < 300 and not response.content.strip():
            return {}
        data = _checked(response, settings, what)["data"]
        return dict(data) if isinstance(data, Mapping) else {"data": data}

    return handle


def _json_object(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, Mapping) else {}


@dataclass(frozen=True)
class Refused:
    """A 409 from a run-scoped read: the run cannot serve it (failed or cancelled)."""

    run: AudienceRun | None
    status: str | None
    code: str | None
    message: str | None


def _refusal(response: httpx.Response, settings: ApiSettings) -> Refused:
    # The 409 body is undocumented: read whatever a reasonable server sends (data.run, data.state
    # or data.status, error.code/message), and never fail on its shape.
    body = _json_object(response)
    data = body.get("data")
    data = data if isinstance(data, Mapping) else {}
    candidate = data.get("run", data)
    run = None
    if isinstance(candidate, Mapping) and "id" in candidate and "status" in candidate:
        try:
            run = AudienceRun.from_data(candidate)
        except LeadpipeResponseError:
            run = None
    states = (value for value in (data.get("state"), data.get("status")) if isinstance(value, str))
    status = run.status.value if run else next(states, None)
    summary, code = summarize_error_body(response, settings)  # redacted and bounded
    detail: str | None = summary
    if not (isinstance(body.get("error"), (Mapping, str)) or isinstance(body.get("message"), str)):
        detail = None  # no message in the body: the summary would only describe its type and size
    if run and run.error_code:
        code = run.error_code
    if run and run.error_message:
        detail = run.error_message

    def clean(text: Any) -> str | None:  # server text going into messages: key removed, bounded
        return _shorten(redact(text, settings), 120) if isinstance(text, str) else None

    return Refused(run=run, status=clean(status), code=clean(code), message=clean(detail))


def results(what: str, *, limit: int, offset: int) -> Handler:
    """``GET .../results``: 202 and 200 become a page, 409 a :class:`Refused` value."""

    def handle(response: httpx.Response, settings: ApiSettings) -> AudienceResultsPage | Refused:
        if response.status_code == 409:
            return _refusal(response, settings)
        payload = _checked(response, settings, what)
        ready = response.status_code != 202
        return AudienceResultsPage.from_response(payload, ready=ready, limit=limit, offset=offset)

    return handle


def completed_only(parse: Callable[[Any], Any], what: str) -> Handler:
    """For reads scoped to a completed run (stats): 202 -> not yet, 409 -> :class:`Refused`."""

    def handle(response: httpx.Response, settings: ApiSettings) -> Any:
        if response.status_code == 409:
            return _refusal(response, settings)
        if response.status_code == 202:
            raise _not_ready(what)
        return parse(_checked(response, settings, what))

    return handle


def _not_ready(what: str, status: str | None = None, http_status: int = 202) -> LeadpipeConflictError:
    state = f"{status}, not completed" if status else "not completed yet"
    return LeadpipeConflictError(
        f"Leadpipe {what} is {state} (HTTP {http_status}): wait for the run first", http_status=http_status
    )


def _shorten(text: str, limit: int = 300) -> str:
    # Server text in a message: one line, bounded (an error message, never a whole body).
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_error(refused: Refused, audience_id: str, run_id: str) -> LeadpipeError:
    """The error for a 409: a run still queued/running is not ready yet (a later try can succeed);
    anything else is a finished run that cannot serve it (:class:`LeadpipeAudienceRunError`)."""
    if refused.status in (AudienceRunStatus.QUEUED.value, AudienceRunStatus.RUNNING.value):
        return _not_ready(f"audience run {run_id} of audience {audience_id}", refused.status, 409)
    status = refused.status or "not servable"
    detail = _shorten(": ".join(part for part in (refused.code, refused.message) if part))
    return LeadpipeAudienceRunError(
        f"Leadpipe audience run {run_id} (audience {audience_id}) is {status}"
        + (f" ({detail})" if detail else ""),
        audience_id=audience_id,
        run_id=run_id,
        status=refused.status,
        error_code=refused.code,
        error_message=refused.message,
        http_status=409,
    )


# -- configs: validate and preview ---------------------------------------------------------------


def _rejected(response: httpx.Response, settings: ApiSettings) -> AudienceConfigCheck | None:
    """A 400/422 about the config itself, as an invalid check: its ``data.errors`` (the sandbox's
    shape) or ``error.details``, else the error message as one problem. None for another answer."""
    if response.status_code not in (400, 422):
        return None
    body = _json_object(response)
    data = body.get("data")
    error = body.get("error")
    listed = data.get("errors") if isinstance(data, Mapping) else None
    if listed is None and isinstance(error, Mapping):
        listed = error.get("details")
    summary, code = summarize_error_body(response, settings)  # redacted and bounded
    if not isinstance(listed, list) or not listed:
        listed = [{"field": "config", "code": code, "message": summary}]
    problems = [
        {k: redact(v, settings) if isinstance(v, str) else v for k, v in item.items()}
        for item in listed
        if isinstance(item, Mapping)
    ]
    return AudienceConfigCheck.from_data({"valid": False, "errors": problems})


def config_check(response: httpx.Response, settings: ApiSettings) -> AudienceConfigCheck:
    """``validate``: the check; a 400/422 about the config is an invalid check, not an error."""
    rejected = _rejected(response, settings)
    if rejected is not None:
        return rejected
    check = AudienceConfigCheck.from_response(handle_response(response, settings))
    if not check.valid:  # the server's own text in messages: key removed
        problems = [
            p.model_copy(update={"message": redact(p.message, settings) if p.message else p.message})
            for p in check.errors
        ]
        check = check.model_copy(update={"errors": problems})
    return check


def config_error(check: AudienceConfigCheck, what: str = "audience config") -> LeadpipeInvalidConfigError:
    """The error of an invalid config: every problem the API reported, one per line."""
    lines = check.problems() or ["(the API gave no detail)"]
    listed = "\n".join(f"- {line}" for line in lines)
    return LeadpipeInvalidConfigError(
        f"Leadpipe says the {what} is invalid ({len(lines)} problem(s)):\n{listed}", problems=lines
    )


def preview(response: httpx.Response, settings: ApiSettings) -> AudiencePreview:
    """``preview``: the preview; a 400/422 about the config raises ``LeadpipeConfigError``."""
    rejected = _rejected(response, settings)
    if rejected is not None:
        raise config_error(rejected)
    return AudiencePreview.from_response(handle_response(response, settings))


# -- export.csv: a streamed answer -------------------------------------------------------------


@dataclass
class ExportCsvStream:
    """An open ``export.csv`` answer: ``row_cap`` (``X-Export-Row-Cap``) and the CSV bytes as sent."""

    response: httpx.Response
    #: For redacting what a network error quotes from the server.
    settings: ApiSettings

    @property
    def row_cap(self) -> int | None:
        """The server's row cap for this export, if it sent a readable one."""
        value = self.response.headers.get("x-export-row-cap", "").strip()
        return int(value) if value.isascii() and value.isdigit() else None

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The CSV body, chunk by chunk; a network failure raises LeadpipeConnectionError, a body
        that cannot be decoded LeadpipeResponseError."""
        try:
            yield from self.response.iter_bytes(chunk_size)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.response.request, self.settings) from None
        except Unreadable as exc:
            raise _unreadable_csv(exc) from None

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """Async :meth:`iter_bytes`."""
        try:
            async for chunk in self.response.aiter_bytes(chunk_size):
                yield chunk
        except httpx.TransportError as exc:
            raise transport_error(exc, self.response.request, self.settings) from None
        except Unreadable as exc:
            raise _unreadable_csv(exc) from None


def _unreadable_csv(reason: Unreadable) -> LeadpipeResponseError:
    forget_locals(reason)  # the frames that read it held pieces of the body
    return LeadpipeResponseError(f"Leadpipe export CSV could not be read: {reason}")


def csv_stream(what: str) -> Handler:
    def handle(response: httpx.Response, settings: ApiSettings) -> httpx.Response | Refused:
        if response.status_code == 200:
            return response  # open: the caller streams and closes it
        if response.status_code == 409:
            return _refusal(response, settings)
        if response.status_code == 202:
            raise _not_ready(what)
        _checked(response, settings, what)  # raises the typed error
        raise LeadpipeResponseError(
            f"Leadpipe {what} export.csv answered HTTP {response.status_code}, not 200 with the CSV",
            http_status=response.status_code,
        )

    return handle


# -- stored export download: another host, never the API key --------------------------------------


def signed_url(export: AudienceExport) -> str:
    if not isinstance(export, AudienceExport):
        raise LeadpipeConfigError(
            f"export must be an AudienceExport (from create/get_audience_export), got {type(export).__name__}"
        )
    if not export.is_completed or not export.download_url:
        raise LeadpipeConfigError(
            f"audience export {export.id} is {export.status!r}, not completed with a download URL: "
            "poll get_audience_export until it is completed"
        )
    if export.content_sha1 is None or export.byte_size is None:
        raise LeadpipeResponseError(
            f"Leadpipe audience export {export.id} is completed but has no contentSha1/byteSize to verify"
        )
    try:
        parts = urlsplit(export.download_url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    # The URL itself is a credential (it grants the download): never echoed in a message.
    if (
        parts is None
        or not host
        or not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)))
    ):
        raise LeadpipeResponseError(
            f"Leadpipe audience export {export.id}: the signed download URL is not an https:// URL; refused"
        )
    return export.download_url


def download_response(response: httpx.Response, settings: ApiSettings) -> httpx.Response:
    if response.status_code == 200:
        return response
    if response.status_code == 429 or response.status_code >= 500:
        handle_response(response, settings)  # raises the transient typed error (retried)
    raise LeadpipeRequestError(
        f"The signed export download URL answered HTTP {response.status_code} "
        "(expired? get a fresh one with get_audience_export)",
        http_status=response.status_code,
    )


def stream_or_raise(result: httpx.Response | Refused, audience_id: str, run_id: str) -> httpx.Response:
    if isinstance(result, Refused):
        raise run_error(result, audience_id, run_id)
    return result
