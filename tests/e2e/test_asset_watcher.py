"""The example DAG `leadpipe_audience_on_new_run` in real Airflow: its asset watcher runs in the
triggerer, and each daily run Leadpipe (the sandbox) completes starts exactly one DAG run. And the
example `leadpipe_credits_low` (in `leadpipe_credit_alerts.py`): each time the credits fall below
its threshold starts exactly one DAG run, across a triggerer restart too.

Its own `airflow standalone` (the watcher's audience id is read when the DAG file is parsed). The
triggerer is restarted in between, with a run completing while it is down: that run starts one DAG
run after the restart (the watermark is in the asset state store), the earlier one no second run.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.airflow_api import wait_for_dag
from tests.e2e.standalone import AirflowStandalone

DAG_ID = "leadpipe_audience_on_new_run"
LOW_DAG_ID = "leadpipe_credits_low"
RUNS = "/v1/intent/audiences/{audienceId}/runs"
ACCOUNT = "/v1/data/account"
#: The stack: a fast watcher, a fast dag-processor and a triggerer soon seen as dead.
STACK_ENV = {
    "LEADPIPE_EXAMPLE_WATCH_INTERVAL": "0.5",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
}


@pytest.fixture(scope="module")
def audience(sandbox) -> dict:
    audience = sandbox.create_audience("Watched in Airflow", people=4)
    sandbox.add_daily_run(audience["id"], data_date="2026-11-01")  # before: the baseline
    return audience


@pytest.fixture(scope="module")
def stack(tmp_path_factory, sandbox, audience) -> Iterator[AirflowStandalone]:
    root = tmp_path_factory.mktemp("watcher-stack")
    dags = root / "dags"
    dags.mkdir()
    shutil.copy(REPO / "example_dags" / f"{DAG_ID}.py", dags)
    shutil.copy(REPO / "example_dags" / "leadpipe_credit_alerts.py", dags)  # leadpipe_credits_low
    out = root / "out"
    stack = AirflowStandalone(
        home=root / "home",
        dags_folder=dags,
        log_path=REPO / ".artifacts" / "e2e" / "watcher-standalone.log",
        env={
            **STACK_ENV,
            "LEADPIPE_EXAMPLE_AUDIENCE_ID": audience["id"],
            "LEADPIPE_EXAMPLE_OUTPUT_DIR": str(out),
            "LEADPIPE_EXAMPLE_MIN_CREDITS": "100",
            "AIRFLOW_CONN_LEADPIPE_DEFAULT": sandbox.connection_json(),
        },
    )
    stack.out = out  # type: ignore[attr-defined]
    with stack:
        yield stack


def dag_runs(api: httpx.Client, dag_id: str = DAG_ID) -> list[dict]:
    response = api.get(f"/api/v2/dags/{dag_id}/dagRuns")
    response.raise_for_status()
    return response.json()["dag_runs"]


def wait_until(predicate, what: str, stack: AirflowStandalone, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen after {timeout:.0f} s\n{stack.log_tail()}")


def finished_runs(
    api: httpx.Client, count: int, stack: AirflowStandalone, dag_id: str = DAG_ID
) -> list[dict]:
    """Wait until ``count`` DAG runs exist and are all finished; return them."""

    def done():
        runs = dag_runs(api, dag_id)
        return runs if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs) else None

    return wait_until(done, f"{count} finished DAG run(s)", stack)


def polls(sandbox, more: int, stack: AirflowStandalone, path: str = RUNS) -> None:
    start = sandbox.request_count(path)
    wait_until(lambda: sandbox.request_count(path) >= start + more, f"{more} watcher polls", stack)


def landed(stack: AirflowStandalone, audience_id: str, run_id: str) -> list[dict]:
    with gzip.open(stack.out / audience_id / f"{run_id}.jsonl.gz", "rt") as lines:  # type: ignore[attr-defined]
        return [json.loads(line) for line in lines]


def triggerer_pids(stack: AirflowStandalone) -> list[int]:
    """The stack's `airflow triggerer` processes, the supervisor first (not its trigger runner)."""
    import psutil

    procs = {}
    for proc in psutil.process_iter(["pid", "ppid", "cmdline", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        with contextlib.suppress(psutil.Error):
            if (
                "triggerer" in cmdline
                and proc.info["status"] != psutil.STATUS_ZOMBIE
                and proc.environ().get("AIRFLOW_HOME") == str(stack.home)
            ):
                procs[proc.info["pid"]] = proc.info["ppid"]
    return sorted(procs, key=lambda pid: procs[pid] in procs)


@contextlib.contextmanager
def own_triggerer(stack: AirflowStandalone, log: Path) -> Iterator[subprocess.Popen]:
    """A replacement `airflow triggerer` with the stack's settings, stopped at the end."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(stack.env["PATH"].split(os.pathsep)[0]) / "airflow"), "triggerer"],
            env=stack.env,
            cwd=stack.home,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_each_new_daily_run_starts_exactly_one_dag_run(stack, sandbox, audience, tmp_path):
    with stack.client() as api:
        wait_for_dag(api, DAG_ID)
        polls(sandbox, 3, stack)  # the watcher runs and has its baseline
        assert dag_runs(api) == []  # the run completed before the watcher started: no DAG run

        first = sandbox.add_daily_run(audience["id"], data_date="2026-11-02")
        [run] = finished_runs(api, 1, stack)
        assert run["state"] == "success", stack.log_tail()
        assert run["run_type"] == "asset_triggered"
        assert len(landed(stack, audience["id"], first["id"])) == 4

        # Restart the triggerer; a run completes while none is running.
        os.kill(triggerer_pids(stack)[0], signal.SIGTERM)
        wait_until(lambda: not triggerer_pids(stack), "the triggerer's exit", stack, timeout=60)
        second = sandbox.add_daily_run(audience["id"], data_date="2026-11-03")
        log = tmp_path / "triggerer.log"
        with own_triggerer(stack, log):
            finished_runs(api, 2, stack)
            # The re-created watcher's own word on its first answer (no waiting on a clock for
            # something not to happen): resumed from the asset state store, one new run (the second).
            wait_until(
                lambda: RESUMED_ONE_NEW_RUN.search(log.read_text()),
                "the re-created watcher's decision",
                stack,
            )
            runs = dag_runs(api)
            assert len(runs) == 2  # no second DAG run for the first run
            assert {r["state"] for r in runs} == {"success"}, log.read_text()[-3000:]
            assert len(landed(stack, audience["id"], second["id"])) == 4

            third = sandbox.add_daily_run(audience["id"], data_date="2026-11-04")
            finished_runs(api, 3, stack)
            polls(sandbox, 4, stack)
            runs = dag_runs(api)
            assert len(runs) == 3
            assert {r["state"] for r in runs} == {"success"}
            assert len(landed(stack, audience["id"], third["id"])) == 4
            triggerer_log = log.read_text()
        # On Airflow 3.3 the watermark was in the asset state store, not in memory.
        assert "keeps its watermark in memory" not in triggerer_log
        assert sandbox.api_key not in triggerer_log


#: What the audience-runs watcher logs at its first answer after a restart: one new completed run.
RESUMED_ONE_NEW_RUN = re.compile(
    r"resumed from the saved watermark \(\d+ completed run\(s\) known\): 1 new completed"
)

#: What the credits-low watcher logs at its first answer after a restart when it does not fire.
RESUMED_STILL_LOW = (
    "resumed from the saved watermark (crossed: min_credits), now crossed: min_credits: no edge"
)


def low_message(api: httpx.Client, run: dict) -> str:
    url = f"/api/v2/dags/{LOW_DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/credits_low_message"
    response = api.get(f"{url}/xcomEntries/return_value")
    response.raise_for_status()
    return str(response.json()["value"])


def test_each_fall_below_the_threshold_starts_exactly_one_dag_run(stack, sandbox, tmp_path):
    # 500: 50 left is 90 % used, so max_percent_used=90 is not crossed too (any limit of 1,000 or
    # more would cross both with fewer than 100 left).
    limit = 500
    sandbox.set_credits(used=0, limit=limit)
    try:
        with stack.client() as api, contextlib.ExitStack() as triggerers:
            if not triggerer_pids(stack):  # the test above ended with no triggerer running
                triggerers.enter_context(own_triggerer(stack, tmp_path / "triggerer-1.log"))
            wait_for_dag(api, LOW_DAG_ID)
            polls(sandbox, 3, stack, ACCOUNT)  # the watcher runs, and has seen the credits not low
            assert dag_runs(api, LOW_DAG_ID) == []

            sandbox.set_credits(used=limit - 50)  # 50 left: below 100
            [run] = finished_runs(api, 1, stack, LOW_DAG_ID)
            assert run["state"] == "success", stack.log_tail()
            assert run["run_type"] == "asset_triggered"
            message = low_message(api, run)
            assert message.startswith(
                "Leadpipe credits low (min_credits): 50 credits left, below min_credits=100."
            )
            assert f"Credits: 50 of {limit} left" in message

            # Restart the triggerer while the credits stay low: no second DAG run.
            for pid in triggerer_pids(stack)[:1]:
                os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not triggerer_pids(stack), "the triggerer's exit", stack, timeout=60)
            triggerers.close()
            log = tmp_path / "triggerer-2.log"
            with own_triggerer(stack, log):
                # The re-created watcher's own word on its first answer (no waiting on a clock for
                # something not to happen): resumed from the asset state store, still low, no event.
                wait_until(
                    lambda: RESUMED_STILL_LOW in log.read_text(), "the re-created watcher's decision", stack
                )
                assert "Leadpipe credits low" not in log.read_text()  # the line an event is logged with
                assert len(dag_runs(api, LOW_DAG_ID)) == 1

                sandbox.reset_credits()  # credits back (re-armed), then low again: one more run
                polls(sandbox, 3, stack, ACCOUNT)
                sandbox.set_credits(used=limit - 10)
                finished_runs(api, 2, stack, LOW_DAG_ID)
                polls(sandbox, 4, stack, ACCOUNT)
                # One event since the restart: the new crossing only (the watcher's own warning line
                # per event; Airflow's "Trigger fired event" line repeats the payload).
                warnings = [
                    line
                    for line in log.read_text().splitlines()
                    if "Leadpipe credits low (" in line and "Trigger fired event" not in line
                ]
                assert len(warnings) == 1, warnings
                runs = dag_runs(api, LOW_DAG_ID)
                assert len(runs) == 2
                assert {r["state"] for r in runs} == {"success"}, log.read_text()[-3000:]
                triggerer_log = log.read_text()
        assert "keeps its watermark in memory" not in triggerer_log
        assert sandbox.api_key not in triggerer_log
    finally:
        sandbox.reset_credits()  # the e2e sandbox is shared with the other modules
