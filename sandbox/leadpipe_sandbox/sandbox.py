"""``LeadpipeSandbox``: runs the sandbox server in a child process and drives its control API."""

from __future__ import annotations

import enum
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

import httpx

from leadpipe_sandbox.cli import BACKLOG, UVICORN_MISSING, connection_json
from leadpipe_sandbox.faults import Fault, FaultRate
from leadpipe_sandbox.orbit import DEFAULT_PEOPLE, EXPORT_ROW_CAP, RunSchedule
from leadpipe_sandbox.scenarios import DEFAULT_API_KEY
from leadpipe_sandbox.timeutil import iso

HOST = "127.0.0.1"


class SandboxError(RuntimeError):
    """The sandbox could not start, or a control call was refused."""


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET


class LeadpipeSandbox:
    """The Leadpipe API sandbox in its own process, listening on ``127.0.0.1`` (a free port by default).

    Use it as a context manager; the process is stopped on exit, also when the block raises, and
    it stops by itself if this process dies. Control methods act on :attr:`api_key` unless another
    ``api_key`` is given.
    """

    def __init__(
        self,
        *,
        seed: int = 42,
        visitors: int = 1000,
        port: int = 0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        api_key: str = DEFAULT_API_KEY,
        startup_timeout: float = 30.0,
        audience_people: int = DEFAULT_PEOPLE,
        export_row_cap: int = EXPORT_ROW_CAP,
        run_schedule: Mapping[str, Any] | None = None,
    ) -> None:
        self.seed = seed
        self.visitors = visitors
        self.port = port
        self.fault_rate = fault_rate
        self.fault_seed = fault_seed
        self.api_key = api_key
        self.startup_timeout = startup_timeout
        self.audience_people = audience_people
        self.export_row_cap = export_row_cap
        self.run_schedule = RunSchedule(**(run_schedule or {}))
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._client: httpx.Client | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LeadpipeSandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> LeadpipeSandbox:
        """Start the server process and wait until it answers."""
        if self._process is not None:
            raise SandboxError("this sandbox is already started")
        if importlib.util.find_spec("uvicorn") is None:
            raise SandboxError(UVICORN_MISSING)
        # The parent binds the socket and hands it over: the port is known at once, with no race.
        sock = socket.create_server((HOST, self.port), backlog=BACKLOG)
        try:
            self.port = sock.getsockname()[1]
            self.url = f"http://{HOST}:{self.port}"
            self._output = tempfile.TemporaryFile()  # noqa: SIM115 - open for the server's lifetime
            self._process = subprocess.Popen(
                [sys.executable, "-m", "leadpipe_sandbox", *self._arguments(sock.fileno())],
                pass_fds=[sock.fileno()],
                stdin=subprocess.PIPE,  # closed when this process dies: the server then exits
                stdout=self._output,
                stderr=subprocess.STDOUT,
                env=_child_environment(),
            )
        except BaseException:
            self.stop()
            raise
        finally:
            sock.close()
        self._client = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _arguments(self, fd: int) -> list[str]:
        return [
            "--fd",
            str(fd),
            "--exit-on-stdin-eof",
            "--seed",
            str(self.seed),
            "--visitors",
            str(self.visitors),
            "--fault-rate",
            str(self.fault_rate),
            "--fault-seed",
            str(self.fault_seed),
            "--audience-people",
            str(self.audience_people),
            "--export-row-cap",
            str(self.export_row_cap),
            "--run-queued",
            _phase(self.run_schedule.queued_polls, self.run_schedule.queued_seconds),
            "--run-running",
            _phase(self.run_schedule.running_polls, self.run_schedule.running_seconds),
        ]

    def _wait_until_ready(self) -> None:
        assert self._process is not None and self._client is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SandboxError(f"the sandbox server exited during startup:\n{self.server_output()}")
            try:
                if self._client.get("/_sandbox/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise SandboxError(
            f"the sandbox did not answer within {self.startup_timeout} s:\n{self.server_output()}"
        )

    def stop(self) -> None:
        """Stop the server process (SIGTERM, then SIGKILL after 5 s). Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdin is not None:
                process.stdin.close()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._output is not None:
            self._output.close()
            self._output = None

    def server_output(self) -> str:
        """What the server process printed so far (startup banner, warnings, errors)."""
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    # -- Airflow connection --------------------------------------------------------------------

    def connection_json(self, api_key: str | None = None) -> str:
        """``{"conn_type": "leadpipe", "host": <url>, "password": <key>}`` for ``AIRFLOW_CONN_<ID>``."""
        return connection_json(self.url, api_key or self.api_key)

    def connection_env(self, conn_id: str = "leadpipe_default", api_key: str | None = None) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": connection_json(...)}``, ready for ``os.environ.update``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(api_key)}

    # -- control API ---------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        if self._client is None:
            raise SandboxError("the sandbox is not running; use it as a context manager or call start()")
        # ASCII JSON (json.dumps escapes), so a scripted body can hold anything JSON can carry,
        # lone UTF-16 surrogates included; httpx's json= encodes to UTF-8, which refuses them.
        content = None if body is None else json.dumps(body).encode()
        headers = None if body is None else {"content-type": "application/json"}
        response = self._client.request(method, f"/_sandbox/{path}", content=content, headers=headers)
        if response.status_code >= 400:
            message = response.json().get("error", {}).get("message", response.text)
            raise SandboxError(f"{method} /_sandbox/{path}: {response.status_code} {message}")
        return response.json()["data"]

    def _key_path(self, api_key: str | None, suffix: str = "") -> str:
        return f"keys/{quote(api_key or self.api_key, safe='')}{suffix}"

    def reset(self) -> None:
        """Back to the start: built-in keys only, seeded pixels, no faults, zero statistics."""
        self._control("POST", "reset")

    def scenarios(self) -> list[dict[str, Any]]:
        """The built-in keys: ``[{"apiKey", "scenario", "description"}, ...]``."""
        return self._control("GET", "scenarios")

    def key_state(self, api_key: str | None = None) -> dict[str, Any]:
        """``{"apiKey", "config", "account", "pixels", "pendingFaults", "accountCalls"}`` of a key."""
        return self._control("GET", self._key_path(api_key))

    def configure_key(
        self, api_key: str, config: Mapping[str, Any] | None = None, *, scenario: str = "sandbox"
    ) -> dict[str, Any]:
        """Create or replace a key: built-in ``scenario`` with ``config`` (control-API JSON) laid over it."""
        return self._control("PUT", self._key_path(api_key), {"scenario": scenario, **(config or {})})

    def update_key(self, changes: Mapping[str, Any], *, api_key: str | None = None) -> dict[str, Any]:
        """Change part of a key's configuration (control-API JSON, merged object by object)."""
        return self._control("PATCH", self._key_path(api_key), dict(changes))

    def delete_key(self, api_key: str) -> None:
        """Remove a key; it answers 401 from then on."""
        self._control("DELETE", self._key_path(api_key))

    def set_organization(
        self, *, name: str | None = None, status: str | None = None, api_key: str | None = None
    ) -> dict[str, Any]:
        """Rename the organisation or change its status (``trial``/``active`` usable, others 403)."""
        changes = {field: value for field, value in (("name", name), ("status", status)) if value is not None}
        return self.update_key({"organization": changes}, api_key=api_key)

    def set_credits(
        self,
        *,
        used: int | None = None,
        limit: int | _Unset | None = UNSET,
        resets_at: datetime | str | _Unset | None = UNSET,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """Set credit figures; ``limit=None`` makes the plan unlimited, ``resets_at=None`` clears it."""
        credits: dict[str, Any] = {}
        if used is not None:
            credits["used"] = used
        if limit is not UNSET:
            credits["limit"] = limit
        if resets_at is not UNSET:
            credits["resetsAt"] = iso(resets_at) if isinstance(resets_at, datetime) else resets_at
        return self.update_key({"credits": credits}, api_key=api_key)

    def consume_credits(self, amount: int = 1, *, api_key: str | None = None) -> dict[str, Any]:
        """Spend credits, as identifications would."""
        return self._control("POST", self._key_path(api_key, "/credits/consume"), {"amount": amount})

    def reset_credits(self, *, api_key: str | None = None) -> dict[str, Any]:
        """Set ``credits.used`` back to 0."""
        return self._control("POST", self._key_path(api_key, "/credits/reset"))

    def exhaust_credits(
        self,
        *,
        recover_after_account_calls: int | None = None,
        recover_at: datetime | str | None = None,
        recover_in_seconds: float | None = None,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """Use up all credits (healthy turns false); optionally recover after N account calls or at a time."""
        limit = self.key_state(api_key)["config"]["credits"]["limit"]
        if limit is None:
            raise SandboxError("an unlimited plan cannot run out of credits; set_credits(limit=...) first")
        recovery: dict[str, Any] | None = None
        if recover_after_account_calls is not None:
            recovery = {"afterAccountCalls": recover_after_account_calls}
        elif recover_at is not None:
            recovery = {"at": iso(recover_at) if isinstance(recover_at, datetime) else recover_at}
        elif recover_in_seconds is not None:
            recovery = {"inSeconds": recover_in_seconds}
        return self.update_key({"credits": {"used": limit}, "recovery": recovery}, api_key=api_key)

    def set_intent(self, intent: Mapping[str, Any] | None, *, api_key: str | None = None) -> dict[str, Any]:
        """Set the Orbit intent block (``{"audienceSlots": 5, "audienceSlotsUsed": 1}``) or ``None``."""
        return self.update_key({"intent": dict(intent) if intent is not None else None}, api_key=api_key)

    def queue_faults(self, *faults: Fault, api_key: str | None = None) -> list[dict[str, Any]]:
        """Script faults for the next matching requests, in order; returns the pending script."""
        body = {"faults": [fault.to_json() for fault in faults]}
        return self._control("POST", self._key_path(api_key, "/faults"), body)["pendingFaults"]

    def clear_faults(self, *, api_key: str | None = None) -> None:
        """Drop scripted faults that have not fired."""
        self._control("DELETE", self._key_path(api_key, "/faults"))

    def set_fault_rate(
        self,
        rate: float,
        *,
        seed: int = 0,
        faults: Sequence[Fault] | None = None,
        path: str | None = None,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """Fail a share of requests at random (seeded; default 429 or 503); ``rate=0`` switches it off."""
        fault_rate = FaultRate(
            rate=rate, seed=seed, path=path, **({"faults": tuple(faults)} if faults else {})
        )
        return self.update_key(
            {"faultRate": fault_rate.model_dump(mode="json", by_alias=True)}, api_key=api_key
        )

    # -- Orbit intent audiences ------------------------------------------------------------------

    def create_audience(
        self,
        name: str = "Sandbox audience",
        *,
        status: str = "active",
        config: Mapping[str, Any] | None = None,
        people: int | None = DEFAULT_PEOPLE,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """Create an audience directly (an active one takes a slot, or fails); ``people`` = rows per run.

        Returns the audience as the API shows it. ``people=None``: the server's ``--audience-people``.
        """
        body: dict[str, Any] = {"name": name, "status": status, "people": people}
        if config is not None:
            body["config"] = dict(config)
        return self._control("POST", self._key_path(api_key, "/audiences"), body)

    def set_audience_people(
        self, audience_id: str, people: int, *, api_key: str | None = None
    ) -> dict[str, Any]:
        """How many people the audience's *next* runs yield (existing runs keep theirs)."""
        path = self._key_path(api_key, f"/audiences/{quote(audience_id, safe='')}")
        return self._control("PATCH", path, {"people": people})

    def set_run_schedule(
        self,
        *,
        queued_polls: int = 1,
        running_polls: int = 1,
        queued_seconds: float | None = None,
        running_seconds: float | None = None,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """How new runs progress: each phase lasts that many polls, or seconds when given.

        A poll is a GET of the run's results, stats, ``export.csv`` or exports, or of the runs list.
        ``queued_polls=0, running_polls=0``: a run is finished at the first look.
        """
        body = {
            "queuedPolls": queued_polls,
            "runningPolls": running_polls,
            "queuedSeconds": queued_seconds,
            "runningSeconds": running_seconds,
        }
        return self._control("PUT", self._key_path(api_key, "/orbit/schedule"), body)

    def add_daily_run(
        self,
        audience_id: str,
        *,
        data_date: date | str | None = None,
        status: str = "completed",
        error_code: str = "MATERIALIZATION_FAILED",
        error_message: str = "Materialization failed in the sandbox",
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """A ``daily`` run, as Leadpipe's scheduler makes them (``data_date`` default: yesterday, UTC).

        ``status`` ``queued``/``running`` then follow the schedule; ``failed``/``cancelled`` carry the
        error code and message. Returns the run.
        """
        body: dict[str, Any] = {"status": status, "errorCode": error_code, "errorMessage": error_message}
        if data_date is not None:
            body["dataDate"] = data_date.isoformat() if isinstance(data_date, date) else data_date
        path = self._key_path(api_key, f"/audiences/{quote(audience_id, safe='')}/daily-runs")
        return self._control("POST", path, body)

    def fail_next_run(
        self,
        audience_id: str,
        *,
        error_code: str = "MATERIALIZATION_FAILED",
        error_message: str = "Materialization failed in the sandbox",
        status: str = "failed",
        api_key: str | None = None,
    ) -> dict[str, Any]:
        """The next run created for the audience ends ``failed`` (or ``cancelled``) with this error."""
        body = {"status": status, "errorCode": error_code, "errorMessage": error_message}
        path = self._key_path(api_key, f"/audiences/{quote(audience_id, safe='')}/fail-next-run")
        return self._control("POST", path, body)

    def set_export_row_cap(self, cap: int, *, api_key: str | None = None) -> dict[str, Any]:
        """Rows ``export.csv`` and new stored exports send at most (``X-Export-Row-Cap``; default 300,000)."""
        return self._control("PUT", self._key_path(api_key, "/orbit/export"), {"rowCap": cap})

    def set_download_url_ttl(self, seconds: int, *, api_key: str | None = None) -> dict[str, Any]:
        """Lifetime of the signed download URLs handed out from now on (default 3600 s)."""
        body = {"downloadUrlTtlSeconds": seconds}
        return self._control("PUT", self._key_path(api_key, "/orbit/export"), body)

    def set_export_processing_polls(self, polls: int, *, api_key: str | None = None) -> dict[str, Any]:
        """New stored exports show ``processing`` (no URL yet) for their first ``polls`` GETs (default 0)."""
        body = {"processingPolls": polls}
        return self._control("PUT", self._key_path(api_key, "/orbit/export"), body)

    def set_export_csv_short_by(self, rows: int, *, api_key: str | None = None) -> dict[str, Any]:
        """A misbehaving server: ``export.csv`` ends ``rows`` rows before the run's ``resultCount``
        (or the row cap), with the same headers (default 0)."""
        body = {"csvShortBy": rows}
        return self._control("PUT", self._key_path(api_key, "/orbit/export"), body)

    def orbit_state(self, api_key: str | None = None) -> dict[str, Any]:
        """``{"audiences": [audience + "people", "runsCreated", "runs"], "schedule", "exportRowCap", ...}``.

        Run statuses are shown as they are now; looking does not count as a poll.
        """
        return self._control("GET", self._key_path(api_key, "/orbit"))

    def audience_runs_created(self, audience_id: str | None = None, *, api_key: str | None = None) -> int:
        """Runs created by ``POST .../runs`` (idempotent replays not counted), of one or all audiences."""
        return sum(
            audience["runsCreated"]
            for audience in self.orbit_state(api_key)["audiences"]
            if audience_id is None or audience["id"] == audience_id
        )

    def export_downloads(self) -> list[dict[str, Any]]:
        """Requests to the download host: ``[{"path", "host", "apiKeySent", "status"}]`` since the reset."""
        return self._control("GET", "downloads")

    def stats(self) -> dict[str, Any]:
        """Request counts: ``{"total", "byStatus", "keys": {key: {"total", "byStatus", "routes"}}}``.

        ``routes`` maps ``"GET /v1/data/account"`` (pixel ids as ``{id}``, Orbit ids as ``{audienceId}``,
        ``{runId}``, ``{exportId}``) to ``{"total", "byStatus"}``.
        """
        return self._control("GET", "stats")

    def request_count(
        self,
        path: str | None = None,
        *,
        method: str | None = None,
        status: int | None = None,
        api_key: str | None = None,
    ) -> int:
        """Data API requests seen since the last reset, optionally narrowed by path, method, status, key.

        Unknown keys are counted under ``"<invalid>"`` and requests without a key under ``"<missing>"``.
        """
        total = 0
        for key, key_stats in self.stats()["keys"].items():
            if api_key is not None and key != api_key:
                continue
            for route, route_stats in key_stats["routes"].items():
                route_method, route_path = route.split(" ", 1)
                if (path is not None and route_path != path) or (
                    method is not None and route_method != method.upper()
                ):
                    continue
                total += (
                    route_stats["total"] if status is None else route_stats["byStatus"].get(str(status), 0)
                )
        return total


def _phase(polls: int, seconds: float | None) -> str:
    """A run phase as the command line takes it: ``"3"`` (polls) or ``"2.5s"`` (seconds)."""
    return str(polls) if seconds is None else f"{seconds}s"


def _child_environment() -> dict[str, str]:
    """The current environment, with this package importable even when it is not installed."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env
