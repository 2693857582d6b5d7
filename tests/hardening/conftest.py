"""Fixtures of the hardening suite, the offline network guard, and the figures table (kept per
passing test, written after the session)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_leadpipe.hooks import retry
from airflow_provider_leadpipe.hooks import settings as api_settings
from airflow_provider_leadpipe.hooks.leadpipe import ACCOUNT_PATH, LeadpipeHook
from tests.hardening.figures import FIGURES, markdown_report
from tests.unit.conftest import API_KEY

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_local(host: Any) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """Replaces ``socket.getaddrinfo``: loopback resolves, any other name fails like a DNS error.

    Nothing in this suite may send a DNS query or reach a non-loopback address; the lookups it
    refused are kept in ``refused`` so a test can prove a lookup was attempted (and stopped).
    """

    def __init__(self, real: Callable[..., Any]):
        self.real = real
        self.refused: list[str] = []

    def __call__(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        if _is_local(host):
            return self.real(host, *args, **kwargs)
        self.refused.append(host.decode() if isinstance(host, bytes) else str(host))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (hardening network guard)")


@pytest.fixture(autouse=True)
def network_guard(monkeypatch) -> NetworkGuard:
    guard = NetworkGuard(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", guard)
    return guard


@pytest.fixture
def conn_to(monkeypatch) -> Callable[..., str]:
    """Point an env-var ``leadpipe`` connection at a URL: ``conn_to(server.url)`` -> conn id."""

    def make(host: str, conn_id: str = "leadpipe_hardening", password: str = API_KEY, **fields: Any) -> str:
        conn = {"conn_type": "leadpipe", "host": host, "password": password, **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return make


@pytest.fixture(params=["sync", "async"])
def mode(request) -> str:
    """Run a case through the sync and the async request path."""
    return request.param


def call(mode: str, hook: LeadpipeHook, method: str = "GET", path: str = ACCOUNT_PATH, **kwargs: Any) -> Any:
    """``hook.request`` or ``hook.arequest`` (in a fresh event loop), same arguments."""
    if mode == "sync":
        with hook:
            return hook.request(method, path, **kwargs)

    async def run() -> Any:
        async with hook:
            return await hook.arequest(method, path, **kwargs)

    return asyncio.run(run())


class SleepRecorder:
    """Stands in for tenacity's sleep: records every wait the retry policy asks for, waits 0 s."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sync(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def async_(self, seconds: float) -> None:
        self.waits.append(seconds)


class TimedSleepRecorder(SleepRecorder):
    """Records every wait the retry policy asks for, and really waits it."""

    def sync(self, seconds: float) -> None:
        super().sync(seconds)
        time.sleep(seconds)

    async def async_(self, seconds: float) -> None:
        await super().async_(seconds)
        await asyncio.sleep(seconds)


@pytest.fixture
def timed_sleeps(monkeypatch, mode) -> SleepRecorder:
    """The retry policy's waits, recorded and really waited: a test checks the wait asked for
    exactly, and the real wait the server sees from below (a busy machine only makes it longer)."""
    return _sleep_through(monkeypatch, mode, TimedSleepRecorder())


@pytest.fixture
def recorded_sleeps(monkeypatch, mode) -> SleepRecorder:
    """Keep the real retry policy (stop, wait, retry, logging) but record its waits instead of
    sleeping, so long waits (a capped Retry-After, 10 retries) are checked in no time."""
    return _sleep_through(monkeypatch, mode, SleepRecorder())


def _sleep_through(monkeypatch, mode: str, recorder: SleepRecorder) -> SleepRecorder:
    """The real retry policy, with its waits handed to ``recorder`` (sync or async by ``mode``)."""
    real = retry.retry_kwargs

    def retry_kwargs(settings: api_settings.ApiSettings, method: str, **options: Any) -> dict[str, Any]:
        sleep = recorder.sync if mode == "sync" else recorder.async_
        return {**real(settings, method, **options), "sleep": sleep}

    monkeypatch.setattr(retry, "retry_kwargs", retry_kwargs)
    return recorder


_REPORTS: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Keep the figures a test recorded only if its body passed (failed or skipped: dropped)."""
    FIGURES.discard()
    try:
        result = yield
    except BaseException:
        FIGURES.discard()
        raise
    FIGURES.commit()
    return result


@pytest.fixture(scope="session", autouse=True)
def figures_report(tmp_path_factory) -> Any:
    """After the session, write the figures table to ``hardening-report.md`` under pytest's tmp dir
    (or to ``$LEADPIPE_HARDENING_FIGURES``)."""
    yield
    if FIGURES:
        target = Path(
            os.environ.get("LEADPIPE_HARDENING_FIGURES")
            or tmp_path_factory.mktemp("hardening") / "hardening-report.md"
        )
        target.write_text(markdown_report())
        _REPORTS.append(target)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FIGURES:
        return
    terminalreporter.section("Leadpipe hardening figures")
    terminalreporter.write_line(FIGURES.markdown_table())
    for target in _REPORTS:
        terminalreporter.write_line(f"(written to {target})")
