"""LeadpipeHook: the ``leadpipe`` connection, and sync + async access to the Leadpipe API."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from functools import cached_property
from typing import Any, TypeVar

import httpx
import tenacity
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, mask_secret, redact

from airflow_provider_leadpipe import UI_FIELD_BEHAVIOUR
from airflow_provider_leadpipe.exceptions import TRANSIENT_ERRORS, LeadpipeError
from airflow_provider_leadpipe.hooks import identification, paging, redaction, retry
from airflow_provider_leadpipe.hooks.audiences import AudiencesHookMixin
from airflow_provider_leadpipe.hooks.body import Unreadable, bound_body
from airflow_provider_leadpipe.hooks.identification import ACCOUNT_PATH, PIXELS_PATH
from airflow_provider_leadpipe.hooks.paging import VisitorPager
from airflow_provider_leadpipe.hooks.plans import Call, Plan, Steps, single
from airflow_provider_leadpipe.hooks.responses import (
    Handler,
    answer,
    failed_attempt,
    handle_response,
    parsing,
)
from airflow_provider_leadpipe.hooks.settings import ApiSettings, client_kwargs
from airflow_provider_leadpipe.hooks.single_flight import single_flight
from airflow_provider_leadpipe.models import AccountStatus, Pixel, VisitorPage
from airflow_provider_leadpipe.models.pixels import create_pixel_body, if_exists_policy, update_pixel_body
from airflow_provider_leadpipe.utils import validation

#: ``test_connection`` must answer quickly in the UI: one try, short timeout.
TEST_CONNECTION_TIMEOUT = 10.0

T = TypeVar("T")


class LeadpipeHook(AudiencesHookMixin, BaseHook):
    """Talk to Leadpipe's Identification API and Orbit intent audiences through a ``leadpipe``
    connection (the audience methods come from :class:`AudiencesHookMixin`).

    The API key is the connection's password; the base URL its host (default
    ``https://api.aws53.cloud``). Requests are retried on network errors, timeouts, HTTP 429
    and 5xx with exponential backoff, honouring ``Retry-After``; 401/403 fail at once.

    Behind a corporate proxy, the connection's ``proxy`` extra (a URL) and ``ca_bundle`` extra (a
    PEM file, e.g. for a TLS-inspecting proxy) apply to every request; without ``proxy`` the
    environment's ``HTTPS_PROXY`` / ``NO_PROXY`` do.

    :param leadpipe_conn_id: the connection id.
    :param timeout: per-request timeout in seconds: bounds each network operation and the time
        until the answer's last byte (default: the connection's ``timeout`` extra, else 30).
    :param max_retries: retries of a transient failure (default: the ``max_retries`` extra, else 3).
    :param retry_backoff: first backoff delay in seconds; doubles per retry up to 30 s, with jitter.
    """

    conn_name_attr = "leadpipe_conn_id"
    default_conn_name = "leadpipe_default"
    conn_type = "leadpipe"
    hook_name = "Leadpipe"

    def __init__(
        self,
        leadpipe_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_backoff: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.leadpipe_conn_id = leadpipe_conn_id
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "retry_backoff": retry_backoff,
        }
        self._settings: ApiSettings | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(leadpipe_conn_id={self.leadpipe_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form for Airflow < 3.2 (3.2+ reads the same data from provider info)."""
        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    # -- settings -----------------------------------------------------------------------------

    @property
    def settings(self) -> ApiSettings:
        """Settings from the connection (looked up once, synchronously)."""
        if self._settings is None:
            conn = self.get_connection(self.leadpipe_conn_id)
            settings = ApiSettings.from_connection(conn, conn.extra_dejson, **self._overrides)
            for secret in _unregistered(settings.secrets()):
                mask_secret(secret)
            self._settings = settings
        return self._settings

    def redact(self, text: str) -> str:
        """``text`` without the API key (a no-op until the connection has been read)."""
        return text if self._settings is None else redaction.redact(text, self._settings)

    async def aget_settings(self) -> ApiSettings:
        """Settings from the connection, looked up without blocking the event loop.

        Hooks of one connection (with the same overrides) that ask in one pass of the event loop
        share one lookup, so a triggerer starting thousands of triggers on one connection does not
        look it up thousands of times. A lookup that has started is never joined: whatever a caller
        gets was read after it asked (a key rotated in between is never handed to a later caller).
        Nothing is kept once a lookup completes: a later call reads the connection again.
        """
        if self._settings is None:
            key = (self.leadpipe_conn_id, *map(repr, self._overrides.values()))  # any value hashes
            self._settings = await single_flight(key, self._aread_settings)
        return self._settings

    async def _aread_settings(self) -> ApiSettings:
        # Imported here: a DAG file importing the hook never reads a connection asynchronously.
        from airflow.providers.common.compat.connection import get_async_extra_dejson

        conn = await self._aget_leadpipe_connection()
        extra = await get_async_extra_dejson(conn)
        settings = ApiSettings.from_connection(conn, extra, **self._overrides)
        for secret in _unregistered(settings.secrets()):  # as in :attr:`settings`
            await _amask_secret(secret)
        return settings

    async def _aget_leadpipe_connection(self) -> Any:
        from airflow.providers.common.compat.connection import get_async_connection

        try:
            return await get_async_connection(self.leadpipe_conn_id, hook=self)
        except AirflowNotFoundException:
            from airflow_provider_leadpipe.utils import compat  # the version workarounds' one place

            return await compat.aget_connection_in_inline_trigger_runner(self, self.leadpipe_conn_id)

    # -- clients ------------------------------------------------------------------------------

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(**client_kwargs(self.settings))

    def get_conn(self) -> httpx.Client:
        """The hook's keep-alive ``httpx.Client`` (created once, reused for every call)."""
        return self._client

    async def aget_conn(self) -> httpx.AsyncClient:
        """The hook's ``httpx.AsyncClient`` for the running event loop (created once per loop)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop or self._aclient.is_closed:
            self._aclient = httpx.AsyncClient(**client_kwargs(await self.aget_settings()))
            self._aclient_loop = loop
        return self._aclient

    def close(self) -> None:
        """Close the sync client, if one was opened."""
        if "_client" in self.__dict__:
            self.__dict__.pop("_client").close()

    async def aclose(self) -> None:
        """Close the async client, if one was opened on this loop."""
        client, self._aclient = self._aclient, None
        if client is not None and self._aclient_loop is asyncio.get_running_loop():
            await client.aclose()

    def __enter__(self) -> LeadpipeHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LeadpipeHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests: the two paths differ only where they await ---------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        parse: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Any:
        """Send a request with retries; return the JSON payload or raise a typed LeadpipeError.

        :param parse: turns the payload into the result (e.g. ``AccountStatus.from_response``),
            inside the answer: a body it refuses leaves no copy in the error's traceback
            (see :func:`~airflow_provider_leadpipe.hooks.responses.answer`).
        """
        return self._run(single(Call(method, path, parsing(parse), params, json, headers)))

    async def arequest(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        parse: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Any:
        """Async :meth:`request`: the same retries, errors and payload, without blocking the loop."""
        return await self._arun(single(Call(method, path, parsing(parse), params, json, headers)))

    def _run(self, plan: Plan[T]) -> T:
        """Run ``plan`` (see :mod:`~airflow_provider_leadpipe.hooks.plans`): the sync driver."""
        with Steps(plan) as steps:
            while (call := steps.call) is not None:
                try:
                    request = call.build(self.get_conn())
                    steps.result = self.send(request, handler=call.handler, stream=call.stream)
                except LeadpipeError as error:  # the plan may explain or absorb a failed call
                    steps.failed(error)
                else:
                    steps.answered()
            return steps.value  # type: ignore[no-any-return]

    async def _arun(self, plan: Plan[T]) -> T:
        """Async :meth:`_run`: the async driver."""
        with Steps(plan) as steps:
            while (call := steps.call) is not None:
                try:
                    request = call.build(await self.aget_conn())
                    steps.result = await self.asend(request, handler=call.handler, stream=call.stream)
                except LeadpipeError as error:
                    steps.failed(error)
                else:
                    steps.answered()
            return steps.value  # type: ignore[no-any-return]

    def send(
        self,
        request: httpx.Request,
        *,
        handler: Handler = handle_response,
        stream: bool = False,
        client: httpx.Client | None = None,
    ) -> Any:
        """Send a built request under the retry policy and return ``handler(response, settings)``
        (the result, or a typed error; a transient one is retried when
        :func:`~airflow_provider_leadpipe.hooks.retry.replay_safe` or nothing was processed). With
        ``stream=True`` a 200 answer is handed over unread (the caller closes it)."""
        client, settings = client or self.get_conn(), self.settings
        try:  # the first attempt runs outside tenacity: see retry.replay_first_failure
            return answer(handler, self._send(client, request, settings, stream=stream), settings)
        except TRANSIENT_ERRORS as exc:
            failure = exc
        for attempt in tenacity.Retrying(**retry.policy(settings, request)):
            with attempt:
                retry.replay_first_failure(attempt, failure)
                result = answer(handler, self._send(client, request, settings, stream=stream), settings)
        return result

    async def asend(
        self,
        request: httpx.Request,
        *,
        handler: Handler = handle_response,
        stream: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> Any:
        """Async :meth:`send`."""
        client, settings = client or await self.aget_conn(), await self.aget_settings()
        try:
            return answer(handler, await self._asend(client, request, settings, stream=stream), settings)
        except TRANSIENT_ERRORS as exc:
            failure = exc
        async for attempt in tenacity.AsyncRetrying(**retry.policy(settings, request)):
            with attempt:
                retry.replay_first_failure(attempt, failure)
                result = answer(
                    handler, await self._asend(client, request, settings, stream=stream), settings
                )
        return result

    @staticmethod
    def _send(
        client: httpx.Client, request: httpx.Request, settings: ApiSettings, *, stream: bool = False
    ) -> httpx.Response:
        """One attempt, read in full within ``settings.timeout`` and
        :data:`~airflow_provider_leadpipe.hooks.body.MAX_ANSWER_BYTES` (decoded); a failure becomes
        what :func:`~airflow_provider_leadpipe.hooks.responses.failed_attempt` says.

        With ``stream=True`` a 200 answer is returned unread and open (no whole-answer deadline:
        a long download is bounded per read by the timeout instead).
        """
        started, response = time.monotonic(), None
        try:
            response = client.send(request, stream=True)
            if stream and response.status_code == 200:
                return response
            try:
                bound_body(response, started=started, timeout=settings.timeout).read()
            finally:
                response.close()
            return response
        except (httpx.TransportError, Unreadable) as exc:
            outcome = failed_attempt(exc, request, response, settings)
        if isinstance(outcome, httpx.Response):
            return outcome
        raise outcome  # out here, httpx's error (its text may quote the server) is not its context

    @staticmethod
    async def _asend(
        client: httpx.AsyncClient, request: httpx.Request, settings: ApiSettings, *, stream: bool = False
    ) -> httpx.Response:
        """Async :meth:`_send`."""
        started, response = time.monotonic(), None
        try:
            response = await client.send(request, stream=True)
            if stream and response.status_code == 200:
                return response
            try:
                await bound_body(response, started=started, timeout=settings.timeout).aread()
            finally:
                await response.aclose()
            return response
        except (httpx.TransportError, Unreadable) as exc:
            outcome = failed_attempt(exc, request, response, settings)
        if isinstance(outcome, httpx.Response):
            return outcome
        raise outcome  # out here, httpx's error (its text may quote the server) is not its context

    # -- endpoints ----------------------------------------------------------------------------

    def get_account_status(self) -> AccountStatus:
        """``GET /v1/data/account``: organization health, credits, pixels and intent slots."""
        return self._run(identification.account_status())

    async def aget_account_status(self) -> AccountStatus:
        """Async :meth:`get_account_status`."""
        return await self._arun(identification.account_status())

    # -- visitors: GET /v1/data, page by page (paging rules in hooks/paging.py) ----------------

    def iter_visitors(
        self, timeframe: str | None = None, domain: str | None = None, email: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every identified visitor matching the filters, fetched lazily one page (50) at a time.

        Records are the API's own JSON objects, unchanged. Arguments are checked at once, before
        any request.

        :param timeframe: ``24h``, ``7d``, ``14d``, ``30d``, ``90d`` or ``all``; None: the API default.
        :param domain: only visitors of this tracked domain.
        :param email: one person's visit journey.
        :raises LeadpipeConfigError: for a bad filter value.
        """
        return paging.records(self.iter_visitor_pages(timeframe, domain, email), "records")

    def iter_visitor_pages(
        self, timeframe: str | None = None, domain: str | None = None, email: str | None = None
    ) -> Iterator[VisitorPage]:
        """Like :meth:`iter_visitors`, one non-empty :class:`VisitorPage` at a time."""
        pager = VisitorPager(validation.visitor_query(timeframe, domain, email))
        return paging.read_pages(pager, lambda number: self._run(identification.visitor_page(pager, number)))

    def aiter_visitors(
        self,
        timeframe: str | None = None,
        domain: str | None = None,
        email: str | None = None,
        *,
        concurrency: int = 1,
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`iter_visitors`: the same records in the same order.

        :param concurrency: pages requested at once (1-16). Pages are still yielded in order, and at
            most ``concurrency`` pages are held in memory.
        """
        pages = self.aiter_visitor_pages(timeframe, domain, email, concurrency=concurrency)
        return paging.arecords(pages, "records")

    def aiter_visitor_pages(
        self,
        timeframe: str | None = None,
        domain: str | None = None,
        email: str | None = None,
        *,
        concurrency: int = 1,
    ) -> AsyncGenerator[VisitorPage, None]:
        """Async :meth:`iter_visitor_pages`, optionally reading up to ``concurrency`` pages ahead."""
        pager = VisitorPager(validation.visitor_query(timeframe, domain, email))
        fetch = lambda number: self._arun(identification.visitor_page(pager, number))  # noqa: E731
        return paging.aread_pages(pager, fetch, validation.concurrency(concurrency))

    # -- pixels: GET/POST /v1/data/pixels, PATCH /v1/data/pixels/{id} -------------------------

    def list_pixels(self) -> list[Pixel]:
        """Every tracking pixel of the organization (the endpoint has no paging or filters).

        :raises LeadpipeResponseError: when the answer says it holds only part of the list
            (``meta.total`` above its rows, ``meta.hasMore``, a ``meta.nextCursor``).
        """
        return self._run(identification.list_pixels())

    def create_pixel(
        self,
        domain: str,
        name: str | None = None,
        included_paths: list[str] | None = None,
        excluded_paths: list[str] | None = None,
        *,
        if_exists: str = "error",
    ) -> Pixel:
        """Create the pixel for ``domain`` (Leadpipe allows one per domain).

        ``POST`` is not idempotent: it is retried only when the request certainly did not reach
        the server. With ``if_exists="return"`` a 409 ("Pixel already exists for this domain") is
        answered by listing the pixels and returning the existing one, unchanged, which makes the
        call safe to repeat. ``name`` and the path lists are then *not* applied; use
        :meth:`update_pixel` for the path lists.

        :param included_paths: track only these path prefixes (each starts with ``/``, 2-500 chars; <= 50).
        :param excluded_paths: track everything except these prefixes. Exclusive with ``included_paths``.
        :param if_exists: ``"error"`` (raise :class:`LeadpipeConflictError`) or ``"return"``.
        :raises LeadpipeConfigError: for an argument Leadpipe would reject, before anything is sent.
        """
        body = create_pixel_body(domain, name, included_paths, excluded_paths)
        return self._run(identification.create_pixel(body, if_exists_policy(if_exists)))

    def update_pixel(
        self,
        pixel_id: str,
        status: str | None = None,
        included_paths: list[str] | None = None,
        excluded_paths: list[str] | None = None,
    ) -> Pixel:
        """Pause or activate a pixel, or set its path filters. Only what is given is changed.

        For each path list: ``None`` leaves it as it is, ``[]`` clears it (sent as JSON ``null``),
        a non-empty list replaces it. The two lists are exclusive, but one may be set while the
        other is cleared.

        :param status: ``"active"`` or ``"paused"``.
        :raises LeadpipeConfigError: for a bad argument, or when nothing would change.
        :raises LeadpipeNotFoundError: for an unknown pixel id.
        """
        path = f"{PIXELS_PATH}/{validation.path_id('pixel_id', pixel_id)}"
        body = update_pixel_body(status, included_paths, excluded_paths)
        return self._run(single(Call("PATCH", path, parsing(Pixel.from_response), json=body)))  # type: ignore[no-any-return]

    def test_connection(self) -> tuple[bool, str]:
        """Check the key against the authenticated account endpoint; never raises."""
        try:
            settings = self.settings
            # The connection's own network settings (proxy, CA bundle), one quick try.
            quick = dataclasses.replace(
                settings, timeout=min(settings.timeout, TEST_CONNECTION_TIMEOUT), max_retries=0
            )
            with httpx.Client(**client_kwargs(quick)) as client:
                request = client.build_request("GET", ACCOUNT_PATH)
                handler = parsing(AccountStatus.from_response)
                status = answer(handler, self._send(client, request, quick), quick)
        except Exception as exc:
            return False, self.redact(str(exc) or type(exc).__name__)
        credits = status.credits
        left = "unlimited" if credits.remaining is None else f"{credits.remaining:g}"
        organization = status.organization  # the API's own text: redacted like any answer
        return True, self.redact(
            f"Connected to {organization.name} ({organization.status}): {left} credits left"
        )


def _unregistered(secrets: tuple[str, ...]) -> list[str]:
    """Those of ``secrets`` that the secrets masker does not already hide whole, to register.

    Airflow registers the connection's password as stored when it reads the connection, so the key
    is registered again only in a distinct stripped form, and the proxy's password (an extra,
    which Airflow masks only under sensitive key names) once. Each registration is one more of
    Airflow 3's DEBUG ``MaskSecret`` lines, which quote the value (docs/security.md).
    """
    return [secret for secret in secrets if redact(secret) != "***"]


async def _amask_secret(secret: str) -> None:
    """``mask_secret`` for async code: Airflow 3.1+ tells the supervisor without blocking the loop."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # Airflow 2.x / 3.0: masking is process-local, nothing to await
        mask_secret(secret)
        return
    await amask_secret(secret)
