"""Network faults on real loopback sockets: each ends in a typed error or a successful retry, in
bounded time. pytest-timeout is only the backstop; every test asserts its own elapsed time.

No packet leaves the machine: servers listen on 127.0.0.1, and DNS failure is produced by the
suite's network guard (``socket.getaddrinfo`` patched to fail for any non-loopback name).
"""

from __future__ import annotations

import errno
import socket
import time

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeConnectionError, LeadpipeResponseError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from tests.hardening.conftest import call
from tests.hardening.figures import record
from tests.hardening.loopback import (
    BlackholeListener,
    Dribble,
    Hang,
    Reply,
    ResetMidBody,
    ScriptedServer,
    Truncate,
)
from tests.ports import RefusedPort
from tests.unit.conftest import account_data

pytestmark = pytest.mark.timeout(30)

OK = Reply(200, {"data": account_data()})
TIMEOUT = 0.4  # the hook's per-request timeout in these tests
BACKOFF = 0.01
#: A per-request timeout no failure that ends "at once" comes near, however slow the machine: waiting
#: for it even once takes three times the bound those tests assert (elapsed < WAITED_OUT / 3).
WAITED_OUT = 30.0


def hook(conn_id: str, **kwargs) -> LeadpipeHook:
    return LeadpipeHook(conn_id, **{"timeout": TIMEOUT, "retry_backoff": BACKOFF, "max_retries": 2, **kwargs})


def timed(mode: str, the_hook: LeadpipeHook, **kwargs) -> tuple[object, float]:
    started = time.monotonic()
    try:
        result = call(mode, the_hook, **kwargs)
    except Exception as exc:
        result = exc
    return result, time.monotonic() - started


FAULTS = {
    # name: (action, the httpx error class the message must name)
    "reset mid-body": (ResetMidBody(), ("ReadError", "RemoteProtocolError")),
    "truncated body": (Truncate(), ("RemoteProtocolError",)),
    "read timeout": (Hang(), ("ReadTimeout",)),
    "slow drip": (Dribble(interval=TIMEOUT / 4), ("ReadTimeout",)),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_persistent_fault_is_a_typed_error_in_bounded_time(mode, conn_to, fault):
    action, names = FAULTS[fault]
    with ScriptedServer(default=action) as server:
        error, elapsed = timed(mode, hook(conn_to(server.url)))
    assert isinstance(error, LeadpipeConnectionError), error
    assert any(f"failed: {name}" in str(error) for name in names), str(error)
    assert "GET /v1/data/account to 127.0.0.1" in str(error)
    assert len(server.requests) == 3  # max_retries=2
    # three attempts, each bounded by the timeout, plus tiny backoffs
    assert elapsed < 3 * TIMEOUT + 1.0, elapsed
    record("network", f"{fault}, every attempt", mode=mode, requests=3, retries=2, elapsed=elapsed)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_transient_fault_is_retried_to_success(mode, conn_to, fault):
    action, _ = FAULTS[fault]
    with ScriptedServer([action, OK]) as server:
        payload, elapsed = timed(mode, hook(conn_to(server.url)))
    assert isinstance(payload, dict) and payload["data"]["healthy"] is True, payload
    assert len(server.requests) == 2
    assert elapsed < TIMEOUT + 1.0, elapsed
    record("network", f"{fault}, once, then 200", mode=mode, requests=2, retries=1, elapsed=elapsed)


def test_truncated_json_in_a_complete_message_is_a_response_error(mode, conn_to):
    body = b'{"data": {"healthy": true, "organization": {"na'
    with ScriptedServer(default=Reply(200, body)) as server:
        error, elapsed = timed(mode, hook(conn_to(server.url)))
    assert isinstance(error, LeadpipeResponseError), error
    assert "not JSON" in str(error)
    assert len(server.requests) == 1  # the server meant it: retrying would not help
    record("network", "complete message, truncated JSON", mode=mode, requests=1, retries=0, elapsed=elapsed)


def test_connect_timeout(mode, conn_to):
    with BlackholeListener() as blackhole:
        error, elapsed = timed(mode, hook(conn_to(f"http://127.0.0.1:{blackhole.port}")))
    assert isinstance(error, LeadpipeConnectionError), error
    assert "failed: ConnectTimeout" in str(error)
    assert error.request_sent is False
    assert 3 * TIMEOUT <= elapsed < 3 * TIMEOUT + 1.0, elapsed
    record("network", "connect timeout (full accept queue)", mode=mode, retries=2, elapsed=elapsed)


def test_connection_refused(mode, conn_to):
    with RefusedPort() as refused:
        error, elapsed = timed(mode, hook(conn_to(f"http://127.0.0.1:{refused.port}"), timeout=WAITED_OUT))
    assert isinstance(error, LeadpipeConnectionError), error
    assert "failed: ConnectError" in str(error)
    assert error.request_sent is False
    assert elapsed < WAITED_OUT / 3, elapsed  # at once: no attempt waits for its timeout
    record("network", "connection refused", mode=mode, retries=2, elapsed=elapsed)


def test_a_refused_port_stays_refused_and_taken_while_held():
    with RefusedPort() as refused:
        for _ in range(2):  # refused every time, not only on the first SYN
            with socket.socket() as client, pytest.raises(ConnectionRefusedError):
                client.connect(("127.0.0.1", refused.port))
        with socket.socket() as other, pytest.raises(OSError) as taken:
            other.bind(("127.0.0.1", refused.port))
        assert taken.value.errno == errno.EADDRINUSE


def test_dns_failure(mode, conn_to, network_guard):
    error, elapsed = timed(mode, hook(conn_to("https://api.leadpipe-hardening.invalid"), timeout=WAITED_OUT))
    assert isinstance(error, LeadpipeConnectionError), error
    assert "to api.leadpipe-hardening.invalid failed: ConnectError" in str(error)
    assert error.request_sent is False
    # Three lookups were attempted and every one was answered by the guard, never by a resolver.
    assert network_guard.refused == ["api.leadpipe-hardening.invalid"] * 3
    assert elapsed < WAITED_OUT / 3, elapsed  # at once: no attempt waits for its timeout
    record("network", "DNS failure (getaddrinfo → gaierror)", mode=mode, retries=2, elapsed=elapsed)
