"""The body of an answer, read within bounds: a deadline for the whole answer and a limit on its
decoded size (:func:`bound_body`)."""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

#: The most an answer read whole (every one but a streamed download) may decode to: 16 MiB, some
#: thirty times the largest real page (100 audience people or 50 visitors, ~0.5 MB).
MAX_ANSWER_BYTES = 16 * 1024 * 1024

_CLOSED = httpx.ByteStream(b"")


class Unreadable(Exception):
    """The body cannot be read within its bounds: too large once decoded, or in an encoding that
    was not asked for or is corrupt. Carries the reason, never any of the body."""


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Inflater:
    """One content coding, decoded with zlib under a bound on its output (``max_length``)."""

    __slots__ = ("_fallback", "_zlib", "coding")

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._zlib = zlib.decompressobj(_WBITS[coding])
        # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate (as httpx allows).
        self._fallback = coding == "deflate"

    def __call__(self, data: bytes, most: int) -> bytes:
        """Up to ``most`` decoded bytes of ``data``; a body that decodes to more has exceeded it."""
        try:
            out = self._zlib.decompress(data, most)
        except zlib.error:
            if not self._fallback:
                raise
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, most)
        self._fallback = self._fallback and not data
        return out


class _BoundedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body read within bounds: a deadline for the whole answer, and a limit on its
    decoded size.

    httpx's timeouts bound each socket operation, not a whole response, and it has no total
    timeout: a server that trickles a byte per read would hold a request (and a triggerer slot)
    open indefinitely. Checked per received body chunk; a chunk that never comes hits the read
    timeout. (Trickled *headers* stay bounded only by httpcore's 100 KiB header-size limit.)

    httpx decodes ``Content-Encoding`` a whole received chunk at a time, without bound: 64 KiB of
    gzip is 64 MiB decoded, and a 0.2 MB answer grew a process by 420 MB. Here the body is decoded
    under ``limit`` (zlib's ``max_length``), and reading stops with :class:`Unreadable` (or
    ``too_large()``) as soon as the decoded bytes exceed it.
    """

    def __init__(
        self,
        stream: Any,
        request: httpx.Request,
        *,
        limit: int,
        codings: list[str],
        announced: int | None = None,
        deadline: float = math.inf,
        timeout: float = 0.0,
        too_large: Callable[[], Exception] | None = None,
    ):
        self._stream, self._request, self._limit = stream, request, limit
        self._deadline, self._timeout, self._too_large = deadline, timeout, too_large
        self._size = 0
        # A plain body announced (Content-Length) larger than the bound is refused before any read.
        self._announced = announced if announced is not None and not codings else None
        # Decoded in the reverse order of application, as RFC 9110 says (and httpx does).
        unknown = [coding for coding in codings if coding not in _WBITS]
        self._unknown = unknown[0] if unknown else None
        self._inflaters = [_Inflater(coding) for coding in reversed(codings)] if not unknown else []

    def _check(self) -> None:
        if time.monotonic() > self._deadline:
            raise httpx.ReadTimeout(f"no complete answer within {self._timeout:g} s", request=self._request)
        if self._unknown is not None:
            known = re.fullmatch(r"[a-z0-9.+-]{1,20}", self._unknown)  # a coding's name, never other text
            coding = repr(self._unknown) if known else "an unknown one"
            raise Unreadable(f"a body in Content-Encoding {coding}, which was not asked for")

    def _too_much(self) -> Exception:
        if self._too_large is not None:
            return self._too_large()
        return Unreadable(f"more than {_mib(self._limit)} once decoded (the most an answer may be)")

    def _take(self, chunk: bytes) -> bytes:
        self._check()
        if self._inflaters:
            most = self._limit - self._size + 1
            for inflate in self._inflaters:
                try:
                    chunk = inflate(chunk, most)
                except zlib.error:
                    raise Unreadable(f"a body that is not valid {inflate.coding}") from None
        self._size += len(chunk)
        if self._size > self._limit:
            raise self._too_much()
        return chunk

    def _start(self) -> None:
        self._check()
        if self._announced is not None and self._announced > self._limit:
            raise self._too_much()

    def __iter__(self) -> Iterator[bytes]:
        self._start()
        for chunk in self._stream:
            yield self._take(chunk)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._start()
        async for chunk in self._stream:
            yield self._take(chunk)

    # Closing also drops the wrapped stream: httpx's stream refers back to its response, which refers
    # to this wrapper, and that reference cycle would keep the whole exchange (request, headers,
    # pool request, ~40 objects) alive until the garbage collector runs. Without it, refcounting
    # frees them at once. A closed stream is never read again (httpx raises StreamClosed first).
    def close(self) -> None:
        stream, self._stream = self._stream, _CLOSED
        stream.close()

    async def aclose(self) -> None:
        stream, self._stream = self._stream, _CLOSED
        await stream.aclose()


def _mib(size: int) -> str:
    return f"{size / 1048576:g} MiB" if size >= 1048576 else f"{size:,} bytes"


def _announced(response: httpx.Response) -> int | None:
    """The body size ``Content-Length`` announces, if it is one whole number."""
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _codings(response: httpx.Response) -> list[str]:
    """The response's content codings, taken off it: the body stream decodes them, not httpx."""
    header = response.headers.get("content-encoding")
    if not header:
        return []
    del response.headers["content-encoding"]
    return [
        coding
        for coding in (part.strip().lower() for part in header.split(","))
        if coding not in ("", "identity")
    ]


def bound_body(
    response: httpx.Response,
    *,
    limit: int = MAX_ANSWER_BYTES,
    started: float | None = None,
    timeout: float = 0.0,
    too_large: Callable[[], Exception] | None = None,
) -> httpx.Response:
    """Make reading ``response`` (sent with ``stream=True``) stop as soon as its body decodes to
    more than ``limit`` bytes (with ``too_large()`` raised, or :class:`Unreadable` by default), and,
    given ``started`` (``time.monotonic()`` before sending), fail ``timeout`` seconds after it, so
    the timeout bounds the whole answer. A streamed download passes its known size and no deadline
    (a long download is bounded per read by the client's timeout instead).

    Also forgets the server's reason phrase (``HTTP/1.1 500 <anything>``): it would show in the
    response's ``repr``, which tracebacks that print locals show; the standard phrase is used."""
    response.extensions = {k: v for k, v in response.extensions.items() if k != "reason_phrase"}
    response.stream = _BoundedStream(
        response.stream,
        response.request,
        limit=limit,
        codings=_codings(response),
        announced=_announced(response),
        deadline=math.inf if started is None else started + timeout,
        timeout=timeout,
        too_large=too_large,
    )
    return response
