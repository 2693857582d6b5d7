"""An export download never writes more than the export's ``byteSize``, over real loopback HTTP,
sync and async.

The size is known before the first byte: a ``Content-Length`` larger than ``byteSize`` is refused
before any byte is written, and a body that does not announce its size (or comes compressed) stops
as soon as the bytes exceed ``byteSize``. Each case downloads into a file object that counts what
it was given (nothing past ``byteSize``), and into a path that held yesterday's file (still there,
no temporary left beside it).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zlib
from pathlib import Path

import httpx
import pytest
import respx

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AudienceExport
from tests.hardening.figures import record
from tests.hardening.loopback import Raw, Reply, ScriptedServer
from tests.unit.models.test_audiences import EXPORT

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
#: What the export says it is: 10 bytes (the issue's case).
EXPECTED = b"email\na@b\n"
#: What the server sends instead.
SENT = 8 * MiB


class Counting(io.RawIOBase):
    """A binary destination that keeps only the number of bytes it was given."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.size += len(data)
        return len(data)


def _export(url: str) -> AudienceExport:
    data = json.loads(json.dumps(EXPORT))
    data["data"]["downloadUrl"] = url
    data["data"]["export"].update(
        {"byteSize": len(EXPECTED), "contentSha1": hashlib.sha1(EXPECTED).hexdigest()}
    )
    return AudienceExport.from_response(data)


def _answer(case: str) -> Raw:
    body = EXPECTED + b"x" * (SENT - len(EXPECTED))
    headers = {"Content-Type": "text/csv"}
    if case == "gzip":
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        body = compressor.compress(body) + compressor.flush()
        headers["Content-Encoding"] = "gzip"
    data = Reply(200, body, headers).encode()
    if case == "no Content-Length":  # the body ends when the server closes the connection
        head, _, rest = data.partition(b"\r\n\r\n")
        head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"Content-Length"))
        data = head + b"\r\n\r\n" + rest
    return Raw(data)


def _download(mode: str, hook: LeadpipeHook, export: AudienceExport, destination: object) -> int:
    if mode == "sync":
        return hook.download_audience_export(export, destination)
    return asyncio.run(hook.adownload_audience_export(export, destination))


@pytest.mark.parametrize("case", ["Content-Length", "no Content-Length", "gzip"])
def test_a_download_larger_than_byte_size_stops_at_byte_size(mode, conn_to, tmp_path: Path, case):
    hook = LeadpipeHook(conn_to("http://127.0.0.1:9"), max_retries=0)
    target = tmp_path / "people.csv"
    target.write_bytes(b"yesterday's file\n")
    counted = Counting()
    with ScriptedServer(default=_answer(case)) as server:
        export = _export(f"{server.url}/file/people.csv?Authorization=signed")
        for destination in (counted, target):
            with pytest.raises(LeadpipeResponseError, match=r"more than byteSize \(10 bytes\)") as caught:
                _download(mode, hook, export, destination)
            assert "signed" not in str(caught.value)
    at_once = case == "Content-Length"
    assert counted.size == 0 if at_once else counted.size <= len(EXPECTED), counted.size
    assert target.read_bytes() == b"yesterday's file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["people.csv"], "no temporary left behind"
    assert len(server.requests) == 2, "one request per download, not retried"
    record(
        "data",
        f"export download of {SENT // MiB} MiB ({case}) for byteSize 10: LeadpipeResponseError, "
        f"{counted.size} bytes written{' (refused before reading)' if at_once else ''}, target unchanged",
        mode=mode,
        requests=1,
    )


def test_a_download_of_byte_size_is_written(mode, conn_to, tmp_path: Path):
    hook = LeadpipeHook(conn_to("http://127.0.0.1:9"), max_retries=0)
    with ScriptedServer(default=Reply(200, EXPECTED, {"Content-Type": "text/csv"})) as server:
        export = _export(f"{server.url}/file/people.csv")
        assert _download(mode, hook, export, tmp_path / "people.csv") == len(EXPECTED)
    assert (tmp_path / "people.csv").read_bytes() == EXPECTED


class _Spy(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that records whether anyone read it."""

    read = False

    def __iter__(self):
        self.read = True
        yield EXPECTED

    async def __aiter__(self):
        self.read = True
        yield EXPECTED


def test_a_content_length_larger_than_byte_size_is_refused_unread(mode, conn_to, tmp_path: Path):
    hook = LeadpipeHook(conn_to("http://127.0.0.1:9"), max_retries=0)
    export = _export("https://f005.backblazeb2.com/file/people.csv?Authorization=signed")
    spy = _Spy()
    with respx.mock() as mock:
        answer = httpx.Response(200, headers={"Content-Length": str(64 * MiB)}, stream=spy)
        mock.get(url__startswith="https://f005.backblazeb2.com").mock(return_value=answer)
        with pytest.raises(LeadpipeResponseError, match=r"more than byteSize \(10 bytes\)"):
            _download(mode, hook, export, tmp_path / "people.csv")
    assert not spy.read, "the body was read before the announced size was refused"
    assert list(tmp_path.iterdir()) == []
