"""PostgreSQL and Redis for the distributed suite: Debian's binaries, throwaway data, free loopback ports.

Each server runs in the foreground of its own process group, with its data in a temporary folder
that :meth:`Service.stop` removes. PostgreSQL refuses to run as root; as root the suite runs it as
the ``postgres`` user (created by Debian's package) or, failing that, ``nobody``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.e2e.standalone import start_group, stop_group
from tests.ports import free_port

#: How long a server may take to accept connections.
START_TIMEOUT = 60.0


class ServiceError(RuntimeError):
    """A server did not start (the message ends with its log)."""


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


class Service:
    """One server process in its own process group, with a throwaway data folder."""

    name = "service"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix=f"leadpipe-{self.name}-"))
        self.process: subprocess.Popen[bytes] | None = None

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.2)
        raise ServiceError(f"{self.name} not listening on {self.port} after {START_TIMEOUT:.0f} s")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self) -> list[str]:
        """Stop the server (its own clean shutdown first) and remove its data; return what was forced."""
        forced: list[str] = []
        if self.process is not None:
            forced = stop_group(self.process, signal.SIGINT, 20.0)
            self.process = None
        shutil.rmtree(self.data, ignore_errors=True)
        return forced


class Postgres(Service):
    """A PostgreSQL cluster (initdb) on 127.0.0.1, trust auth, superuser ``airflow``, no durability."""

    name = "postgres"

    def __init__(self, log_path: Path, bindir: Path) -> None:
        super().__init__(log_path)
        self.bindir = bindir
        self.user = None if os.geteuid() != 0 else _unprivileged_user()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/postgres"

    def _as_user(self, command: list[str]) -> list[str]:
        if self.user is None:
            return command
        return ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups", "--", *command]

    def start(self) -> Postgres:
        cluster = self.data / "cluster"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        initdb = [
            str(self.bindir / "initdb"),
            "-D",
            str(cluster),
            "-U",
            "airflow",
            "--auth=trust",
            "-E",
            "UTF8",
        ]
        init = subprocess.run(
            self._as_user([*initdb, "--no-sync", "--no-instructions"]),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode:
            raise ServiceError(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.data),
            # A throwaway test database: durability buys nothing and costs the 2 cores time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        self.process = start_group(
            self._as_user([str(self.bindir / "postgres"), "-D", str(cluster), *options]),
            env,
            self.data,
            self.log_path,
        )
        self._wait_for_port()
        return self


class Redis(Service):
    """A Redis server on 127.0.0.1 without persistence (the Celery broker)."""

    name = "redis"

    def __init__(self, log_path: Path, binary: str) -> None:
        super().__init__(log_path)
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        # No persistence: a throwaway broker.
        options = ["--save", "", "--appendonly", "no", "--protected-mode", "yes", "--dir", str(self.data)]
        self.process = start_group(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), *options],
            dict(os.environ),
            self.data,
            self.log_path,
        )
        self._wait_for_port()
        return self


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServiceError("running as root and neither a 'postgres' nor a 'nobody' user exists")
