"""A corporate network on loopback: a TLS front with a private CA, and a forward proxy.

- :class:`TlsFront` terminates TLS with a certificate from a throw-away CA (``trustme``) and relays
  the decrypted bytes to a plain loopback server (the API sandbox), so the sandbox is reached over
  real HTTPS that only a client trusting that CA accepts, as behind a TLS-inspecting proxy.
- :class:`ConnectProxy` is a forward proxy that only opens ``CONNECT host:port`` tunnels, as
  corporate HTTPS proxies do, and records every byte a client sent it: the request heads it
  parsed, and the raw stream (tunnel contents included) so a test can search it for the key.
  It can require ``Proxy-Authorization`` (407 otherwise).

Written here rather than taken from PyPI (proxy.py, pproxy): the tests need the exact bytes the
proxy received, which those servers do not expose, and forty lines of asyncio are easier to audit.
Both run on one event loop in a daemon thread, so sync and async clients can use them alike.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import threading
from collections.abc import Coroutine
from typing import Any


class _LoopThread:
    """An event loop in a daemon thread; servers are started and stopped on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def serve(self, handler: Any, ssl_context: ssl.SSLContext | None = None) -> int:
        async def start() -> int:
            async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                task = asyncio.current_task()
                assert task is not None
                self._tasks.add(task)
                try:
                    await handler(reader, writer)
                except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                    pass  # a client that gave up (e.g. refused our certificate)
                finally:
                    writer.close()
                    self._tasks.discard(task)

            server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=ssl_context)
            self._servers.append(server)
            return server.sockets[0].getsockname()[1]

        return self.call(start())

    def stop(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: bytearray | None) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while chunk := await reader.read(65536):
            if seen is not None:
                seen.extend(chunk)
            writer.write(chunk)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.write_eof()


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int, seen: bytearray | None
) -> None:
    upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
    try:
        await asyncio.gather(
            _pipe(reader, upstream_writer, seen), _pipe(upstream_reader, writer, None), return_exceptions=True
        )
    finally:
        upstream_writer.close()


class TlsFront:
    """``https://localhost:<port>`` in front of a plain loopback server at ``target_port``."""

    def __init__(self, loop: _LoopThread, server_context: ssl.SSLContext, target_port: int):
        self.port = loop.serve(self._handle, server_context)
        self._target_port = target_port

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _relay(reader, writer, "127.0.0.1", self._target_port, None)


class ConnectProxy:
    """An HTTP forward proxy for ``CONNECT`` tunnels only, recording all it receives."""

    def __init__(self, loop: _LoopThread, credentials: tuple[str, str] | None = None):
        self._credentials = credentials
        self.port = loop.serve(self._handle)
        #: The request line and headers of every request, as received (one bytes object each).
        self.heads: list[bytes] = []
        #: Every byte clients sent, in order: heads and tunnel contents.
        self.received = bytearray()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def request_lines(self) -> list[str]:
        return [head.split(b"\r\n", 1)[0].decode("latin-1") for head in self.heads]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        self.received.extend(head)
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if self._credentials is not None:
            token = base64.b64encode(":".join(self._credentials).encode()).decode()
            if f"proxy-authorization: basic {token}".lower().encode() not in head.lower():
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="corp"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
        host, _, port = target.rpartition(":")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _relay(reader, writer, host.strip("[]"), int(port), self.received)


class CorporateNetwork:
    """A throw-away CA, a TLS front for ``target_port`` signed by it, and a proxy (see module doc)."""

    def __init__(self, ca: Any, ca_bundle: str, target_port: int, proxy_credentials: tuple[str, str] | None):
        self._loop = _LoopThread()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
        self.ca_bundle = ca_bundle
        self.front = TlsFront(self._loop, server_context, target_port)
        self.proxy = ConnectProxy(self._loop)
        self.auth_proxy = ConnectProxy(self._loop, proxy_credentials)

    def close(self) -> None:
        self._loop.stop()
