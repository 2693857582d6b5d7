"""A scripted ``GET /v1/data/account`` on a respx router, for trigger and sensor tests.

Each call answers the next scripted answer; the last one repeats. An answer is an account
``data`` dict (200), an int (that HTTP status), an ``httpx.Response``, or a callable taking the
request and returning one of those. ``switch()`` replaces the script mid-test.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import respx

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from tests.unit.conftest import BASE_URL, account_data

RESETS_AT = "2026-12-01T00:00:00Z"


async def eventually(condition: Any, timeout: float = 10, interval: float = 0.01) -> None:
    """Wait until ``condition()`` is true (checked every ``interval`` s), failing after ``timeout`` s.

    For "it has polled N times" checks: a fixed sleep is flaky when the machine is loaded.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout} s"
        await asyncio.sleep(interval)


class WallClock:
    """A stand-in for the ``time`` module of a trigger: ``time()`` stands still until ``advance()``.

    A trigger compares its deadline with ``time.time()``; with this clock the deadline passes when the
    test says so (e.g. after the N-th check), however fast or slow the machine is. Everything else
    (``monotonic``, ``sleep``) is the real ``time`` module, so the event loop runs as usual.
    """

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __getattr__(self, name: str):
        return getattr(time, name)

    @classmethod
    def install(cls, monkeypatch: Any) -> WallClock:
        """A frozen clock in place of the ``time`` module of the account and audience triggers."""
        from airflow_provider_leadpipe.triggers import account, audiences

        clock = cls()
        monkeypatch.setattr(account, "time", clock)
        monkeypatch.setattr(audiences, "time", clock)
        return clock


def account(remaining: float | None = 480, *, healthy: bool = True, org_status: str = "trial", **overrides):
    """An account ``data`` dict with ``remaining`` credits of 500."""
    if remaining is None:
        credits = {"used": 0, "limit": None, "remaining": None, "percentUsed": None, "resetsAt": None}
    else:
        used = 500 - remaining
        credits = {
            "used": used,
            "limit": 500,
            "remaining": remaining,
            "percentUsed": used / 5,
            "resetsAt": RESETS_AT,
        }
    return account_data(
        healthy=healthy, organization={"name": "Acme", "status": org_status}, credits=credits, **overrides
    )


def make_trigger(
    *,
    min_credits=100,
    interval=0.05,
    timeout=600.0,
    conn_id="leadpipe_default",
    clock: Any = time,
    **condition,
) -> LeadpipeAccountTrigger:
    """A trigger waiting for ``min_credits`` (and ``condition``), with a deadline ``timeout`` s away
    on ``clock`` (the ``time`` module, or the tests' ``wall_clock``). The default deadline is only a
    safety net: a test whose outcome is a timeout sets its own."""
    return LeadpipeAccountTrigger(
        leadpipe_conn_id=conn_id,
        **AccountCondition(min_credits=min_credits, **condition).to_dict(),
        poll_interval=interval,
        deadline=clock.time() + timeout,
    )


class AccountAPI:
    def __init__(self, router: respx.MockRouter, *answers: Any, base_url: str = BASE_URL, delay: float = 0.0):
        self.answers = list(answers) or [account()]
        self.delay = delay
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.keys: list[str] = []
        side_effect = self._answer_slowly if delay else self._answer
        self.route = router.get(f"{base_url}/v1/data/account").mock(side_effect=side_effect)

    def switch(self, *answers: Any) -> None:
        """Answer ``answers`` from the next call on."""
        self.answers = [None] * self.calls + list(answers)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        index = min(self.calls, len(self.answers) - 1)
        self.calls += 1
        self.keys.append(request.headers.get("X-API-Key", ""))
        answer = self.answers[index]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, httpx.Response):
            return answer
        if isinstance(answer, int):
            return httpx.Response(
                answer, json={"error": {"code": "HTTP_ERROR", "message": f"status {answer}"}}
            )
        return httpx.Response(200, json={"data": answer})

    async def _answer_slowly(self, request: httpx.Request) -> httpx.Response:
        # Only for async clients (triggers): respx cannot await a side effect for a sync client.
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return self._answer(request)
