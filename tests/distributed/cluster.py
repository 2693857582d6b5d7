"""A distributed Airflow 3 in subprocesses: PostgreSQL, CeleryExecutor on Redis, two triggerers.

Every component (api-server, scheduler, dag-processor, one Celery worker, each triggerer) is
started as `airflow <command>` in its own process group with its own log, so a test can SIGKILL
one of them (the whole group: the supervisor and what it forked, as when a machine dies) and start
another. The settings that keep the suite short are in :data:`FAST_FAILOVER` (docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.e2e.standalone import (
    AirflowStack,
    StandaloneError,
    kill_strays,
    start_group,
    stop_group,
)
from tests.ports import free_port

#: Lowered from the defaults so that a dead triggerer or worker is noticed in seconds, not minutes.
FAST_FAILOVER = {
    # A triggerer is dead when its heartbeat is older than this (default 30 s), beating every 1 s (5).
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    # A running task whose heartbeat is older than this fails (and is retried); default 300 s.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
}
#: The components the health endpoint reports, all of which must be healthy before tests run.
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
START_TIMEOUT = 240.0
STOP_TIMEOUT = 20.0


class DistributedAirflow(AirflowStack):
    """The stack; :meth:`start` brings up every component, :meth:`stop` ends them all.

    :param database_url: SQLAlchemy URL of the (empty) PostgreSQL database.
    :param broker_url: the Redis URL Celery uses as its broker.
    :param logs: folder for one log per component (``<name>.log``).
    :param worker_concurrency: task slots of the Celery worker.
    """

    def __init__(
        self,
        *,
        home: Path,
        dags_folder: Path,
        logs: Path,
        database_url: str,
        broker_url: str,
        worker_concurrency: int,
        parallelism: int,
        env: dict[str, str] | None = None,
    ) -> None:
        result_backend = "db+" + database_url
        super().__init__(
            home=home,
            dags_folder=dags_folder,
            log_path=logs / "scheduler.log",
            env={
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1000",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
                "AIRFLOW__CELERY__BROKER_URL": broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
                # The worker preloads the provider before forking (tests/distributed/celery_config.py).
                "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "tests.distributed.celery_config.CELERY_CONFIG",
                "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
                # One fernet key and one JWT secret for every component (each would make its own).
                "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API__WORKERS": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                **FAST_FAILOVER,
                **(env or {}),
            },
        )
        self.logs = logs
        self.worker_concurrency = worker_concurrency
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, triggerers: int = 2) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run(
            [self.airflow, "db", "migrate"], env=self.env, cwd=self.home, capture_output=True, text=True
        )
        if migrate.returncode:
            raise StandaloneError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
        self.launch("api-server", "api-server")
        self.launch("scheduler", "scheduler")
        self.launch("dag-processor", "dag-processor")
        self.start_worker()
        for number in range(1, triggerers + 1):
            self.start_triggerer(f"triggerer-{number}")
        self.wait_until_healthy(COMPONENTS, START_TIMEOUT, self._check_alive)
        self.wait_for_worker()

    def launch(self, name: str, *command: str) -> subprocess.Popen[bytes]:
        """Start ``airflow <command>`` as component ``name`` (log: ``<logs>/<name>.log``)."""
        if name in self.processes and self.processes[name].poll() is None:
            raise StandaloneError(f"{name} is already running")
        self.processes[name] = start_group([self.airflow, *command], self.env, self.home, self.log(name))
        return self.processes[name]

    def start_worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        return self.launch(
            name,
            "celery",
            "worker",
            "--concurrency",
            str(self.worker_concurrency),
            "--celery-hostname",
            f"{name}-{free_port()}@%h",  # a restarted worker is a new Celery node
            "--without-mingle",
            "--without-gossip",
        )

    def start_triggerer(self, name: str, capacity: int | None = None) -> subprocess.Popen[bytes]:
        """Start triggerer ``name``; ``capacity``: the most triggers it holds (Airflow's default: 1000).

        Airflow gives a new trigger to whichever live triggerer asks first, so only a capacity
        decides how triggers spread over several triggerers.
        """
        # Two triggerers on one host cannot both serve logs on one port; the API server reads
        # trigger logs from the shared log folder.
        limit = ("--capacity", str(capacity)) if capacity is not None else ()
        return self.launch(name, "triggerer", "--skip-serve-logs", *limit)

    def wait_for_worker(self, name: str = "worker", timeout: float = 120.0) -> None:
        """Wait until the Celery worker ``name`` logged that it is ready for tasks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if " ready." in self.log(name).read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise StandaloneError(f"Celery worker not ready after {timeout:.0f} s\n{self.log_tail(name)}")

    def kill(self, name: str) -> float:
        """SIGKILL component ``name`` and every process it started; return when (monotonic clock).

        As when its machine dies: the task processes a worker's supervisors fork run in process
        groups of their own, so the whole process tree is killed, not just the group.
        """
        import psutil

        process = self.processes.pop(name)
        leader = psutil.Process(process.pid)
        tree = [leader, *leader.children(recursive=True)]
        killed_at = time.monotonic()
        for member in tree:
            with contextlib.suppress(psutil.Error):
                member.kill()
        process.wait(timeout=30)
        psutil.wait_procs(tree, timeout=30)
        return killed_at

    def terminate(self, name: str) -> None:
        """Stop component ``name`` cleanly (SIGTERM, as a deployment does), then wait for it."""
        process = self.processes.pop(name)
        forced = stop_group(process, signal.SIGTERM, 60.0)
        if forced:
            raise StandaloneError(f"{name} did not stop on SIGTERM: {forced}")

    def stop(self) -> list[str]:
        """Stop every component, scheduler last; return descriptions of what had to be forced."""
        forced: list[str] = []
        for process in self.processes.values():  # all at once: they stop in parallel
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for name in sorted(self.processes, key=lambda n: n == "scheduler"):
            forced.extend(stop_group(self.processes[name], signal.SIGTERM, STOP_TIMEOUT))
        self.processes.clear()
        forced.extend(kill_strays(self.home))
        return forced

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StandaloneError(f"{name} exited with {process.returncode}\n{self.log_tail(name)}")

    # -- access -------------------------------------------------------------------------------

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def log_tail(self, name: str = "scheduler", lines: int = 60) -> str:  # type: ignore[override]
        try:
            text = self.log(name).read_text(errors="replace")
        except FileNotFoundError:
            return f"(no {name} log)"
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def diagnostics(self) -> str:
        """The tail of every component's log, for an assertion message."""
        return "\n".join(self.log_tail(name, 25) for name in sorted(self.processes))


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def query(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one read-only SQL statement against the metadata database."""
    import psycopg2

    dsn = database_url.replace("postgresql+psycopg2://", "postgresql://")
    with contextlib.closing(psycopg2.connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
