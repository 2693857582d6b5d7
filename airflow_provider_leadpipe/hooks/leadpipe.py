"""LeadpipeHook: the ``leadpipe`` connection, and sync + async access to the Leadpipe API."""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from typing import Any

import httpx
import tenacity
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_leadpipe import UI_FIELD_BEHAVIOUR
from airflow_provider_leadpipe.hooks import core
from airflow_provider_leadpipe.hooks.core import ApiSettings
from airflow_provider_leadpipe.models import AccountStatus

ACCOUNT_PATH = "/v1/data/account"
#: ``test_connection`` must answer quickly in the UI: one try, short timeout.
TEST_CONNECTION_TIMEOUT = 10.0


class LeadpipeHook(BaseHook):
    """Talk to Leadpipe's Identification API through a ``leadpipe`` connection.

    The API key is the connection's password; the base URL its host (default
    ``https://api.aws53.cloud``). Requests are retried on network errors, timeouts, HTTP 429
    and 5xx with exponential backoff, honouring ``Retry-After``; 401/403 fail at once.

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
            self._settings = ApiSettings.from_connection(conn, conn.extra_dejson, **self._overrides)
        return self._settings

    async def aget_settings(self) -> ApiSettings:
        """Settings from the connection, looked up without blocking the event loop."""
        if self._settings is None:
            conn = await self._aget_leadpipe_connection()
            extra = await get_async_extra_dejson(conn)
            self._settings = ApiSettings.from_connection(conn, extra, **self._overrides)
        return self._settings

    async def _aget_leadpipe_connection(self) -> Any:
        try:
            return await get_async_connection(self.leadpipe_conn_id, hook=self)
        except AirflowNotFoundException:
            # Airflow 3.3.2's inline trigger runner (dag.test / `airflow dags test`) cannot reach
            # the metadata DB from async code (apache/airflow#57145): fall back to the sync lookup
            # in a worker thread. A connection that really does not exist raises again here.
            from asgiref.sync import sync_to_async

            return await sync_to_async(self.get_connection)(self.leadpipe_conn_id)

    # -- clients ------------------------------------------------------------------------------

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(**core.client_kwargs(self.settings))

    def get_conn(self) -> httpx.Client:
        """The hook's keep-alive ``httpx.Client`` (created once, reused for every call)."""
        return self._client

    async def aget_conn(self) -> httpx.AsyncClient:
        """The hook's ``httpx.AsyncClient`` for the running event loop (created once per loop)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop or self._aclient.is_closed:
            self._aclient = httpx.AsyncClient(**core.client_kwargs(await self.aget_settings()))
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
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]:
        """Send a request with retries; return the JSON payload or raise a typed LeadpipeError."""
        client, settings = self.get_conn(), self.settings
        request = client.build_request(method, path, params=params, json=json)
        for attempt in tenacity.Retrying(**core.retry_kwargs(settings, method)):
            with attempt:
                payload = core.handle_response(self._send(client, request, settings), settings)
        return payload

    async def arequest(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]:
        """Async :meth:`request`: the same retries, errors and payload, without blocking the loop."""
        client, settings = await self.aget_conn(), await self.aget_settings()
        request = client.build_request(method, path, params=params, json=json)
        async for attempt in tenacity.AsyncRetrying(**core.retry_kwargs(settings, method)):
            with attempt:
                payload = core.handle_response(await self._asend(client, request, settings), settings)
        return payload

    @staticmethod
    def _send(client: httpx.Client, request: httpx.Request, settings: ApiSettings) -> httpx.Response:
        """One attempt, read in full within ``settings.timeout``; network errors become typed."""
        started = time.monotonic()
        try:
            response = client.send(request, stream=True)
            try:
                core.limit_body_time(response, started, settings).read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise core.transport_error(exc, request) from None
        return response

    @staticmethod
    async def _asend(
        client: httpx.AsyncClient, request: httpx.Request, settings: ApiSettings
    ) -> httpx.Response:
        """Async :meth:`_send`."""
        started = time.monotonic()
        try:
            response = await client.send(request, stream=True)
            try:
                await core.limit_body_time(response, started, settings).aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise core.transport_error(exc, request) from None
        return response

    # -- endpoints ----------------------------------------------------------------------------

    def get_account_status(self) -> AccountStatus:
        """``GET /v1/data/account``: organization health, credits, pixels and intent slots."""
        return AccountStatus.from_response(self.request("GET", ACCOUNT_PATH))

    async def aget_account_status(self) -> AccountStatus:
        """Async :meth:`get_account_status`."""
        return AccountStatus.from_response(await self.arequest("GET", ACCOUNT_PATH))

    def test_connection(self) -> tuple[bool, str]:
        """Check the key against the authenticated account endpoint; never raises."""
        try:
            settings = self.settings
            quick = ApiSettings(
                conn_id=settings.conn_id,
                base_url=settings.base_url,
                api_key=settings.api_key,
                timeout=min(settings.timeout, TEST_CONNECTION_TIMEOUT),
                max_retries=0,
            )
            with httpx.Client(**core.client_kwargs(quick)) as client:
                response = self._send(client, client.build_request("GET", ACCOUNT_PATH), quick)
                status = AccountStatus.from_response(core.handle_response(response, quick))
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            if self._settings is not None:
                message = core.redact(message, self._settings)
            return False, message
        credits = status.credits
        left = "unlimited" if credits.remaining is None else f"{credits.remaining:g}"
        return (
            True,
            f"Connected to {status.organization.name} ({status.organization.status}): {left} credits left",
        )
