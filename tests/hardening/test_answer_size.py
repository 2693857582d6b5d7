"""Every answer read whole is bounded by its decoded size, over real loopback HTTP, sync and async,
and in a trigger.

A small compressed answer can inflate a thousandfold: 0.16 MB of gzip is 160 MiB of JSON. Read
whole, one such answer grows the process by several times that (the bytes, the joined content, the
decoded text), and in a triggerer every trigger shares that process. Each case measures the peak
of what Python allocated while the hook read the answer (``tracemalloc``; the server's bytes are
made before it starts and sent as they are): it must stay within a small multiple of the bound
stated in docs/security.md (16 MiB), whatever the answer inflates to, and the call must end in a
typed error (a 5xx keeps being a retried ``LeadpipeServerError``).
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
import zlib

import httpx
import pytest
import respx

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.exceptions import LeadpipeResponseError, LeadpipeServerError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from tests.hardening.conftest import call
from tests.hardening.figures import record
from tests.hardening.loopback import Raw, Reply, ScriptedServer
from tests.unit.conftest import BASE_URL, account_data

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
#: The bound on an answer read whole, as docs/security.md states it.
BOUND = 16 * MiB
#: What the bombs inflate to: ten times the bound.
INFLATED = 10 * BOUND
#: The most a bounded read may allocate at its peak: the bytes read so far and the last decoded
#: piece (each up to the bound), the joined body (the bound again), and room for the client, the
#: loop, the server thread and what Airflow allocates meanwhile (up to 57 MiB in all was seen, on
#: Airflow 3.0.6's dependencies). An unbounded read of these answers allocates INFLATED (160 MiB).
PEAK_LIMIT = 4 * BOUND


def _padded_account(size: int) -> bytes:
    """A valid account answer of ``size`` bytes: JSON allows any amount of trailing whitespace."""
    body = json.dumps({"data": account_data()}).encode()
    return body + b" " * (size - len(body))


def _compress(data: bytes, coding: str) -> bytes:
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}[coding]
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


def _raw(status: int, body: bytes, headers: dict[str, str], *, length: bool = True) -> Raw:
    """The whole answer made now (not in the server thread while memory is traced)."""
    data = Reply(status, body, headers).encode()
    if not length:  # no Content-Length: the body ends when the server closes the connection
        head, _, rest = data.partition(b"\r\n\r\n")
        head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"Content-Length"))
        data = head + b"\r\n\r\n" + rest
    return Raw(data)


def _peak(run: object) -> tuple[object, int]:
    tracemalloc.start()
    try:
        try:
            result: object = run()  # type: ignore[operator]
        except Exception as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _hook(conn_id: str) -> LeadpipeHook:
    return LeadpipeHook(conn_id, max_retries=2, retry_backoff=0.01)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity", "identity, no Content-Length"])
def test_an_answer_larger_than_the_bound_ends_early_in_a_typed_error(mode, conn_to, coding):
    if coding.startswith("identity"):  # a plain answer just over the bound
        size, headers = BOUND + MiB, {}
        body = _padded_account(size)
    else:
        size, headers = INFLATED, {"Content-Encoding": coding}
        body = _compress(_padded_account(size), coding)
    sent = len(body)
    answer = _raw(200, body, headers, length=coding != "identity, no Content-Length")
    with ScriptedServer(default=answer) as server:
        del body
        error, peak = _peak(lambda: call(mode, _hook(conn_to(server.url))))
    assert isinstance(error, LeadpipeResponseError), error
    assert "more than 16 MiB once decoded" in str(error), str(error)
    assert peak < PEAK_LIMIT, f"peak {peak / MiB:.0f} MiB"
    assert len(server.requests) == 1, "not retried: the same answer would come again"
    record(
        "memory",
        f"2xx answer of {size / MiB:,.0f} MiB decoded ({coding}, {sent / MiB:.2f} MiB sent): "
        f"LeadpipeResponseError, peak < {PEAK_LIMIT // MiB} MiB (bound 16 MiB)",
        mode=mode,
        requests=len(server.requests),
    )


def test_an_oversized_5xx_is_still_a_retried_server_error(mode, conn_to):
    bomb = _compress(b" " * INFLATED, "gzip")
    with ScriptedServer(default=_raw(503, bomb, {"Content-Encoding": "gzip"})) as server:
        error, peak = _peak(lambda: call(mode, _hook(conn_to(server.url))))
    assert isinstance(error, LeadpipeServerError), error
    assert "more than 16 MiB once decoded" in str(error), str(error)
    assert peak < PEAK_LIMIT, f"peak {peak / MiB:.0f} MiB"
    assert len(server.requests) == 3
    record(
        "memory",
        f"503 answer of {INFLATED / MiB:,.0f} MiB decoded (gzip): LeadpipeServerError after 2 retries, "
        f"peak < {PEAK_LIMIT // MiB} MiB",
        mode=mode,
        requests=3,
        retries=2,
    )


def test_a_trigger_given_an_oversized_answer_ends_in_one_error_event(conn_to):
    """The triggerer's path: the account trigger's shared poll reads the bomb; the trigger ends in
    one ``error`` event naming the typed error, and the process did not inflate the answer."""
    bomb = _compress(_padded_account(INFLATED), "gzip")
    with ScriptedServer(default=_raw(200, bomb, {"Content-Encoding": "gzip"})) as server:
        trigger = LeadpipeAccountTrigger(
            leadpipe_conn_id=conn_to(server.url),
            **AccountCondition(min_credits=1).to_dict(),
            poll_interval=1.0,
            deadline=time.time() + 3600,
            hook_params={"max_retries": 0},
        )

        async def drain() -> list[dict[str, object]]:
            return [event.payload async for event in trigger.run()]

        events, peak = _peak(lambda: asyncio.run(drain()))
    assert isinstance(events, list), events
    assert [(e["status"], e["error"]) for e in events] == [("error", "LeadpipeResponseError")], events
    assert "more than 16 MiB once decoded" in str(events[0]["message"])
    assert peak < PEAK_LIMIT, f"peak {peak / MiB:.0f} MiB"
    record(
        "memory",
        f"trigger polling a 2xx answer of {INFLATED / MiB:,.0f} MiB decoded (gzip): one error event "
        f"(LeadpipeResponseError), peak < {PEAK_LIMIT // MiB} MiB",
        requests=len(server.requests),
        events=len(events),
    )


def test_an_answer_within_the_bound_is_read_whole(mode, conn_to):
    raw = _padded_account(BOUND // 2)
    with ScriptedServer(default=Reply(200, _compress(raw, "gzip"), {"Content-Encoding": "gzip"})) as server:
        status = call(mode, LeadpipeHook(conn_to(server.url)))
    assert status["data"] == account_data()


class _Spy(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that records whether anyone read it."""

    read = False

    def __iter__(self):
        self.read = True
        yield b"{}"

    async def __aiter__(self):
        self.read = True
        yield b"{}"


def test_a_plain_answer_announcing_more_than_the_bound_is_refused_unread(mode, conn_to):
    spy = _Spy()
    headers = {"Content-Length": str(BOUND + 1), "Content-Type": "application/json"}
    with respx.mock() as mock:
        route = mock.get(url__startswith=BASE_URL).mock(
            return_value=httpx.Response(200, headers=headers, stream=spy)
        )
        error = None
        try:
            call(mode, _hook(conn_to(BASE_URL)))
        except LeadpipeResponseError as exc:
            error = exc
    assert error is not None and "more than 16 MiB once decoded" in str(error), error
    assert not spy.read, "the body was read before the announced size was refused"
    assert route.call_count == 1
