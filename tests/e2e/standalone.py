"""`airflow standalone` in a subprocess: its own AIRFLOW_HOME, free ports, a clean environment.

Started as the leader of a new process group so that :meth:`AirflowStandalone.stop` can end the
api-server, scheduler, dag-processor, triggerer and every executor worker with one signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

#: How long the whole stack may take to come up (≈ 12 s on an idle 2-core machine).
START_TIMEOUT = 120.0
#: How long `airflow standalone` may take to exit after SIGINT before its group gets SIGTERM.
STOP_TIMEOUT = 20.0
#: Components reported by /api/v2/monitor/health that must be healthy before tests run.
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


class StandaloneError(RuntimeError):
    """`airflow standalone` did not start or answer as expected (the message ends with its log)."""


def free_port() -> int:
    """A TCP port nobody listens on right now (other helpers may run Airflow on this machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**airflow_vars: str) -> dict[str, str]:
    """This process's environment without any AIRFLOW_* setting, plus ``airflow_vars``.

    tests/conftest.py points the pytest process at its own throwaway Airflow; the server must not
    inherit that, nor anything a developer exported in their shell.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    # Every component and every task process imports Airflow: with bytecode caching off (as some CI
    # images set it) each import compiles ~1,100 modules again, ≈ 5.5 s instead of ≈ 2.5 s.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # `airflow standalone` starts its components as `airflow <command>` from PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(airflow_vars)
    return env


class AirflowStandalone:
    """One `airflow standalone` stack on SQLite with LocalExecutor.

    :param home: an empty directory for AIRFLOW_HOME (DB, config, logs, generated password).
    :param dags_folder: the DAG folder to parse.
    :param log_path: where the combined output of all components is written.
    :param env: extra environment variables (e.g. ``AIRFLOW_CONN_*``), applied last.
    """

    def __init__(
        self, *, home: Path, dags_folder: Path, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://localhost:{self.port}"
        self.env = clean_env(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            **(env or {}),
        )
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow"), "standalone"],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() signals all of it at once
                preexec_fn=_interrupt_when_parent_dies,
            )

    def wait_until_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the API answers and the scheduler, triggerer and dag-processor are healthy."""
        deadline = time.monotonic() + timeout
        health: Any = None
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise StandaloneError(f"airflow standalone exited early\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get("/api/v2/monitor/health")
                    if response.status_code == 200:
                        health = response.json()
                        if all((health.get(name) or {}).get("status") == "healthy" for name in COMPONENTS):
                            return
                time.sleep(0.5)
        raise StandaloneError(f"not ready after {timeout:.0f} s (last health: {health})\n{self.log_tail()}")

    def stop(self) -> list[str]:
        """Stop every component; return descriptions of any process that had to be forced.

        SIGINT to `airflow standalone` is its own clean shutdown (Ctrl-C): it terminates each
        component and waits for it, with their shutdown output still logged. SIGTERM would kill
        the parent at once and leave the components writing into a dead pipe.
        """
        if self.process is None:
            return []
        forced: list[str] = []
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pgid, signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            forced.append(f"airflow standalone (pid {pgid}) still running {STOP_TIMEOUT:.0f} s after SIGINT")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            # Components can outlive the parent for a moment; give the group a few seconds.
            deadline = time.monotonic() + 10.0
            while (alive := self._group_members(pgid)) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not alive:
                break
            forced.append(f"{sig.name} to process group {pgid}: {alive}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        forced.extend(self._kill_strays())
        self.process = None
        return forced

    @staticmethod
    def _group_members(pgid: int) -> list[str]:
        """Command lines of the live (non-zombie) processes in process group ``pgid``."""
        import psutil

        members = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if (
                proc.info["status"] != psutil.STATUS_ZOMBIE
                and _safe(lambda p=proc: os.getpgid(p.pid)) == pgid
            ):
                members.append(" ".join(proc.info["cmdline"] or [])[:80])
        return members

    def _kill_strays(self) -> list[str]:
        """Kill any process that left our process group but still runs with our AIRFLOW_HOME."""
        import psutil

        strays = []
        marker = f"AIRFLOW_HOME={self.home}"
        for proc in psutil.process_iter(["pid", "cmdline"]):
            environ = _safe(proc.environ) or {}
            if f"AIRFLOW_HOME={environ.get('AIRFLOW_HOME')}" == marker and proc.pid != os.getpid():
                strays.append(f"stray pid {proc.pid}: {' '.join(proc.info['cmdline'] or [])[:120]}")
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        return strays

    def __enter__(self) -> AirflowStandalone:
        self.start()
        try:
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- access -------------------------------------------------------------------------------

    @property
    def admin_password(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text())["admin"]

    def token(self) -> str:
        response = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": "admin", "password": self.admin_password},
            timeout=10.0,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def client(self) -> httpx.Client:
        """An authenticated REST client for /api/v2 and /ui."""
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token()}"}, timeout=30.0
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> Iterator[Path]:
        """Every log file (task attempts and trigger logs) written for one task instance."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return folder.rglob("*.log") if folder.exists() else iter(())


def _interrupt_when_parent_dies() -> None:
    """In the child: get SIGINT if the test process dies without cleaning up (e.g. SIGKILL).

    `airflow standalone` answers SIGINT by stopping all its components, provided SIGINT is not
    inherited as ignored (as it is for background jobs of a non-interactive shell). Linux only.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None
