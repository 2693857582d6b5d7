"""The sandbox's ASGI application: Leadpipe's Data API, the Orbit intent API and its download host,
injected faults, and the control API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError

from leadpipe_sandbox.asgi import (
    HttpError,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    StreamingResponse,
    error_response,
    json_response,
)
from leadpipe_sandbox.control import CONTROL_PREFIX, ControlApi
from leadpipe_sandbox.faults import DEFAULT_STATUS, Fault
from leadpipe_sandbox.orbit_api import DOWNLOAD_PREFIX, OrbitApi, download_response
from leadpipe_sandbox.orbit_api import route as orbit_route
from leadpipe_sandbox.orbit_config import PUBLIC
from leadpipe_sandbox.pixels import (
    PixelConflict,
    PixelCreate,
    PixelUpdate,
    validation_message,
)
from leadpipe_sandbox.state import (
    INVALID_KEY,
    MISSING_KEY,
    KeyState,
    SandboxOptions,
    SandboxState,
)
from leadpipe_sandbox.timeutil import http_date, utcnow
from leadpipe_sandbox.visitors import PAGE_SIZE, TIMEFRAMES

ACCOUNT_ROUTE = "GET /v1/data/account"
PIXEL_ROUTE = "/v1/data/pixels/{id}"
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>\n"
)
MALFORMED_JSON = b'{"data": {"healthy": true, "organization": {"name": "Sandbox'
WRONG_SHAPE: dict[str, Any] = {"data": {"status": "ok"}}
#: Fault kinds that let the request be answered normally and then spoil the delivery.
MISDELIVERED = ("truncated", "lost_response")

AnyResponse = Response | StreamingResponse
Handler = Callable[[Request, KeyState, list[str]], AnyResponse | Awaitable[AnyResponse]]


class DeliberateDisconnect(Exception):
    """Raised after half a body was sent, so that the server drops the connection (truncated fault)."""


class QuietDeliberateDisconnects(logging.Filter):
    """Keeps uvicorn from logging a traceback for every deliberately truncated response."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DeliberateDisconnect))


