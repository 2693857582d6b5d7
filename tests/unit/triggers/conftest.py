from __future__ import annotations

import contextlib
import logging

import pytest

from tests.unit.triggers.account_api import WallClock

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


@pytest.fixture
def wall_clock(monkeypatch) -> WallClock:
    """The triggers' wall clock, frozen until the test advances it (see WallClock)."""
    return WallClock.install(monkeypatch)
