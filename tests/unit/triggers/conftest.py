from __future__ import annotations

import contextlib
import logging
import time

import pytest

try:
    from structlog.testing import capture_logs
except ImportError:  # Airflow 2.x: task and trigger loggers are plain stdlib loggers
    capture_logs = None


class TaskLog:
    """Messages logged through Airflow's task and trigger loggers (structlog on 3.x, stdlib on 2.x)."""

    def __init__(self, entries: list[dict], caplog: pytest.LogCaptureFixture):
        self._entries = entries
        self._caplog = caplog

    @property
    def messages(self) -> list[str]:
        return [str(entry.get("event")) for entry in self._entries] + [
            record.getMessage() for record in self._caplog.records
        ]

    def waiting(self) -> list[str]:
        return [m for m in self.messages if m.startswith("waiting:")]

    def __str__(self) -> str:
        return "\n".join(self.messages)


@pytest.fixture
def task_log(caplog):
    caplog.set_level(logging.INFO)
    with capture_logs() if capture_logs else contextlib.nullcontext([]) as entries:
        yield TaskLog(entries, caplog)


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


@pytest.fixture
def wall_clock(monkeypatch) -> WallClock:
    """The triggers' wall clock, frozen until the test advances it (see WallClock)."""
    from airflow_provider_leadpipe.triggers import audiences, leadpipe

    clock = WallClock()
    monkeypatch.setattr(leadpipe, "time", clock)
    monkeypatch.setattr(audiences, "time", clock)
    return clock
