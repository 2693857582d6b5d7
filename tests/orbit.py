"""Helpers for the Orbit audience tests: a task-instance stand-in and the sandbox read over plain HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

ORBIT = "/v1/intent/audiences"


def hook_caller(hook: Any, mode: str) -> Callable[..., Any]:
    """``call(method, *args)``: a hook method by its sync name, through it (``mode="sync"``) or
    through its async twin ``a<method>`` (``mode="async"``), so one test covers both."""

    def invoke(method: str, /, *args: Any, **kwargs: Any) -> Any:
        if mode == "sync":
            return getattr(hook, method)(*args, **kwargs)
        return asyncio.run(getattr(hook, f"a{method}")(*args, **kwargs))

    return invoke


@dataclass
class FakeTaskInstance:
    """What the run operator reads from ``context["ti"]``; records its XCom pushes in order."""

    dag_id: str = "orbit_dag"
    run_id: str = "manual__2026-05-05T09:30:00+00:00"
    task_id: str = "run"
    map_index: int = -1
    try_number: int = 1
    max_tries: int | None = None  # Airflow: retries at first, try_number + retries after a clear
    task: Any = None
    pushed: list[tuple[str, Any]] = field(default_factory=list)

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        self.pushed.append((key, value))

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        """The last value this task instance pushed under ``key`` (its own XCom only)."""
        assert task_ids in (None, self.task_id), task_ids
        return next((value for pushed_key, value in reversed(self.pushed) if pushed_key == key), None)


def context(dag_run: Any = None, **ti: Any) -> dict[str, Any]:
    return {"ti": FakeTaskInstance(**ti), **({"dag_run": dag_run} if dag_run is not None else {})}


def _get(sandbox: Any, path: str, api_key: str | None = None, **params: Any) -> httpx.Response:
    return httpx.get(f"{sandbox.url}{path}", params=params, headers={"x-api-key": api_key or sandbox.api_key})


def api_runs(sandbox: Any, audience_id: str, api_key: str | None = None) -> list[dict[str, Any]]:
    """``GET .../runs?limit=100`` over plain HTTP, independent of the provider."""
    response = _get(sandbox, f"{ORBIT}/{audience_id}/runs", api_key, limit=100)
    response.raise_for_status()
    return response.json()["data"]


def api_people(
    sandbox: Any, audience_id: str, run_id: str, api_key: str | None = None
) -> list[dict[str, Any]]:
    """Every person of a completed run, page by page over plain HTTP, independent of the provider."""
    people: list[dict[str, Any]] = []
    with httpx.Client(base_url=sandbox.url, headers={"x-api-key": api_key or sandbox.api_key}) as client:
        while True:
            response = client.get(
                f"{ORBIT}/{audience_id}/runs/{run_id}/results", params={"limit": 100, "offset": len(people)}
            )
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            people.extend(data["results"])
            if not data["results"] or len(people) >= data["total"]:
                return people


def api_export_csv(sandbox: Any, audience_id: str, run_id: str, api_key: str | None = None) -> bytes:
    response = _get(sandbox, f"{ORBIT}/{audience_id}/runs/{run_id}/export.csv", api_key)
    response.raise_for_status()
    return response.content
