"""Small helpers over Airflow's REST API (/api/v2) for the end-to-end tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApiError(AssertionError):
    """Airflow did not reach the expected state in time (the message says what was seen)."""


def wait_for_dag(api: httpx.Client, dag_id: str, timeout: float = 240.0) -> dict[str, Any]:
    """Wait until the dag-processor has parsed ``dag_id``; fail with its import errors otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/api/v2/dags/{dag_id}")
        if response.status_code == 200:
            return response.json()
        time.sleep(1.0)
    errors = api.get("/api/v2/importErrors").json().get("import_errors", [])
    raise AirflowApiError(f"DAG {dag_id!r} not parsed after {timeout:.0f} s; import errors: {errors}")


def trigger(api: httpx.Client, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    """Unpause ``dag_id`` and trigger a run without a logical date (as the UI does); return its run id."""
    api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    response = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
    response.raise_for_status()
    return response.json()["dag_run_id"]


@dataclass
class TaskWatch:
    """What polling one task instance saw: its states in order, and the trigger while deferred."""

    states: list[str] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    run_state: str | None = None


def watch_run(
    api: httpx.Client,
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    timeout: float = 300.0,
    interval: float = 0.3,
) -> TaskWatch:
    """Poll the run and one task instance until the run finishes, recording every state change."""
    watch = TaskWatch()
    run_url = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = api.get(f"{run_url}/taskInstances/{task_id}")
        if ti.status_code == 200:
            body = ti.json()
            state = body.get("state")
            if state and (not watch.states or watch.states[-1] != state):
                watch.states.append(state)
            if state == "deferred" and body.get("trigger"):
                watch.triggers.append(body["trigger"])
            watch.final = body
        run = api.get(run_url).json()
        if run["state"] in TERMINAL_RUN_STATES:
            watch.run_state = run["state"]
            watch.final = api.get(f"{run_url}/taskInstances/{task_id}").json()
            return watch
        time.sleep(interval)
    raise AirflowApiError(
        f"run {run_id} of {dag_id} not finished after {timeout:.0f} s; {task_id} went {watch}"
    )


def task_log(api: httpx.Client, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
    """The task instance's log as the API server serves it to the UI (worker and triggerer parts)."""
    response = api.get(
        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
        params={"full_content": True},
    )
    response.raise_for_status()
    return json.dumps(response.json()["content"])


def xcom_value(api: httpx.Client, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    response = api.get(
        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
        params={"deserialize": True, "stringify": False},
    )
    response.raise_for_status()
    return response.json()["value"]


def put_connection(api: httpx.Client, connection: dict[str, Any]) -> None:
    """Create the connection, or replace it when an earlier test stored one with that id."""
    conn_id = connection["connection_id"]
    if api.get(f"/api/v2/connections/{conn_id}").status_code == 200:
        api.delete(f"/api/v2/connections/{conn_id}").raise_for_status()
    api.post("/api/v2/connections", json=connection).raise_for_status()
