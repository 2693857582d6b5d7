"""Retry-After, backoff with jitter, bounded attempts, no retry of 401/403 or of a sent POST.

Requests are counted by a real loopback server and waits are measured between the moment the
server finished answering and the moment the retry arrived, so the figures are what a rate-limited
API would see.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import math
import time

import pytest

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAuthError,
    LeadpipeConflictError,
    LeadpipeConnectionError,
    LeadpipeNotFoundError,
    LeadpipeRateLimitError,
    LeadpipeRequestError,
    LeadpipeServerError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.hooks.settings import MAX_BACKOFF
from tests.hardening.conftest import call
from tests.hardening.figures import record
from tests.hardening.loopback import Reply, ResetMidBody, ScriptedServer
from tests.ports import RefusedPort
from tests.unit.conftest import account_data

pytestmark = pytest.mark.timeout(30)

OK = Reply(200, {"data": account_data()})
SLOW_DOWN = {"error": {"code": "HTTP_ERROR", "message": "Slow down"}}


def gaps(server: ScriptedServer) -> list[float]:
    """Seconds between the end of each answer and the arrival of the next request."""
    seen = server.requests
    return [later.received_at - earlier.answered_at for earlier, later in itertools.pairwise(seen)]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_honoured_within_10_percent(mode, conn_to, status, timed_sleeps):
    with ScriptedServer([Reply(status, SLOW_DOWN, {"Retry-After": "1"}), OK]) as server:
        # A fallback backoff of 3 s would be obvious: the 1 s must come from the header.
        started = time.monotonic()
        payload = call(mode, LeadpipeHook(conn_to(server.url), retry_backoff=3, max_retries=1))
        elapsed = time.monotonic() - started
    assert payload["data"]["healthy"] is True
    assert len(server.requests) == 2
    (waited,) = gaps(server)
    # The wait asked for is the header's, within 10 %; the server saw at least that much (a busy
    # machine only adds to it), and far less than the 3 s fallback.
    assert timed_sleeps.waits == [pytest.approx(1.0, rel=0.10)], timed_sleeps.waits
    assert 0.9 <= waited < 2.0, waited
    record(
        "retry",
        f"{status} with Retry-After: 1",
        mode=mode,
        requests=2,
        retries=1,
        waited=f"{waited:.3f} s (owed 1.000)",
        elapsed=elapsed,
    )


def test_retry_after_http_date_is_honoured_within_10_percent(mode, conn_to, timed_sleeps):
    # An HTTP-date has whole-second resolution, so the server picks the next-but-one whole second
    # and remembers how far away that was when it answered: the wait the client owes is exact.
    owed: list[float] = []

    def rate_limited(_: int) -> Reply:
        now = time.time()
        target = math.floor(now) + 2
        owed.append(target - now)  # in (1, 2] seconds
        return Reply(429, SLOW_DOWN, {"Retry-After": email.utils.formatdate(target, usegmt=True)})

    with ScriptedServer([rate_limited, OK]) as server:
        started = time.monotonic()
        call(mode, LeadpipeHook(conn_to(server.url), retry_backoff=3, max_retries=1))
        elapsed = time.monotonic() - started
    (waited,) = gaps(server)
    # The client waits until the date: what it asks for is what was owed less the time the answer
    # took to reach it; the server sees at least 90 % of what was owed (a busy machine only adds
    # to it), and far less than the 3 s fallback on top.
    [asked] = timed_sleeps.waits
    assert asked <= owed[0] + 0.01, (asked, owed)
    assert owed[0] * 0.9 <= waited < owed[0] + 1.0, (waited, owed)
    record(
        "retry",
        "429 with Retry-After: <HTTP-date>",
        mode=mode,
        requests=2,
        retries=1,
        waited=f"{waited:.3f} s (owed {owed[0]:.3f})",
        elapsed=elapsed,
    )


@pytest.mark.parametrize("header", ["3600", "http-date in 2 h"])
def test_retry_after_is_capped(mode, conn_to, recorded_sleeps, caplog, header):
    if header.startswith("http-date"):
        header = email.utils.formatdate(time.time() + 7200, usegmt=True)
    caplog.set_level(logging.WARNING, logger="airflow.providers.leadpipe")
    with ScriptedServer([Reply(429, SLOW_DOWN, {"Retry-After": header}), OK]) as server:
        call(mode, LeadpipeHook(conn_to(server.url), max_retries=1))
    # A task waits at most a minute per retry, whatever the server asks (the value itself, not the
    # module's constant: a cap raised to an hour must fail here).
    assert recorded_sleeps.waits == [60.0]
    assert len(server.requests) == 2
    assert "retry 1 of 1 in 60.0 s" in caplog.text
    kind = "seconds" if header.isdigit() else "HTTP-date"
    record(
        "retry",
        f"429 with Retry-After 2 h away ({kind}): capped",
        mode=mode,
        requests=2,
        retries=1,
        waited=f"{recorded_sleeps.waits[0]:g} s (asked)",
    )


def test_without_retry_after_the_backoff_is_exponential_with_jitter_in_real_time(mode, conn_to, timed_sleeps):
    backoff = 0.1
    with ScriptedServer([Reply(503), Reply(503), Reply(503), OK]) as server:
        started = time.monotonic()
        call(mode, LeadpipeHook(conn_to(server.url), retry_backoff=backoff, max_retries=3))
        elapsed = time.monotonic() - started
    waited = gaps(server)
    assert len(timed_sleeps.waits) == len(waited) == 3
    for attempt, (asked, wait) in enumerate(zip(timed_sleeps.waits, waited, strict=True)):
        base = backoff * 2**attempt
        # Asked: the exponential base plus at most one backoff of jitter. Seen by the server: at least
        # the base (a busy machine only adds to it; 1 s on top would be a different policy).
        assert base <= asked <= base + backoff, (attempt, timed_sleeps.waits)
        assert base <= wait < asked + 1.0, (attempt, waited, timed_sleeps.waits)
    record(
        "retry",
        f"503 x3, no Retry-After: backoff {backoff}·2^n + jitter",
        mode=mode,
        requests=4,
        retries=3,
        waited=" + ".join(f"{w:.2f}" for w in waited) + " s",
        elapsed=elapsed,
    )


def test_jitter_spreads_the_waits(mode, conn_to, recorded_sleeps):
    calls, backoff = 30, 1.0
    with ScriptedServer(default=lambda n: OK if n % 4 == 3 else Reply(503)) as server:
        hook = LeadpipeHook(conn_to(server.url), retry_backoff=backoff, max_retries=3)
        for _ in range(calls):
            call(mode, hook)
    assert len(server.requests) == 4 * calls
    waits = recorded_sleeps.waits
    jitters = [wait - backoff * 2 ** (i % 3) for i, wait in enumerate(waits)]
    assert all(0 <= j <= backoff for j in jitters), jitters
    assert len(set(jitters)) == len(jitters), "every wait should differ"
    assert min(jitters) < 0.25 * backoff and max(jitters) > 0.75 * backoff, jitters
    record(
        "retry",
        f"jitter over {calls} calls x 3 retries (backoff {backoff:g} s)",
        mode=mode,
        requests=len(server.requests),
        retries=len(waits),
        waited=f"jitter {min(jitters):.2f}-{max(jitters):.2f} s",
    )


FAILURES = {
    "503": (Reply(503), LeadpipeServerError),
    "429": (Reply(429, SLOW_DOWN), LeadpipeRateLimitError),
    "reset": (ResetMidBody(), LeadpipeConnectionError),
}


@pytest.mark.parametrize("max_retries", [0, 1, 3, 10])
@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_attempts_are_bounded(mode, conn_to, recorded_sleeps, failure, max_retries):
    action, error = FAILURES[failure]
    with ScriptedServer(default=action) as server:
        started = time.monotonic()
        with pytest.raises(error):
            call(mode, LeadpipeHook(conn_to(server.url), max_retries=max_retries))
        elapsed = time.monotonic() - started
    assert len(server.requests) == max_retries + 1
    assert len(recorded_sleeps.waits) == max_retries
    assert all(wait <= MAX_BACKOFF + 1.0 for wait in recorded_sleeps.waits), recorded_sleeps.waits
    if max_retries in (0, 10):
        record(
            "retry",
            f"always {failure}, max_retries={max_retries}",
            mode=mode,
            requests=len(server.requests),
            retries=max_retries,
            elapsed=elapsed,
        )


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_auth_failures_are_never_retried(mode, conn_to, status, method):
    from airflow.providers.common.compat.sdk import AirflowFailException

    body = {"error": {"code": "HTTP_ERROR", "message": "Invalid API key"}}
    # Even a Retry-After on the 401/403 must not cause a second request, nor a wait (30 s: far above
    # the bound below, which leaves a slow machine room for the one request).
    with ScriptedServer(default=Reply(status, body, {"Retry-After": "30"})) as server:
        started = time.monotonic()
        with pytest.raises(LeadpipeAuthError, match="Invalid API key") as info:
            call(mode, LeadpipeHook(conn_to(server.url), max_retries=10), method=method, json={})
        elapsed = time.monotonic() - started
    assert len(server.requests) == 1
    assert isinstance(info.value, AirflowFailException)
    assert elapsed < 10
    record(
        "retry",
        f"{method} → {status} (with Retry-After), max_retries=10",
        mode=mode,
        requests=1,
        retries=0,
        elapsed=elapsed,
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, LeadpipeRequestError),
        (404, LeadpipeNotFoundError),
        (409, LeadpipeConflictError),
        (422, LeadpipeRequestError),
    ],
)
def test_other_client_errors_are_not_retried(mode, conn_to, status, error):
    with ScriptedServer(default=Reply(status, {"message": "no"})) as server, pytest.raises(error):
        call(mode, LeadpipeHook(conn_to(server.url), max_retries=10))
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("action", "error", "requests"),
    [
        (Reply(500), LeadpipeServerError, 1),  # may have been processed: never replayed
        (Reply(502), LeadpipeServerError, 1),
        (ResetMidBody(), LeadpipeConnectionError, 1),  # the request left: never replayed
        (Reply(503), LeadpipeServerError, 3),  # 503: not processed, safe to resend
        (Reply(429, SLOW_DOWN), LeadpipeRateLimitError, 3),
    ],
    ids=["500", "502", "reset", "503", "429"],
)
def test_a_post_is_only_resent_when_it_cannot_have_been_processed(
    mode, conn_to, recorded_sleeps, action, error, requests
):
    with ScriptedServer(default=action) as server, pytest.raises(error):
        call(
            mode,
            LeadpipeHook(conn_to(server.url), max_retries=2),
            method="POST",
            path="/v1/data/pixels",
            json={"domain": "example.com"},
        )
    assert len(server.requests) == requests
    assert all(seen.method == "POST" for seen in server.requests)
    label = str(action.status) if isinstance(action, Reply) else "reset mid-body"
    record("retry", f"POST → {label}, max_retries=2", mode=mode, requests=requests, retries=requests - 1)


def test_a_refused_post_is_retried_because_it_never_left(mode, conn_to, recorded_sleeps):
    with RefusedPort() as refused, pytest.raises(LeadpipeConnectionError, match="ConnectError"):
        call(
            mode,
            LeadpipeHook(conn_to(f"http://127.0.0.1:{refused.port}"), max_retries=2),
            method="POST",
            path="/v1/data/pixels",
            json={"domain": "example.com"},
        )
    assert len(recorded_sleeps.waits) == 2


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (Reply(500), LeadpipeServerError),
        (Reply(502), LeadpipeServerError),
        (ResetMidBody(), LeadpipeConnectionError),
        (Reply(503), LeadpipeServerError),
        (Reply(429, SLOW_DOWN), LeadpipeRateLimitError),
    ],
    ids=["500", "502", "reset", "503", "429"],
)
def test_a_post_with_an_idempotency_key_is_resent_on_every_transient_failure(
    mode, conn_to, recorded_sleeps, action, error
):
    """The API returns the same run for the same key, so even a processed POST may be replayed."""
    with ScriptedServer(default=action) as server, pytest.raises(error):
        call(
            mode,
            LeadpipeHook(conn_to(server.url), max_retries=2),
            method="POST",
            path="/v1/intent/audiences/0f9d7a3e-5c1b-4e2a-9d8f-7a6b5c4d3e2f/runs",
            json={"runType": "manual"},
            headers={"Idempotency-Key": "dag:run:task:-1"},
        )
    assert len(server.requests) == 3
    assert {seen.headers.get("idempotency-key") for seen in server.requests} == {"dag:run:task:-1"}
    label = str(action.status) if isinstance(action, Reply) else "reset mid-body"
    record("retry", f"POST with Idempotency-Key → {label}, max_retries=2", mode=mode, requests=3, retries=2)
