"""Orbit intent audiences (``/v1/intent/audiences...``, generation 3) for :class:`LeadpipeHook`.

:class:`AudiencesHookMixin` adds audience CRUD, runs (queue with an ``Idempotency-Key``, list,
get one, cancel), results (a page, or every row through sync and async iterators), run stats, the
streamed ``export.csv`` and stored exports with their verified download.

Sync and async cannot drift: each operation is written once, as a *plan* -- a generator that
yields the requests it needs (:class:`_Call`) and receives each one's result. The sync method runs
the plan with ``self.send``, its ``a``-prefixed twin with ``await self.asend``; nothing else
differs. Ids are checked (UUIDs) before anything is sent.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAudienceRunError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeError,
    LeadpipeNotFoundError,
    LeadpipeRequestError,
    LeadpipeResponseError,
)
from airflow_provider_leadpipe.hooks import core, paging
from airflow_provider_leadpipe.hooks.core import IDEMPOTENCY_KEY_HEADER, ApiSettings, Handler
from airflow_provider_leadpipe.models import (
    Audience,
    AudienceExport,
    AudienceResultsPage,
    AudienceRun,
    AudienceRunStats,
    AudienceRunStatus,
)
from airflow_provider_leadpipe.utils import validation
from airflow_provider_leadpipe.utils.storage import AtomicFile

AUDIENCES_PATH = "/v1/intent/audiences"
#: Largest ``limit`` of ``GET .../runs`` (documented: 1-100).
MAX_RUNS_LIMIT = 100
#: Audiences asked for per page of ``GET /v1/intent/audiences``: the contract documents ``limit``
#: but not its largest value; its example asks for 50.
AUDIENCES_PAGE_SIZE = 50
#: Largest ``page_size`` of the audience list (undocumented; the value the runs list allows).
MAX_AUDIENCES_LIMIT = 100
#: Largest results page asked for. Undocumented; the previous API generation allowed 1-100, and a
#: server serving fewer is followed (see paging.AudienceResultsPager).
MAX_RESULTS_LIMIT = 100
#: Longest ``Idempotency-Key`` the API accepts (documented).
MAX_IDEMPOTENCY_KEY = 120
DOWNLOAD_CHUNK = 1024 * 1024

T = TypeVar("T")
R = TypeVar("R", Audience, AudienceRun)


@dataclass(frozen=True)
class _Call:
    """One request of a plan, and how its response becomes the value sent back into the plan."""

    method: str
    path: str
    handler: Handler = core.handle_response
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None


Plan = Generator[_Call, Any, T]


# -- argument checks (before anything is sent) ----------------------------------------------------


def _path_id(value: Any, name: str) -> str:
    """A UUID path id, as the API's ``format: uuid`` path parameters require."""
    return validation.uuid_id(value, name)


def idempotency_key(raw: str) -> str:
    """The ``Idempotency-Key`` to send for ``raw``: ``raw`` itself when it fits (at most 120
    printable ASCII characters), else a deterministic key of at most 120: a readable prefix of
    ``raw`` and the SHA-256 of all of it (so distinct inputs give distinct keys).

    :raises LeadpipeConfigError: for an empty or non-string key.
    """
    if not isinstance(raw, str) or not raw:
        raise LeadpipeConfigError(f"idempotency_key must be a non-empty string, got {raw!r}")
    if len(raw) <= MAX_IDEMPOTENCY_KEY and all(33 <= ord(char) <= 126 for char in raw):
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()  # 64 characters
    prefix = "".join(char for char in raw[:48] if 33 <= ord(char) <= 126)
    return f"{prefix}-sha256-{digest}"  # at most 48 + 8 + 64 = 120


# -- response handlers (pure: a response in, a value or a typed error out) -------------------------


def _parsing(parse: Callable[[Any], Any], what: str) -> Handler:
    """``core.handle_response`` then ``parse``; a 404 names the object (``what``)."""

    def handle(response: httpx.Response, settings: ApiSettings) -> Any:
        return parse(_checked(response, settings, what))

    return handle


def _checked(response: httpx.Response, settings: ApiSettings, what: str) -> Any:
    try:
        return core.handle_response(response, settings)
    except LeadpipeNotFoundError as exc:
        raise LeadpipeNotFoundError(
            f"Leadpipe {what} was not found (HTTP 404; check the id and the connection's organization)",
            http_status=exc.http_status,
            api_code=exc.api_code,
        ) from None