class SandboxApp:
    """ASGI application; one instance holds all sandbox state."""

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.state = SandboxState(options or SandboxOptions())
        self.control = ControlApi(self.state)
        self.orbit = OrbitApi(self.state)
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "/v1/data/account"): self._account,
            ("GET", "/v1/data"): self._visitors,
            ("GET", "/v1/data/pixels"): self._list_pixels,
            ("POST", "/v1/data/pixels"): self._create_pixel,
            ("PATCH", PIXEL_ROUTE): self._update_pixel,
            **self.orbit.routes,
        }
        self._paths = {path for _, path in self._routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is switched off; websockets are not served
            return
        request = await Request.read(scope, receive)
        if request.segments[:1] == [CONTROL_PREFIX]:
            await self.control.handle(request).send(send)
        elif request.segments[:1] == [DOWNLOAD_PREFIX]:
            await self._serve_download(request, send)
        else:
            await self._serve_data(request, send)

    # -- Data API ------------------------------------------------------------------------------

    async def _serve_data(self, request: Request, send: Send) -> None:
        api_key = request.headers.get("x-api-key")
        key = self.state.keys.get(api_key) if api_key is not None else None
        label = key.api_key if key else (MISSING_KEY if api_key is None else INVALID_KEY)
        route_path, params = _route(request)
        fault = key.faults.next(request.method, request.path) if key else None
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind not in MISDELIVERED:
            response: AnyResponse = _fault_response(fault)
        else:
            answer = self._answer(request, key, route_path, params)
            # Most handlers answer at once; the few that await (in a thread) return an awaitable.
            response = answer if isinstance(answer, (Response, StreamingResponse)) else await answer
        self.state.record(label, f"{request.method} {route_path}", response.status)
        if fault is None:
            await response.send(send)
        else:
            await _deliver(response, fault, send)

    async def _serve_download(self, request: Request, send: Send) -> None:
        """A stored export from its signed URL: no API key is needed, and whether one came is noted."""
        found = self.state.find_export(request.segments[-1].removesuffix(".csv"))
        if found is None:
            response: AnyResponse = json_response(
                404, {"status": 404, "code": "not_found", "message": "File not present"}
            )
            fault = None
        else:
            key, export = found
            fault = key.faults.next(request.method, request.path)
            if fault is not None and fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
                fault = None
            if fault is not None and fault.kind not in MISDELIVERED:
                response = _fault_response(fault)
            else:
                response = download_response(request, export, self.state.url_secret, key.orbit.seed)
        self.state.downloads.append(
            {
                "path": request.path,
                "host": request.headers.get("host"),
                "apiKeySent": "x-api-key" in request.headers or "authorization" in request.headers,
                "status": response.status,
            }
        )
        await _deliver(response, fault, send)

    def _answer(
        self, request: Request, key: KeyState | None, route_path: str, params: list[str]
    ) -> AnyResponse | Awaitable[AnyResponse]:
        public = self._routes.get((request.method, route_path)) if route_path in PUBLIC else None
        if key is None and public is not None and "x-api-key" not in request.headers:
            try:  # topic discovery: no key needed
                return public(request, None, params)  # type: ignore[arg-type,return-value]
            except HttpError as exc:
                return exc.response()
        if key is None:
            return error_response(401, "Invalid API key")
        if key.config.revoked:
            return error_response(403, "API key has been revoked")
        handler = self._routes.get((request.method, route_path))
        if handler is None:
            if route_path in self._paths:
                return error_response(405, "Method not allowed")
            return error_response(404, "Not found")
        key.tick(utcnow(), account_call=handler == self._account)
        if handler != self._account and not key.usable:
            return error_response(403, f"Organization is {key.config.organization.status}")
        try:
            response = handler(request, key, params)
        except HttpError as exc:
            return exc.response()
        if isinstance(response, (Response, StreamingResponse)):
            return response
        return _caught(response)

    def _account(self, request: Request, key: KeyState, params: list[str]) -> Response:
        return json_response(200, {"data": key.account()})

    def _visitors(self, request: Request, key: KeyState, params: list[str]) -> Response:
        query = request.query
        page_text = query.get("page", "1")
        if not page_text.isdigit() or int(page_text) < 1:
            raise HttpError(400, "page must be an integer >= 1")
        timeframe = query.get("timeframe", "all")
        if timeframe not in TIMEFRAMES:
            raise HttpError(400, f"timeframe must be one of {', '.join(TIMEFRAMES)}")
        page = int(page_text)
        records, total = key.visitors.query(
            page=page,
            timeframe=timeframe,
            domain=query.get("domain"),
            email=query.get("email"),
            now=key.config.visitors_as_of or utcnow(),
        )
        return json_response(
            200, {"data": records, "meta": {"total": total, "page": page, "perPage": PAGE_SIZE}}
        )

    def _list_pixels(self, request: Request, key: KeyState, params: list[str]) -> Response:
        return json_response(200, {"data": [pixel.row_json() for pixel in key.pixels]})

    def _create_pixel(self, request: Request, key: KeyState, params: list[str]) -> Response:
        body = _validated(request, PixelCreate)
        try:
            pixel = key.pixels.create(body, utcnow())
        except PixelConflict:
            raise HttpError(409, "Pixel already exists for this domain") from None
        return json_response(201, {"data": pixel.created_json()})

    def _update_pixel(self, request: Request, key: KeyState, params: list[str]) -> Response:
        pixel = key.pixels.get(params[0])
        if pixel is None:
            raise HttpError(404, "Pixel not found")
        body = _validated(request, PixelUpdate)
        try:
            key.pixels.update(pixel, body, utcnow())
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return json_response(200, {"data": pixel.updated_json()})


async def _caught(answer: Awaitable[AnyResponse]) -> AnyResponse:
    """The answer of an async handler, with its ``HttpError`` turned into the error envelope."""
    try:
        return await answer
    except HttpError as exc:
        return exc.response()


async def _deliver(response: AnyResponse, fault: Fault | None, send: Send) -> None:
    """Send the response, or misdeliver it as a truncated or lost-response fault says."""
    if fault is None or fault.kind not in MISDELIVERED:
        await response.send(send)
        return
    if fault.kind == "lost_response":
        await _drop_connection(send)
        return
    # Truncated: announce the full length (or stream chunked), send half of the body, drop the line.
    if isinstance(response, StreamingResponse):
        first = next(iter(response.chunks), b"")
        await send(response.start_message())
        body = first[: len(first) // 2]
    else:
        await send(response.start_message())
        body = response.body[: len(response.body) // 2]
    await send({"type": "http.response.body", "body": body, "more_body": True})
    raise DeliberateDisconnect


async def _drop_connection(send: Send) -> None:
    """Close the connection without a byte of response (the action was already performed).

    ASGI has no message for this, and an exception before the response starts makes uvicorn answer
    500; so the transport is reached through uvicorn's ``send`` (a bound method of its
    request-response cycle) and aborted. Under another server this falls back to that 500.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise DeliberateDisconnect
    transport.abort()
    for _ in range(100):  # uvicorn marks the cycle disconnected on the next loop turns
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0)


def _route(request: Request) -> tuple[str, list[str]]:
    """The route template of a request (``/v1/data/pixels/{id}`` for any pixel) and its path parameters."""
    if request.path.startswith("/v1/intent/"):
        orbit = orbit_route(request.segments)
        if orbit is not None:
            return orbit
    if len(request.segments) == 4 and request.segments[:3] == ["v1", "data", "pixels"]:
        return PIXEL_ROUTE, request.segments[3:]
    return request.path, []


def _validated(request: Request, model: type[PixelCreate] | type[PixelUpdate]) -> Any:
    try:
        payload = request.json()
    except ValueError:
        raise HttpError(400, "Request body must be JSON") from None
    if not isinstance(payload, dict):
        raise HttpError(400, "Request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise HttpError(400, validation_message(exc)) from None


def _fault_response(fault: Fault) -> Response:
    """The response of every fault kind except slow and truncated, which change a normal answer."""
    status = fault.status or DEFAULT_STATUS.get(fault.kind, 200)
    if fault.kind == "malformed_json":
        return Response(200, MALFORMED_JSON)
    if fault.kind == "html":
        return Response(status, HTML_PAGE, b"text/html; charset=utf-8")
    if fault.kind == "wrong_shape":
        return json_response(200, WRONG_SHAPE if fault.body is None else fault.body)
    headers = []
    if fault.retry_after is not None:
        if fault.retry_after_format == "http-date":
            value = http_date(utcnow() + timedelta(seconds=fault.retry_after))
        else:
            value = str(fault.retry_after)
        headers.append((b"retry-after", value.encode()))
    return error_response(status, fault.message or HTTPStatus(status).phrase, headers)


def create_app(options: SandboxOptions | None = None) -> SandboxApp:
    """The ASGI app (also ``uvicorn --factory leadpipe_sandbox.server:create_app``)."""
    return SandboxApp(options)
