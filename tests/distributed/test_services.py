"""PostgreSQL and Redis start on the port they report, even when another process took it first."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.distributed import services
from tests.distributed.services import Postgres, Redis, ServiceError, postgres_bindir, redis_server
from tests.ports import free_port


def _redis(log: Path) -> Postgres | Redis:
    binary = redis_server()
    if binary is None:
        pytest.skip("no redis-server (scripts/install_services.sh installs it)")
    return Redis(log, binary)


def _postgres(log: Path) -> Postgres | Redis:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL (scripts/install_services.sh installs it)")
    return Postgres(log, bindir)


def _ports(monkeypatch: pytest.MonkeyPatch, *first: int) -> list[int]:
    """Make services.free_port() return ``first``, then free ports; return every port it gave."""
    given: list[int] = []
    queue = list(first)

    def next_port() -> int:
        given.append(queue.pop(0) if queue else free_port())
        return given[-1]

    monkeypatch.setattr(services, "free_port", next_port)
    return given


@pytest.mark.parametrize("make", [_redis, _postgres], ids=["redis", "postgres"])
def test_a_port_taken_before_the_server_binds_it_means_one_more_start_on_a_new_port(
    make: Callable[[Path], Postgres | Redis], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "server.log"
    with socket.create_server(("127.0.0.1", 0)) as squatter:  # listens: a connect there succeeds
        taken = squatter.getsockname()[1]
        given = _ports(monkeypatch, taken)
        server = make(log)
        try:
            server.start()
            assert server.port != taken
            assert given == [taken, server.port]
            assert server._listening()  # the server itself, not the squatter
            assert f":{server.port}/" in server.url
        finally:
            server.stop()
    assert "Address already in use" in log.read_text()


def test_a_server_failing_for_another_reason_is_not_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = _ports(monkeypatch)
    redis = Redis(tmp_path / "redis.log", "/bin/false")
    with pytest.raises(ServiceError, match="redis exited with 1"):
        redis.start()
    redis.stop()
    assert len(given) == 1
