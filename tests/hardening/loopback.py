"""A scripted HTTP/1.1 server on a real loopback socket, for network-fault tests.

Each request is answered by the next action of a script (then by ``default``): a normal reply, a
reset mid-body, a truncated body, silence (read timeout) or a slow drip. The server records every
request it sees, with monotonic timestamps, so tests count requests server-side and measure the
client's waits between them. It runs its own event loop in a daemon thread, so it serves sync and
async clients alike; every wait inside it is bounded by ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """A complete response (``Connection: close``). ``body`` may be bytes or a JSON-able value."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = "X"  # the status line's reason phrase

    def encode(self) -> bytes:
        body = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        return _head(self.status, headers, len(body), self.reason) + body


@dataclass(frozen=True)
class Raw:
    """Send these bytes as they are (e.g. a malformed status or header line), then close."""

    data: bytes


@dataclass(frozen=True)
class ResetMidBody:
    """Send the head and part of the body, then abort the connection with a TCP RST."""

    sent: bytes = b'{"data": {"healthy": tr'
    declared: int = 400


@dataclass(frozen=True)
class Truncate:
    """Send the head and part of the body, then close cleanly (FIN) before ``declared`` bytes."""

    sent: bytes = b'{"data": {"healthy": tr'
    declared: int = 400


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer (the client's read timeout must fire)."""


@dataclass(frozen=True)
class Dribble:
    """Send the head, then one body byte every ``interval`` seconds, for ever."""

    interval: float = 0.1


Action = Reply | Raw | ResetMidBody | Truncate | Hang | Dribble
#: A script entry: an action, or a function of the request number (0-based) returning one at
#: answer time (e.g. to put the current time into a Retry-After date).
Step = Action | Callable[[int], Action]


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    received_at: float  # time.monotonic() when the request head was complete
    action: Action | None = None
    answered_at: float | None = None  # time.monotonic() once the answer was written


def _head(status: int, headers: dict[str, str], length: int, reason: str = "X") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {length}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ScriptedServer:
    """``with ScriptedServer([Reply(429, ...), Reply(200, ...)]) as server: server.url ...``"""

    def __init__(self, script: list[Step] | None = None, default: Step = Reply(404)):
        self.script: list[Step] = list(script or [])
        self.default = default
        self.requests: list[Seen] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="scripted-server", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    def _next(self) -> tuple[int, Action]:
        with self._lock:
            number = len(self.requests) - 1
            step = self.script.pop(0) if self.script else self.default
        return number, step(number) if callable(step) else step

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            seen = _parse(head)
            length = int(seen.headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            with self._lock:
                self.requests.append(seen)
            _, action = self._next()
            seen.action = action
            await self._act(action, reader, writer)
            seen.answered_at = time.monotonic()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            if not writer.is_closing():
                writer.close()

    async def _act(self, action: Action, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if isinstance(action, (Reply, Raw)):
            writer.write(action.encode() if isinstance(action, Reply) else action.data)
            await writer.drain()
            writer.close()
        elif isinstance(action, (ResetMidBody, Truncate)):
            writer.write(_head(200, {"Content-Type": "application/json"}, action.declared) + action.sent)
            await writer.drain()
            await asyncio.sleep(0.05)  # let the client read the head and the first bytes
            if isinstance(action, ResetMidBody):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()  # close with linger 0 = RST
            else:
                writer.close()
        elif isinstance(action, Hang):
            await reader.read()  # returns when the client gives up and closes
        elif isinstance(action, Dribble):
            writer.write(_head(200, {"Content-Type": "application/json"}, 1_000_000))
            while not writer.is_closing():
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(action.interval)


def _parse(head: bytes) -> Seen:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return Seen(method=method, path=path, headers=headers, received_at=time.monotonic())


class BlackholeListener:
    """A loopback port whose accept queue is full, so a new connection's SYN is dropped and
    ``connect()`` waits until the client's connect timeout (Linux drops SYNs on a full queue)."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []

    def __enter__(self) -> BlackholeListener:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._fillers.append(filler)
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in [*self._fillers, self._listener]:
            sock.close()
