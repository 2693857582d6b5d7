from __future__ import annotations

import pytest
import structlog.testing


class TaskLog:
    """Messages logged through Airflow's (structlog) task and trigger loggers."""

    def __init__(self, entries: list[dict]):
        self._entries = entries

    @property
    def messages(self) -> list[str]:
        return [str(entry.get("event")) for entry in self._entries]

    def waiting(self) -> list[str]:
        return [m for m in self.messages if m.startswith("waiting:")]

    def __str__(self) -> str:
        return "\n".join(self.messages)


@pytest.fixture
def task_log():
    with structlog.testing.capture_logs() as entries:
        yield TaskLog(entries)
