"""The little HTTP plumbing the sandbox needs on top of raw ASGI: requests, responses, errors.

Why raw ASGI rather than Starlette (both are in Airflow 3's dependency tree): on this project's
2-core reference machine, uvicorn + httptools + uvloop answered a minimal account endpoint at
~23,000 req/s as a raw ASGI app and ~9,000-12,000 req/s through Starlette's router and
JSONResponse (a light client in another process, 16-64 keep-alive connections). The sandbox shares
those two cores with the Airflow triggerer during benchmarks, so per-request CPU matters; and the
API surface is a few route templates plus a small control API, so the routing Starlette would bring is
a dictionary lookup here. Starlette is also absent from Airflow 2.x installs, which the ``sandbox``
extra (uvicorn only) supports.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
ERROR_CODE = "HTTP_ERROR"


@dataclass
class Request:
    """An HTTP request with its body read."""

    method: str
    path: str
    segments: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    @classmethod
    async def read(cls, scope: Scope, receive: Receive) -> Request:
        """Parse the scope; read the body of requests that may carry one."""
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path.split(b"?", 1)[0]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        body = b""
        if method in ("POST", "PUT", "PATCH"):
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
        return cls(
            method=method,
            path=scope["path"],
            # Split before unquoting so that an API key containing "/" can still be addressed.
            segments=[unquote(part) for part in raw_path.decode("latin-1").split("/") if part],
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
            headers=headers,  # ASGI servers lower-case header names
            body=body,
        )

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not JSON."""
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """A complete response."""

    status: int
    body: bytes = b""
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def start_message(self, content_length: int | None = None) -> Message:
        length = len(self.body) if content_length is None else content_length
        headers = [
            (b"content-type", self.content_type),
            (b"content-length", str(length).encode()),
            *self.headers,
        ]
        return {"type": "http.response.start", "status": self.status, "headers": headers}

    async def send(self, send: Send) -> None:
        await send(self.start_message())
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class StreamingResponse:
    """A response whose body is produced chunk by chunk while it is sent (never held whole).

    ``content_length`` is announced when known; otherwise the server sends the body chunked.
    """

    status: int
    chunks: Iterable[bytes]
    content_type: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_length: int | None = None

    def start_message(self) -> Message:
        headers = [(b"content-type", self.content_type), *self.headers]
        if self.content_length is not None:
            headers.append((b"content-length", str(self.content_length).encode()))
        return {"type": "http.response.start", "status": self.status, "headers": headers}

    async def send(self, send: Send, *, stop_after: int | None = None) -> None:
        """Send the body; with ``stop_after``, only that many chunks (the caller then drops the line)."""
        await send(self.start_message())
        for sent, chunk in enumerate(self.chunks):
            if stop_after is not None and sent >= stop_after:
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0)  # let other connections in between chunks of a long export
        await send({"type": "http.response.body", "body": b""})


def json_response(status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    """A JSON response (compact separators, like most APIs)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, JSON, headers or [])


def error_response(
    status: int,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    code: str = ERROR_CODE,
    extra: dict[str, Any] | None = None,
) -> Response:
    """The error envelope ``{"error": {"code": "HTTP_ERROR", "message": ...}}`` (plus ``extra`` keys)."""
    return json_response(status, {"error": {"code": code, "message": message}, **(extra or {})}, headers)


class HttpError(Exception):
    """Raised by handlers to answer with the error envelope (``code`` and ``extra`` top-level keys)."""

    def __init__(
        self, status: int, message: str, *, code: str = ERROR_CODE, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra

    def response(self) -> Response:
        return error_response(self.status, self.message, code=self.code, extra=self.extra)