def _opaque(what: str) -> Handler:
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
class _Refused:
    """A 409 from a run-scoped read: the run cannot serve it (failed or cancelled)."""

    run: AudienceRun | None
    status: str | None
    code: str | None
    message: str | None


def _refusal(response: httpx.Response, settings: ApiSettings) -> _Refused:
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
    summary, code = core.summarize_error_body(response, settings)  # redacted and bounded
    detail: str | None = summary
    if not (isinstance(body.get("error"), (Mapping, str)) or isinstance(body.get("message"), str)):
        detail = None  # no message in the body: the summary would only describe its type and size
    if run and run.error_code:
        code = run.error_code
    if run and run.error_message:
        detail = run.error_message

    def clean(text: Any) -> str | None:  # server text going into messages: key removed, bounded
        return _shorten(core.redact(text, settings), 120) if isinstance(text, str) else None

    return _Refused(run=run, status=clean(status), code=clean(code), message=clean(detail))


def _results(what: str, *, limit: int, offset: int) -> Handler:
    """``GET .../results``: 202 and 200 become a page, 409 a :class:`_Refused` value."""

    def handle(response: httpx.Response, settings: ApiSettings) -> AudienceResultsPage | _Refused:
        if response.status_code == 409:
            return _refusal(response, settings)
        payload = _checked(response, settings, what)
        ready = response.status_code != 202
        return AudienceResultsPage.from_response(payload, ready=ready, limit=limit, offset=offset)

    return handle


def _completed_only(parse: Callable[[Any], Any], what: str) -> Handler:
    """For reads scoped to a completed run (stats): 202 -> not yet, 409 -> :class:`_Refused`."""

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


def _run_error(refused: _Refused, audience_id: str, run_id: str) -> LeadpipeError:
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
            raise core.transport_error(exc, self.response.request, self.settings) from None
        except core.Unreadable as exc:
            raise _unreadable_csv(exc) from None

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """Async :meth:`iter_bytes`."""
        try:
            async for chunk in self.response.aiter_bytes(chunk_size):
                yield chunk
        except httpx.TransportError as exc:
            raise core.transport_error(exc, self.response.request, self.settings) from None
        except core.Unreadable as exc:
            raise _unreadable_csv(exc) from None


def _unreadable_csv(reason: core.Unreadable) -> LeadpipeResponseError:
    core.forget_locals(reason)  # the frames that read it held pieces of the body
    return LeadpipeResponseError(f"Leadpipe export CSV could not be read: {reason}")


def _csv_stream(what: str) -> Handler:
    def handle(response: httpx.Response, settings: ApiSettings) -> httpx.Response | _Refused:
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


def _signed_url(export: AudienceExport) -> str:
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
        or not (parts.scheme == "https" or (parts.scheme == "http" and core.is_loopback(host)))
    ):
        raise LeadpipeResponseError(
            f"Leadpipe audience export {export.id}: the signed download URL is not an https:// URL; refused"
        )
    return export.download_url


def _download_response(response: httpx.Response, settings: ApiSettings) -> httpx.Response:
    if response.status_code == 200:
        return response
    if response.status_code == 429 or response.status_code >= 500:
        core.handle_response(response, settings)  # raises the transient typed error (retried)
    raise LeadpipeRequestError(
        f"The signed export download URL answered HTTP {response.status_code} "
        "(expired? get a fresh one with get_audience_export)",
        http_status=response.status_code,
    )


class _Sink:
    """Writes the downloaded bytes, counting and hashing them; verifies against the export.

    A destination given as a path (text, ``os.PathLike`` or ``ObjectStoragePath``) is written
    through :class:`~airflow_provider_leadpipe.utils.storage.AtomicFile`: it gets the bytes only when the
    download is complete and verified, and is left as it was otherwise.
    """

    def __init__(self, export: AudienceExport, destination: Any):
        self.export = export
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.size = 0
        self._file: IO[bytes] | None = destination if hasattr(destination, "write") else None
        self._atomic = None if self._file is not None else AtomicFile(_storage_path(destination))

    def __enter__(self) -> _Sink:
        if self._atomic is not None:
            self._file = self._atomic.__enter__()
        return self

    def write(self, chunk: bytes) -> None:
        self.sha1.update(chunk)
        self.size += len(chunk)
        assert self._file is not None
        self._file.write(chunk)

    def too_large(self) -> LeadpipeResponseError:
        """The error of a download that announces or sends more than ``byteSize``."""
        return LeadpipeResponseError(
            f"Leadpipe audience export {self.export.id} download is corrupt: more than byteSize "
            f"({self.export.byte_size:,} bytes) announced or sent; stopped, nothing kept"
        )

    def bound(self, response: httpx.Response) -> httpx.Response:
        """Make reading ``response`` stop before any byte past ``byteSize`` (a larger
        ``Content-Length`` before the first byte) with :meth:`too_large`."""
        assert self.export.byte_size is not None  # checked by _signed_url
        return core.bound_body(response, self.export.byte_size, too_large=self.too_large)

    def verified(self) -> int:
        """The byte count, once it and the SHA-1 match the export (call it inside the block)."""
        export = self.export
        problem = None
        if self.size != export.byte_size:
            problem = f"{self.size} bytes received, byteSize says {export.byte_size}"
        elif self.sha1.hexdigest() != (export.content_sha1 or "").strip().lower():
            problem = "the SHA-1 of the bytes received differs from contentSha1"
        if problem:
            raise LeadpipeResponseError(
                f"Leadpipe audience export {export.id} download is corrupt: {problem}"
            )
        return self.size

    def __exit__(self, *exc: Any) -> None:
        if self._atomic is not None:
            self._atomic.__exit__(*exc)


