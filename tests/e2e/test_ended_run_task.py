"""A deferred LeadpipeRunAudienceOperator marked failed through REST in real Airflow 3.3+: the
triggerer calls the trigger's ``on_kill`` and Orbit (the sandbox) shows the queued run cancelled.

The example DAG `leadpipe_intent_audience_daily` queues a run the sandbox holds queued; once the
run task is deferred and the triggerer has checked the run, the task is marked failed as a user
does in the UI. Every wait is for an event (a state, a request the sandbox saw), with a generous
safety net; nothing depends on how fast the machine is.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.airflow_api import put_connection, trigger, wait_for_dag, xcom_value
from tests.orbit import api_runs

try:  # Airflow 3.3+ calls BaseTrigger.on_kill when a user ends a deferred task
    from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG  # noqa: F401
except ImportError:  # 2.11-3.2: the run stays queued (docs/orbit.md)
    pytest.skip("Airflow < 3.3 never calls BaseTrigger.on_kill", allow_module_level=True)

DAG_ID = "leadpipe_intent_audience_daily"
TASK = "run_audience"
#: Generous: a loaded machine may take long to schedule, defer and sync the triggerer.
SAFETY_NET_S = 240.0


def wait_until(check: Callable[[], Any], what: str, safety_net: float = SAFETY_NET_S) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after the safety net."""
    give_up = time.monotonic() + safety_net
    while time.monotonic() < give_up:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not seen within {safety_net:.0f} s")


@pytest.fixture
def held_queued(sandbox):
    """New runs of the sandbox's key stay queued (far longer than the test); defaults after."""
    sandbox.set_run_schedule(queued_seconds=3600, running_seconds=600)
    try:
        yield sandbox
    finally:
        sandbox.set_run_schedule()


def test_marking_the_deferred_run_task_failed_cancels_its_queued_run(api, airflow, held_queued, tmp_path):
    sandbox = held_queued
    key = sandbox.api_key
    connection = {"connection_id": "leadpipe_default", "conn_type": "leadpipe", "host": sandbox.url}
    put_connection(api, {**connection, "password": key})
    wait_for_dag(api, DAG_ID)
    # Unpausing may add a scheduled run besides ours (max_active_runs=1): whichever defers first.
    trigger(
        api,
        DAG_ID,
        conf={"audience_name": f"Ended by a user {uuid.uuid4().hex[:8]}", "output_dir": str(tmp_path)},
    )
    try:
        run_id = wait_until(
            _deferred_in_a_triggerer(api, airflow), f"{TASK} deferred, its trigger in the triggerer"
        )
        ti_url = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK}"
        audience_id = xcom_value(api, DAG_ID, run_id, "upsert_audience")["id"]
        orbit_run_id = xcom_value(api, DAG_ID, run_id, TASK, key="audience_run_id")
        # The trigger runs once it has checked the run itself (a GET after the deferral).
        gets = sandbox.request_count(method="GET", api_key=key)
        wait_until(lambda: sandbox.request_count(method="GET", api_key=key) > gets, "the trigger's check")
        assert _status(sandbox, audience_id, orbit_run_id) == "queued"

        response = api.patch(ti_url, json={"new_state": "failed"})  # what "Mark as failed" in the UI does
        assert response.status_code == 200, response.text

        wait_until(lambda: _status(sandbox, audience_id, orbit_run_id) == "cancelled", "the run cancelled")
        assert api.get(ti_url).json()["state"] == "failed"
        # The triggerer's own log for the task: Airflow's user-action path, then the provider's cancel.
        wait_until(lambda: _trigger_log(airflow, run_id, orbit_run_id), "the triggerer's log of on_kill")
        assert key not in "".join(
            p.read_text(errors="replace") for p in airflow.task_logs(DAG_ID, run_id, TASK)
        )
        assert sandbox.audience_runs_created(audience_id) == 1  # no second run queued meanwhile
    finally:  # leave nothing running for the next e2e test
        api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": True})
        for run in api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"state": ["queued", "running"]}).json()[
            "dag_runs"
        ]:
            api.patch(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})


def _deferred_in_a_triggerer(api, airflow) -> Callable[[], str | None]:
    """The DAG run whose run task is deferred with its trigger assigned to a triggerer, if any."""

    def check() -> str | None:
        listed = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances", params={"task_id": TASK}).json()
        for ti in (ti for ti in listed["task_instances"] if ti["task_id"] == TASK):
            assert ti["state"] not in {"failed", "success", "upstream_failed"}, (ti, airflow.log_tail())
            if ti["state"] == "deferred" and (ti.get("trigger") or {}).get("triggerer_id"):
                return ti["dag_run_id"]
        return None

    return check


def _trigger_log(airflow, run_id: str, orbit_run_id: str) -> bool:
    """Whether a triggerer log file of the task shows on_kill invoked and the run cancelled by it."""
    for path in airflow.task_logs(DAG_ID, run_id, TASK):
        text = path.read_text(errors="replace")
        on_kill = text.find("Trigger cancelled by user action, invoking on_kill")
        if ".trigger." in path.name and -1 < on_kill < text.find(
            f"Cancelled the queued audience run {orbit_run_id}"
        ):
            return True
    return False


def _status(sandbox, audience_id: str, run_id: str) -> str:
    return {run["id"]: run["status"] for run in api_runs(sandbox, audience_id)}[run_id]
