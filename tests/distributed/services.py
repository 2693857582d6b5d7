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

    def _launch(self) -> subprocess.Popen[bytes]:
        """Start the server process, told to listen on 127.0.0.1:``self.port``."""
        raise NotImplementedError

    def _start_listening(self) -> None:
        """Launch the server and wait until it listens; once more on a new port if it lost its port.

        :func:`free_port` releases the port before the server binds it; a process that takes it
        in between makes the server exit with "Address already in use".
        """
        for attempt in (1, 2):
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            self.process = self._launch()
            try:
                self._wait_for_port()
                return
            except ServiceError:
                if attempt == 2 or not self._port_was_taken(log_start):
                    raise
            stop_group(self.process, signal.SIGINT, 20.0)
            self.port = free_port()

    def _port_was_taken(self, log_start: int) -> bool:
        with self.log_path.open("rb") as log:
            log.seek(log_start)
            return b"Address already in use" in log.read()

    def _wait_for_port(self) -> None:
        """Wait until this server (not another process that took its port) listens on ``self.port``."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}")
            if self._listening():
                return
            time.sleep(0.2)
        raise ServiceError(f"{self.name} not listening on {self.port} after {START_TIMEOUT:.0f} s")

    def _listening(self) -> bool:
        import psutil

        assert self.process is not None
        try:
            sockets = psutil.Process(self.process.pid).net_connections(kind="tcp")
        except psutil.Error:  # exited meanwhile
            return False
        return any(s.status == psutil.CONN_LISTEN and s.laddr.port == self.port for s in sockets)

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
        self._start_listening()
        return self

    def _launch(self) -> subprocess.Popen[bytes]:
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
        return start_group(
            self._as_user([str(self.bindir / "postgres"), "-D", str(self.data / "cluster"), *options]),
            {**os.environ, "LC_ALL": "C.UTF-8"},
            self.data,
            self.log_path,
        )


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
        self._start_listening()
        return self

    def _launch(self) -> subprocess.Popen[bytes]:
        # No persistence: a throwaway broker.
        options = ["--save", "", "--appendonly", "no", "--protected-mode", "yes", "--dir", str(self.data)]
        return start_group(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), *options],
            dict(os.environ),
            self.data,
            self.log_path,
        )


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServiceError("running as root and neither a 'postgres' nor a 'nobody' user exists")