def _storage_path(destination: Any) -> ObjectStoragePath:
    if isinstance(destination, ObjectStoragePath):
        return destination
    if isinstance(destination, (str, os.PathLike)) and str(destination).strip():
        return ObjectStoragePath(os.fspath(destination))
    raise LeadpipeConfigError(
        "destination must be a path, an ObjectStoragePath or a binary file object, "
        f"got {type(destination).__name__}"
    )


# -- the mixin ------------------------------------------------------------------------------------


class AudiencesHookMixin:
    """Orbit intent audiences; mixed into :class:`~airflow_provider_leadpipe.hooks.leadpipe.LeadpipeHook`."""

    if TYPE_CHECKING:

        @property
        def settings(self) -> ApiSettings: ...

        def get_conn(self) -> httpx.Client: ...
        async def aget_conn(self) -> httpx.AsyncClient: ...
        async def aget_settings(self) -> ApiSettings: ...
        def send(
            self,
            request: httpx.Request,
            *,
            handler: Handler = ...,
            stream: bool = ...,
            client: httpx.Client | None = ...,
        ) -> Any: ...
        async def asend(
            self,
            request: httpx.Request,
            *,
            handler: Handler = ...,
            stream: bool = ...,
            client: httpx.AsyncClient | None = ...,
        ) -> Any: ...

    # -- running plans: the only place sync and async differ -----------------------------------

    def _call(self, call: _Call, *, stream: bool = False) -> Any:
        client = self.get_conn()
        request = client.build_request(
            call.method, call.path, params=call.params, json=call.json, headers=call.headers
        )
        return self.send(request, handler=call.handler, stream=stream)

    async def _acall(self, call: _Call, *, stream: bool = False) -> Any:
        client = await self.aget_conn()
        request = client.build_request(
            call.method, call.path, params=call.params, json=call.json, headers=call.headers
        )
        return await self.asend(request, handler=call.handler, stream=stream)

    # A plan left suspended by a failure still holds what it was sent (answers: people's data);
    # closing it clears its frame, which the failure's traceback would otherwise reach. A failed
    # call is thrown into the plan (a 409 may be explained by the runs list, and a failed lookup
    # must not replace the 409); whatever escapes leaves the plan's finished frames cleared.

    def _run(self, plan: Plan[T]) -> T:
        answer: Any = None
        try:
            call = next(plan)
            while True:
                try:
                    answer = self._call(call)
                except LeadpipeError as error:  # the plan may explain or absorb a failed call
                    call = plan.throw(error)
                else:
                    call, answer = plan.send(answer), None
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        except BaseException as failure:
            answer = None
            core.forget_locals(failure)
            raise
        finally:
            plan.close()

    async def _arun(self, plan: Plan[T]) -> T:
        answer: Any = None
        try:
            call = next(plan)
            while True:
                try:
                    answer = await self._acall(call)
                except LeadpipeError as error:
                    call = plan.throw(error)
                else:
                    call, answer = plan.send(answer), None
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        except BaseException as failure:
            answer = None
            core.forget_locals(failure)
            raise
        finally:
            plan.close()

    # -- audiences ------------------------------------------------------------------------------

    def list_audiences(
        self, status: str | None = None, *, page_size: int = AUDIENCES_PAGE_SIZE
    ) -> list[Audience]:
        """Every audience of the organization, optionally only those in ``status``
        (``draft``/``active``/``paused``), read page by page (``page_size``, 1-100) to the end.

        :raises LeadpipeResponseError: when the answers do not let it tell that it has every
            audience (see :class:`~airflow_provider_leadpipe.hooks.paging.ListPager`).
        """
        return self._run(_list_audiences(status, page_size))

    async def alist_audiences(
        self, status: str | None = None, *, page_size: int = AUDIENCES_PAGE_SIZE
    ) -> list[Audience]:
        """Async :meth:`list_audiences`."""
        return await self._arun(_list_audiences(status, page_size))

    def get_audience(self, audience_id: str) -> Audience:
        """One audience. :raises LeadpipeNotFoundError: naming the id."""
        return self._run(_get_audience(audience_id))

    async def aget_audience(self, audience_id: str) -> Audience:
        """Async :meth:`get_audience`."""
        return await self._arun(_get_audience(audience_id))

    def create_audience(self, name: str, config: Mapping[str, Any], status: str | None = None) -> Audience:
        """Create an audience; ``config`` goes to the API as given (opaque).

        Not retried once it may have reached the server (a POST without idempotency key).
        :raises LeadpipeSlotsFullError: ``status="active"`` without a free audience slot.
        """
        return self._run(_create_audience(name, config, status))

    async def acreate_audience(
        self, name: str, config: Mapping[str, Any], status: str | None = None
    ) -> Audience:
        """Async :meth:`create_audience`."""
        return await self._arun(_create_audience(name, config, status))

    def update_audience(
        self,
        audience_id: str,
        *,
        name: str | None = None,
        status: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Audience:
        """PATCH what is given (at least one of ``name``, ``status``, ``config``).

        :raises LeadpipeSlotsFullError: activating without a free audience slot.
        """
        return self._run(_update_audience(audience_id, name, status, config))

    async def aupdate_audience(
        self,
        audience_id: str,
        *,
        name: str | None = None,
        status: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Audience:
        """Async :meth:`update_audience`."""
        return await self._arun(_update_audience(audience_id, name, status, config))

    def delete_audience(self, audience_id: str) -> dict[str, Any]:
        """Delete an audience; returns the API's ``data`` as it sent it (``{}`` for no body)."""
        return self._run(_delete_audience(audience_id))

    async def adelete_audience(self, audience_id: str) -> dict[str, Any]:
        """Async :meth:`delete_audience`."""
        return await self._arun(_delete_audience(audience_id))

    # -- runs -----------------------------------------------------------------------------------

    def create_audience_run(self, audience_id: str, *, idempotency_key: str | None = None) -> AudienceRun:
        """Queue a manual run, sending ``Idempotency-Key: idempotency_key(idempotency_key)``.

        The API returns the same run for the same key, so this POST is retried on transient
        failures (429, 5xx, a lost response): a retry can only get the run the first attempt
        created, never a second one. Without a key, a random one is made for this call, so its own
        retries are still safe (a later call makes a new run).
        """
        return self._run(_create_run(audience_id, idempotency_key))

    async def acreate_audience_run(
        self, audience_id: str, *, idempotency_key: str | None = None
    ) -> AudienceRun:
        """Async :meth:`create_audience_run`."""
        return await self._arun(_create_run(audience_id, idempotency_key))

    def list_audience_runs(
        self, audience_id: str, *, limit: int | None = None, page_size: int = MAX_RUNS_LIMIT
    ) -> list[AudienceRun]:
        """The audience's runs in the order the API serves them (newest first).

        With ``limit=None`` (the default) every run, read page by page (``page_size``, 1-100) to
        the end; with ``limit`` (1-100) one request for at most that many, the newest.

        :raises LeadpipeResponseError: (``limit=None``) when the answers do not let it tell that it
            has every run (see :class:`~airflow_provider_leadpipe.hooks.paging.ListPager`).
        """
        return self._run(_list_runs(audience_id, limit, page_size))

    async def alist_audience_runs(
        self, audience_id: str, *, limit: int | None = None, page_size: int = MAX_RUNS_LIMIT
    ) -> list[AudienceRun]:
        """Async :meth:`list_audience_runs`."""
        return await self._arun(_list_runs(audience_id, limit, page_size))

    def get_audience_run(self, audience_id: str, run_id: str) -> AudienceRun:
        """One run, whatever its state (the API has no single-run GET).

        Asks ``results?limit=1`` (202 while queued/running: that body's run); once the run is
        finished, the full run object (``dataDate``, ``errorCode``...) from the runs list, falling
        back to what the results answer said when the run is no longer among the newest 100.

        :raises LeadpipeNotFoundError: naming the audience and run ids.
        """
        return self._run(_get_run(audience_id, run_id))

    async def aget_audience_run(self, audience_id: str, run_id: str) -> AudienceRun:
        """Async :meth:`get_audience_run`."""
        return await self._arun(_get_run(audience_id, run_id))

    def cancel_audience_run(self, audience_id: str, run_id: str) -> None:
        """Cancel a queued run (the API refuses any other state with a typed 4xx error)."""
        self._run(_cancel_run(audience_id, run_id))

    async def acancel_audience_run(self, audience_id: str, run_id: str) -> None:
        """Async :meth:`cancel_audience_run`."""
        await self._arun(_cancel_run(audience_id, run_id))

    # -- results --------------------------------------------------------------------------------

    def get_audience_results_page(
        self, audience_id: str, run_id: str, *, limit: int = MAX_RESULTS_LIMIT, offset: int = 0
    ) -> AudienceResultsPage:
        """One page of a run's people. HTTP 202 (queued/running) is a page with ``ready=False``.

        :raises LeadpipeAudienceRunError: HTTP 409 (the run failed or was cancelled), with the
            run's status, ``errorCode`` and ``errorMessage``.
        """
        return self._run(_results_page(audience_id, run_id, limit, offset))

    async def aget_audience_results_page(
        self, audience_id: str, run_id: str, *, limit: int = MAX_RESULTS_LIMIT, offset: int = 0
    ) -> AudienceResultsPage:
        """Async :meth:`get_audience_results_page`."""
        return await self._arun(_results_page(audience_id, run_id, limit, offset))

    def iter_audience_result_pages(
        self, audience_id: str, run_id: str, *, page_size: int = MAX_RESULTS_LIMIT
    ) -> Iterator[AudienceResultsPage]:
        """Every non-empty page of a completed run, in order: every row exactly once.

        :raises LeadpipeConflictError: the run is not completed yet.
        :raises LeadpipeAudienceRunError: the run failed or was cancelled.
        """
        pager, fetch = self._results_walk(audience_id, run_id, page_size)
        return paging.read_pages(pager, lambda number: self._run(fetch(number)))

    def iter_audience_results(
        self, audience_id: str, run_id: str, *, page_size: int = MAX_RESULTS_LIMIT
    ) -> Iterator[dict[str, Any]]:
        """Every person of a completed run, in order (the API's own dicts: personal data)."""
        pages = self.iter_audience_result_pages(audience_id, run_id, page_size=page_size)
        return paging.records(pages, "results")

    def aiter_audience_result_pages(
        self, audience_id: str, run_id: str, *, page_size: int = MAX_RESULTS_LIMIT, concurrency: int = 4
    ) -> AsyncGenerator[AudienceResultsPage, None]:
        """Async :meth:`iter_audience_result_pages` with up to ``concurrency`` (1-16) pages in
        flight; still yielded in order, at most ``concurrency`` pages held in memory."""
        pager, fetch = self._results_walk(audience_id, run_id, page_size)
        concurrency = validation.concurrency(concurrency)
        return paging.aread_pages(pager, lambda number: self._arun(fetch(number)), concurrency)

    def aiter_audience_results(
        self, audience_id: str, run_id: str, *, page_size: int = MAX_RESULTS_LIMIT, concurrency: int = 4
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`iter_audience_results` (see :meth:`aiter_audience_result_pages`)."""
        pages = self.aiter_audience_result_pages(
            audience_id, run_id, page_size=page_size, concurrency=concurrency
        )
        return paging.arecords(pages, "results")

    @staticmethod
    def _results_walk(
        audience_id: str, run_id: str, page_size: int
    ) -> tuple[paging.AudienceResultsPager, Callable[[int], Plan[AudienceResultsPage]]]:
        audience_id, run_id = _path_id(audience_id, "audience_id"), _path_id(run_id, "run_id")
        size = validation.whole_number(page_size, "page_size", 1, MAX_RESULTS_LIMIT)
        pager = paging.AudienceResultsPager(size, what=f"audience run {run_id}")

        def fetch(number: int) -> Plan[AudienceResultsPage]:
            params = pager.params(number)
            return _results_page(audience_id, run_id, params["limit"], params["offset"])

        return pager, fetch

    # -- stats and exports ----------------------------------------------------------------------

    def get_audience_run_stats(self, audience_id: str, run_id: str) -> AudienceRunStats:
        """Stats of a completed run (fill rates, score histogram...)."""
        return self._run(_stats(audience_id, run_id))

    async def aget_audience_run_stats(self, audience_id: str, run_id: str) -> AudienceRunStats:
        """Async :meth:`get_audience_run_stats`."""
        return await self._arun(_stats(audience_id, run_id))

    @contextmanager
    def stream_audience_export_csv(self, audience_id: str, run_id: str) -> Iterator[ExportCsvStream]:
        """``export.csv`` of a completed run, streamed as the API sends it (capped by the API:
        compare :attr:`ExportCsvStream.row_cap` with the run's ``resultCount``)."""
        call = _export_csv(audience_id, run_id)
        response = _stream_or_raise(self._call(call, stream=True), audience_id, run_id)
        try:
            yield ExportCsvStream(response, self.settings)
        finally:
            response.close()

    @asynccontextmanager
    async def astream_audience_export_csv(
        self, audience_id: str, run_id: str
    ) -> AsyncIterator[ExportCsvStream]:
        """Async :meth:`stream_audience_export_csv` (read with ``aiter_bytes()``)."""
        call = _export_csv(audience_id, run_id)
        response = _stream_or_raise(await self._acall(call, stream=True), audience_id, run_id)
        try:
            yield ExportCsvStream(response, await self.aget_settings())
        finally:
            await response.aclose()

    def create_audience_export(self, audience_id: str, run_id: str) -> AudienceExport:
        """Create (or reuse) the stored CSV export of a completed run; comes with a fresh signed URL.

        Not retried once it may have reached the server (a POST without idempotency key); calling
        it again is harmless: the API reuses the stored export.
        """
        return self._run(_create_export(audience_id, run_id))

    async def acreate_audience_export(self, audience_id: str, run_id: str) -> AudienceExport:
        """Async :meth:`create_audience_export`."""
        return await self._arun(_create_export(audience_id, run_id))

    def get_audience_export(self, audience_id: str, run_id: str, export_id: str) -> AudienceExport:
        """A stored export with a fresh signed download URL (ask just before downloading)."""
        return self._run(_get_export(audience_id, run_id, export_id))

    async def aget_audience_export(self, audience_id: str, run_id: str, export_id: str) -> AudienceExport:
        """Async :meth:`get_audience_export`."""
        return await self._arun(_get_export(audience_id, run_id, export_id))

    def download_audience_export(self, export: AudienceExport, destination: Any) -> int:
        """Download a completed export from its signed URL into ``destination`` (a path, a
        ``pathlib.Path``/``ObjectStoragePath``, or a binary file object); return the bytes written.

        The signed URL is another host: the request carries no API key, only the connection's
        network settings. ``byteSize`` and ``contentSha1`` are verified (a ``Content-Length`` larger
        than ``byteSize`` is refused before the first byte, and reading stops as soon as the bytes
        exceed it, so no more than ``byteSize`` is written anywhere); a path destination receives
        the file only once it is complete and verified (written through a temporary beside it).
        """
        url = _signed_url(export)
        # The connection's proxy, CA bundle and timeout; no API key (core.network_kwargs).
        with (
            httpx.Client(**core.network_kwargs(self.settings, url)) as client,
            _Sink(export, destination) as sink,
        ):
            response = self.send(
                client.build_request("GET", url), handler=_download_response, stream=True, client=client
            )
            sink.bound(response)
            try:
                for chunk in ExportCsvStream(response, self.settings).iter_bytes(DOWNLOAD_CHUNK):
                    sink.write(chunk)
            finally:
                response.close()
            return sink.verified()

    async def adownload_audience_export(self, export: AudienceExport, destination: Any) -> int:
        """Async :meth:`download_audience_export` (the writes to ``destination`` are blocking)."""
        url = _signed_url(export)
        # The connection's proxy, CA bundle and timeout; no API key (core.network_kwargs).
        async with httpx.AsyncClient(**core.network_kwargs(await self.aget_settings(), url)) as client:
            with _Sink(export, destination) as sink:
                request = client.build_request("GET", url)
                response = await self.asend(request, handler=_download_response, stream=True, client=client)
                sink.bound(response)
                try:
                    async for chunk in ExportCsvStream(response, await self.aget_settings()).aiter_bytes(
                        DOWNLOAD_CHUNK
                    ):
                        sink.write(chunk)
                finally:
                    await response.aclose()
                return sink.verified()


def _stream_or_raise(result: httpx.Response | _Refused, audience_id: str, run_id: str) -> httpx.Response:
    if isinstance(result, _Refused):
        raise _run_error(result, audience_id, run_id)
    return result


# -- plans ----------------------------------------------------------------------------------------


def _audience_path(audience_id: Any) -> str:
    return f"{AUDIENCES_PATH}/{quote(_path_id(audience_id, 'audience_id'), safe='')}"


def _run_path(audience_id: Any, run_id: Any) -> str:
    return f"{_audience_path(audience_id)}/runs/{quote(_path_id(run_id, 'run_id'), safe='')}"


def _run_what(audience_id: str, run_id: str) -> str:
    return f"audience run {_path_id(run_id, 'run_id')} of audience {_path_id(audience_id, 'audience_id')}"


def _read_list(
    path: str, parse: Callable[[Any], tuple[list[R], Any]], what: str, page_size: int, params: dict[str, Any]
) -> Plan[list[R]]:
    """Every row of an offset-paged list, page after page (rules: :class:`paging.ListPager`)."""
    pager = paging.ListPager(page_size, what=what)
    rows: list[R] = []
    while not pager.done:
        page, meta = yield _Call("GET", path, _parsing(parse, what), {**params, **pager.params()})
        pager.feed([row.id for row in page], meta)
        rows.extend(page)
    return rows


def _list_audiences(status: str | None, page_size: int) -> Plan[list[Audience]]:
    status = validation.audience_status(status)
    size = validation.whole_number(page_size, "page_size", 1, MAX_AUDIENCES_LIMIT)
    params = {"status": status} if status else {}
    return (
        yield from _read_list(AUDIENCES_PATH, Audience.list_page_from_response, "audience list", size, params)
    )


def _get_audience(audience_id: str) -> Plan[Audience]:
    path = _audience_path(audience_id)
    return (yield _Call("GET", path, _parsing(Audience.from_response, f"audience {audience_id}")))


def _create_audience(name: str, config: Mapping[str, Any], status: str | None) -> Plan[Audience]:
    body: dict[str, Any] = {
        "name": validation.audience_name(name),
        "config": validation.audience_config(config),
    }
    status = validation.audience_status(status)
    if status is not None:
        body["status"] = status
    return (yield _Call("POST", AUDIENCES_PATH, _parsing(Audience.from_response, "audience"), json=body))


def _update_audience(
    audience_id: str, name: str | None, status: str | None, config: Mapping[str, Any] | None
) -> Plan[Audience]:
    path = _audience_path(audience_id)
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = validation.audience_name(name)
    if validation.audience_status(status) is not None:
        body["status"] = status
    if config is not None:
        body["config"] = validation.audience_config(config)
    if not body:
        raise LeadpipeConfigError("update_audience needs at least one of name, status, config")
    what = f"audience {audience_id}"
    return (yield _Call("PATCH", path, _parsing(Audience.from_response, what), json=body))


def _delete_audience(audience_id: str) -> Plan[dict[str, Any]]:
    return (yield _Call("DELETE", _audience_path(audience_id), _opaque(f"audience {audience_id}")))


def _create_run(audience_id: str, key: str | None) -> Plan[AudienceRun]:
    path = f"{_audience_path(audience_id)}/runs"
    # The key makes this POST replay-safe, so the core's retry policy retries it (core.replay_safe).
    headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key(key) if key is not None else str(uuid.uuid4())}
    parse = _parsing(AudienceRun.from_response, f"audience {audience_id}")

    def handler(response: httpx.Response, settings: ApiSettings) -> AudienceRun:
        run: AudienceRun = parse(response, settings)
        # 201 Created: a new run; 200: the run this key made before ("reusing the same key
        # returns the same run"; the contract shows no status codes, this is the HTTP meaning).
        run._existing = response.status_code == 200
        return run

    return (yield _Call("POST", path, handler, json={"runType": "manual"}, headers=headers))


def _list_runs(
    audience_id: str, limit: int | None, page_size: int = MAX_RUNS_LIMIT
) -> Plan[list[AudienceRun]]:
    path = f"{_audience_path(audience_id)}/runs"
    if limit is None:
        size = validation.whole_number(page_size, "page_size", 1, MAX_RUNS_LIMIT)
        parse = AudienceRun.list_page_from_response
        return (yield from _read_list(path, parse, f"run list of audience {audience_id}", size, {}))
    params = {"limit": validation.whole_number(limit, "limit", 1, MAX_RUNS_LIMIT)}
    return (
        yield _Call("GET", path, _parsing(AudienceRun.list_from_response, f"audience {audience_id}"), params)
    )


def _find_run(audience_id: str, run_id: str) -> Plan[AudienceRun | None]:
    runs = yield from _list_runs(audience_id, MAX_RUNS_LIMIT)
    return next((run for run in runs if run.id == run_id), None)


def _results_page(audience_id: str, run_id: str, limit: int, offset: int) -> Plan[AudienceResultsPage]:
    page = yield from _results_answer(audience_id, run_id, limit, offset)
    if isinstance(page, _Refused):
        raise _run_error((yield from _explained(page, audience_id, run_id)), audience_id, run_id)
    return page


def _results_answer(
    audience_id: str, run_id: str, limit: int, offset: int
) -> Plan[AudienceResultsPage | _Refused]:
    path = f"{_run_path(audience_id, run_id)}/results"
    limit = validation.whole_number(limit, "limit", 1, MAX_RESULTS_LIMIT)
    offset = validation.whole_number(offset, "offset", 0)
    handler = _results(_run_what(audience_id, run_id), limit=limit, offset=offset)
    return (yield _Call("GET", path, handler, {"limit": limit, "offset": offset}))


def _explained(refused: _Refused, audience_id: str, run_id: str) -> Plan[_Refused]:
    """A 409 whose body did not carry the run's state: the runs list has it (if still listed)."""
    if refused.run is not None and refused.status:
        return refused
    try:
        run = yield from _find_run(audience_id, run_id)
    except LeadpipeError:
        return refused  # the 409 is the news; a failed lookup must not replace it
    if run is None:
        return refused
    return _Refused(
        run, run.status.value, run.error_code or refused.code, run.error_message or refused.message
    )


def _get_run(audience_id: str, run_id: str) -> Plan[AudienceRun]:
    audience_id, run_id = _path_id(audience_id, "audience_id"), _path_id(run_id, "run_id")
    answer = yield from _results_answer(audience_id, run_id, 1, 0)
    seen = answer.run if isinstance(answer, (AudienceResultsPage, _Refused)) else None
    if isinstance(answer, AudienceResultsPage) and not answer.ready:
        return _with_audience(answer.run, audience_id)
    full = yield from _find_run(audience_id, run_id)
    if full is not None:
        return full
    if seen is not None:
        return _with_audience(seen, audience_id)
    assert isinstance(answer, _Refused)
    raise _run_error(answer, audience_id, run_id)


def _with_audience(run: AudienceRun, audience_id: str) -> AudienceRun:
    # The run inside a results answer omits audienceId; the caller knows it.
    return run if run.audience_id else run.model_copy(update={"audience_id": audience_id})


def _cancel_run(audience_id: str, run_id: str) -> Plan[dict[str, Any]]:
    return (yield _Call("DELETE", _run_path(audience_id, run_id), _opaque(_run_what(audience_id, run_id))))


def _stats(audience_id: str, run_id: str) -> Plan[AudienceRunStats]:
    path = f"{_run_path(audience_id, run_id)}/stats"
    what = _run_what(audience_id, run_id)
    answer = yield _Call("GET", path, _completed_only(AudienceRunStats.from_response, what))
    if isinstance(answer, _Refused):
        raise _run_error((yield from _explained(answer, audience_id, run_id)), audience_id, run_id)
    return answer  # type: ignore[no-any-return]


def _export_csv(audience_id: str, run_id: str) -> _Call:
    path = f"{_run_path(audience_id, run_id)}/export.csv"
    return _Call("GET", path, _csv_stream(_run_what(audience_id, run_id)), headers={"Accept": "text/csv"})


def _create_export(audience_id: str, run_id: str) -> Plan[AudienceExport]:
    path = f"{_run_path(audience_id, run_id)}/exports"
    what = _run_what(audience_id, run_id)
    answer = yield _Call("POST", path, _completed_only(AudienceExport.from_response, what))
    if isinstance(answer, _Refused):
        raise _run_error((yield from _explained(answer, audience_id, run_id)), audience_id, run_id)
    return answer  # type: ignore[no-any-return]


def _get_export(audience_id: str, run_id: str, export_id: str) -> Plan[AudienceExport]:
    path = f"{_run_path(audience_id, run_id)}/exports/{quote(_path_id(export_id, 'export_id'), safe='')}"
    what = f"export {export_id} of {_run_what(audience_id, run_id)}"
    return (yield _Call("GET", path, _parsing(AudienceExport.from_response, what)))


__all__ = ["AudiencesHookMixin", "ExportCsvStream", "idempotency_key"]
