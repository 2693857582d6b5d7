"""`airflow standalone` in a subprocess: its own AIRFLOW_HOME, free ports, a clean environment.

Started as the leader of a new process group so that :meth:`AirflowStandalone.stop` can end the
api-server, scheduler, dag-processor, triggerer and every executor worker with one signal.

:class:`AirflowStack` (home, ports, environment, REST access, logs) and the process-group helpers
are shared with tests/distributed, which starts each component itself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.ports import free_port

#: How long the whole stack may take to come up (≈ 12 s on an idle 2-core machine).
START_TIMEOUT = 120.0
#: How long `airflow standalone` may take to exit after SIGINT before its group gets SIGTERM.
STOP_TIMEOUT = 20.0
#: Components reported by /api/v2/monitor/health that must be healthy before tests run.
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


class StandaloneError(RuntimeError):
    """`airflow standalone` did not start or answer as expected (the message ends with its log)."""


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


class AirflowStack:
    """What every Airflow stack under test has: AIRFLOW_HOME, an API port, its environment, access.

    :param home: an empty directory for AIRFLOW_HOME (DB, config, logs, generated password).
    :param dags_folder: the DAG folder to parse.
    :param log_path: where the (main) output of the stack is written.
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
            **{
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                **(env or {}),
            }
        )

    @property
    def airflow(self) -> str:
        """The `airflow` command of this interpreter's venv."""
        return str(Path(sys.executable).parent / "airflow")

    def wait_until_healthy(
        self, components: tuple[str, ...], timeout: float, alive: Any = None
    ) -> dict[str, Any]:
        """Wait until /api/v2/monitor/health reports every one of ``components`` healthy.

        ``alive()`` (optional) is checked on each poll and raises when a process died early.
        """
        deadline = time.monotonic() + timeout
        health: Any = None
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if alive is not None:
                    alive()
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get("/api/v2/monitor/health")
                    if response.status_code == 200:
                        health = response.json()
                        if all((health.get(name) or {}).get("status") == "healthy" for name in components):
                            return health
                time.sleep(0.5)
        raise StandaloneError(f"not ready after {timeout:.0f} s (last health: {health})\n{self.log_tail()}")

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


class AirflowStandalone(AirflowStack):
    """One `airflow standalone` stack on SQLite with LocalExecutor (parameters: :class:`AirflowStack`)."""

    def __init__(
        self, *, home: Path, dags_folder: Path, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        super().__init__(home=home, dags_folder=dags_folder, log_path=log_path, env=env)
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.process = start_group([self.airflow, "standalone"], self.env, self.home, self.log_path)

    def wait_until_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the API answers and the scheduler, triggerer and dag-processor are healthy."""

        def alive() -> None:
            if self.process is None or self.process.poll() is not None:
                raise StandaloneError(f"airflow standalone exited early\n{self.log_tail()}")

        self.wait_until_healthy(COMPONENTS, timeout, alive)

    def stop(self) -> list[str]:
        """Stop every component; return descriptions of any process that had to be forced.

        SIGINT to `airflow standalone` is its own clean shutdown (Ctrl-C): it terminates each
        component and waits for it, with their shutdown output still logged. SIGTERM would kill
        the parent at once and leave the components writing into a dead pipe.
        """
        if self.process is None:
            return []
        forced = stop_group(self.process, signal.SIGINT, STOP_TIMEOUT)
        forced.extend(kill_strays(self.home))
        self.process = None
        return forced

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


# -- process groups ---------------------------------------------------------------------------------


def start_group(
    command: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new process group, its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop_group() signals all of it at once
            preexec_fn=_interrupt_when_parent_dies,
        )


def stop_group(process: subprocess.Popen[bytes], first: signal.Signals, timeout: float) -> list[str]:
    """Send ``first`` to the group leader, then SIGTERM and SIGKILL to what is left of its group.

    Returns descriptions of every escalation (empty when the group stopped on ``first``).
    """
    forced: list[str] = []
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pgid, first)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        name = " ".join(map(str, process.args))[:60]  # type: ignore[call-overload]
        forced.append(f"{name} (pid {pgid}) still running {timeout:.0f} s after {first.name}")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        # Components can outlive the leader for a moment; give the group a few seconds.
        deadline = time.monotonic() + 10.0
        while (alive := group_members(pgid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not alive:
            break
        forced.append(f"{sig.name} to process group {pgid}: {alive}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    return forced


def group_members(pgid: int) -> list[str]:
    """Command lines of the live (non-zombie) processes in process group ``pgid``."""
    import psutil

    members = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and _safe(lambda p=proc: os.getpgid(p.pid)) == pgid:
            members.append(" ".join(proc.info["cmdline"] or [])[:80])
    return members


def kill_strays(home: Path) -> list[str]:
    """Kill any process that left its process group but still runs with AIRFLOW_HOME ``home``."""
    import psutil

    strays = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        environ = _safe(proc.environ) or {}
        if environ.get("AIRFLOW_HOME") == str(home) and proc.pid != os.getpid():
            strays.append(f"stray pid {proc.pid}: {' '.join(proc.info['cmdline'] or [])[:120]}")
            with contextlib.suppress(psutil.Error):
                proc.kill()
    return strays


@contextlib.contextmanager
def always_stopped(stack: Any) -> Iterator[None]:
    """Run the block, then ``stack.stop()`` whatever happens; warn about anything that needed force.

    Never leave orphans: SIGTERM (a CI timeout) becomes KeyboardInterrupt so the block's teardown
    runs; atexit covers exits that skip it; every process started with :func:`start_group` also
    gets SIGINT if pytest dies.
    """
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    atexit.register(stack.stop)
    try:
        yield
    finally:
        leftovers = stack.stop()
        atexit.unregister(stack.stop)
        signal.signal(signal.SIGTERM, previous_sigterm)
        if leftovers:
            warnings.warn(f"{type(stack).__name__} needed force to stop: {leftovers}", stacklevel=3)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _interrupt_when_parent_dies() -> None:
    """In the child: get SIGINT if the test process dies without cleaning up (e.g. SIGKILL).

    `airflow standalone` answers SIGINT by stopping all its components (each component, by
    stopping itself), provided SIGINT is not inherited as ignored (as it is for background jobs
    of a non-interactive shell). Linux only.
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
