"""Helpers for the example-DAG tests: parse a DAG file, run it with dag.test(), read its XCom."""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Any

import httpx
import pendulum
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from tests.conftest import DAGS_FOLDER, REPO

EXAMPLE_DAGS = REPO / "example_dags"
#: dag.test() keyword for a run without a logical date, as the REST API creates them (Airflow 3).
NO_LOGICAL_DATE: dict[str, Any] = {"logical_date": None} if AIRFLOW_V_3_0_PLUS else {}


def dagbag(path: Path) -> Any:
    """A DagBag of one file (Airflow 3 moved the class)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.x
        from airflow.models import DagBag
    return DagBag(dag_folder=str(path))  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES=False


def example_task_ids(dag_id: str) -> set[str]:
    """Parse ``example_dags/<dag_id>.py`` on its own; fail on any import error."""
    bag = dagbag(EXAMPLE_DAGS / f"{dag_id}.py")
    assert not bag.import_errors, bag.import_errors
    return set(bag.dags[dag_id].task_ids)


def load_dag(dag_id: str) -> Any:
    """The DAG from its copy in the test DAG folder (dag.test() only runs DAGs found there)."""
    bag = dagbag(DAGS_FOLDER / f"{dag_id}.py")
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def task_states(dag_run: Any) -> dict[str, str | None]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def _xcom_rows(dag_run: Any, **where: str) -> dict[tuple[str, str], Any]:
    """Deserialized XCom values of one run, by (task_id, key), read from the metadata DB.

    There is no `airflow xcom` command in 3.3; Airflow 3 split the ORM class out as XComModel.
    """
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.xcom import XComModel

        value_of = XComModel.deserialize_value
    except ImportError:  # Airflow 2.x: the ORM class is XCom itself, deserialized when loaded
        from airflow.models.xcom import XCom as XComModel

        value_of = operator.attrgetter("value")

    filters = [XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id]
    filters += [getattr(XComModel, column) == value for column, value in where.items()]
    with create_session() as session:
        rows = session.scalars(select(XComModel).where(*filters))
        return {(row.task_id, row.key): value_of(row) for row in rows}


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """A task's XCom (``None`` when it pushed none)."""
    return _xcom_rows(dag_run, task_id=task_id, key=key).get((task_id, key))


def return_values(dag_run: Any) -> dict[str, Any]:
    """Every task's return value in one run, by task id."""
    return {task_id: value for (task_id, _), value in _xcom_rows(dag_run, key="return_value").items()}


def keep_earlier_runs_without_logical_date(monkeypatch) -> None:
    """Stop dag.test(logical_date=None) from deleting the previous logical-date-less run.

    Airflow 3.3's ``get_or_create_dagrun`` (only used by ``dag.test``) deletes an existing run
    with the same logical date before creating the new one, and ``logical_date IS NULL`` matches
    any earlier run without one. Runs triggered through the API or the UI are never deleted, so
    to test two such runs in a row the deletion is skipped here; nothing else changes.
    """
    import airflow.models.dagrun as dagrun_module

    if not hasattr(dagrun_module, "get_or_create_dagrun"):
        pytest.skip(
            "Airflow 3.0's dag.test() replaces any earlier run without a logical date "
            "(airflow.models.dag._get_or_create_dagrun); runs chained that way are tested on 3.1+"
        )
    original = dagrun_module.get_or_create_dagrun

    def create_without_replacing(*, dag, logical_date, **kwargs):
        if logical_date is not None:
            return original(dag=dag, logical_date=logical_date, **kwargs)
        from airflow.utils.state import DagRunState
        from airflow.utils.types import DagRunType

        return dag.create_dagrun(
            logical_date=None,
            run_type=DagRunType.MANUAL,
            state=DagRunState.RUNNING,
            **kwargs,
        )

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", create_without_replacing)


class FakeAccount:
    """``GET /v1/data/account`` served by respx, with credits a test changes between runs.

    Tasks run in the test process under dag.test(), so respx sees their requests.
    """

    def __init__(self, monkeypatch, respx_mock, *, key: str, conn_id: str = "leadpipe_default") -> None:
        self.key = key
        self.name = "Acme"
        self.used = 0
        self.limit: int | None = 1000
        self.resets_at: pendulum.DateTime | None = pendulum.now("UTC").add(days=30)
        # Loopback, so the hook allows plain http; one port per connection; never contacted.
        base_url = f"http://127.0.0.1:{9000 + sum(conn_id.encode()) % 1000}"
        conn = {"conn_type": "leadpipe", "host": base_url, "password": key}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        self.route = respx_mock.get(f"{base_url}/v1/data/account").mock(side_effect=self._respond)

    def _respond(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("X-API-Key") != self.key:
            return httpx.Response(401, json={"error": {"code": "HTTP_ERROR", "message": "Invalid API key"}})
        remaining = None if self.limit is None else self.limit - self.used
        credits = {
            "used": self.used,
            "limit": self.limit,
            "remaining": remaining,
            "percentUsed": None if self.limit is None else 100 * self.used / self.limit,
            "resetsAt": None if self.resets_at is None else self.resets_at.to_iso8601_string(),
        }
        data = {
            "healthy": True,
            "organization": {"name": self.name, "status": "active"},
            "credits": credits,
            "pixels": {"total": 1, "active": 1, "paused": 0},
            "intent": None,
        }
        return httpx.Response(200, json={"data": data})


def without_airflow_secret_debug(output: str) -> str:
    """``output`` without Airflow's own supervisor DEBUG lines that quote secrets in clear.

    Airflow 3.0's dag.test() logs at DEBUG, and its task supervisor then prints every masked
    secret as ``MaskSecret(value='<the key>', ...)``: Airflow's output, not the provider's.
    """
    return "\n".join(line for line in output.splitlines() if "MaskSecret(value=" not in line)
