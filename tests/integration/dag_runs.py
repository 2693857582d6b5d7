"""Helpers for the example-DAG tests: parse a DAG file, run it with dag.test(), read its XCom."""

from __future__ import annotations

import logging
import operator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
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


class DagFiles:
    """DAG files written to the test DAG folder (dag.test() runs only DAGs that live there).

    ``dags.load(dag_id, source)`` writes ``<dag_id>.py`` and returns its ``dag``; :meth:`remove`
    deletes every file written (the :func:`dag_file` fixtures call it after the test).
    """

    def __init__(self) -> None:
        self.written: list[Path] = []

    def load(self, dag_id: str, source: str) -> Any:
        import importlib.util

        path = DAGS_FOLDER / f"{dag_id}.py"
        path.write_text(source)
        self.written.append(path)
        spec = importlib.util.spec_from_file_location(dag_id, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.dag

    def remove(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)


def try_number(dag_run: Any, task_id: str) -> int:
    """The try number of ``task_id`` in ``dag_run`` (1 when it was not retried)."""
    [ti] = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return ti.try_number


def task_states(dag_run: Any) -> dict[str, str | None]:
    """Each task's state as a plain string (Airflow 2.x and 3.x hand back enum members or strings)."""
    return {ti.task_id: getattr(ti.state, "value", ti.state) for ti in dag_run.get_task_instances()}


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """A task's XCom (``None`` when it pushed none), read from the metadata DB.

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

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).one_or_none()
        return None if row is None else value_of(row)


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


def sandbox_account(
    sandbox: Any,
    monkeypatch: Any,
    api_key: str,
    *,
    conn_id: str = "leadpipe_default",
    organization: str = "Acme",
    limit: int | None = 1000,
    resets_at: datetime | None = None,
) -> None:
    """Point connection ``conn_id`` at its own sandbox organisation, under a distinctive key.

    The organisation is ``active``, has used none of ``limit`` credits (``None``: unlimited plan)
    and resets at ``resets_at``. Tests then move its credits with
    ``sandbox.set_credits(used=..., api_key=api_key)``; a key no built-in scenario knows keeps the
    "key never in the logs" checks meaningful.
    """
    sandbox.configure_key(
        api_key,
        {
            "organization": {"name": organization, "status": "active"},
            "credits": {
                "used": 0,
                "limit": limit,
                "resetsAt": None if resets_at is None else resets_at.isoformat(),
            },
        },
    )
    monkeypatch.setenv(*sandbox.connection_env(conn_id, api_key=api_key).popitem())


def task_log_to_this_tests_stdout(monkeypatch: Any) -> None:
    """Make Airflow 2.x's dag.test() print this test's task logs to the current ``sys.stdout``.

    2.x's dag.test() adds a ``StreamHandler(sys.stdout)`` to the ``airflow.task`` logger only once
    per process, so it keeps writing to the stdout of the first test that ran one (pytest's capture
    of that test). Dropped here for this test, so the run's task logs reach its ``capsys``.
    """
    if AIRFLOW_V_3_0_PLUS:
        return
    task_logger = logging.getLogger("airflow.task")
    kept = [handler for handler in task_logger.handlers if type(handler) is not logging.StreamHandler]
    monkeypatch.setattr(task_logger, "handlers", kept)


def dag_run_output(output: str) -> str:
    """Captured ``output`` without lines the provider did not write and that quote the key in clear.

    - Airflow 3.0's dag.test() logs at DEBUG, and its task supervisor then prints every masked
      secret as ``MaskSecret(value='<the key>', ...)``: Airflow's output.
    - The test's own sandbox set-up (``/_sandbox/keys/<key>`` in the URL), which httpx logs to
      stdout on Airflow 3.0.
    """
    return "\n".join(
        line for line in output.splitlines() if "MaskSecret(value=" not in line and "/_sandbox/" not in line
    )


def api_records(sandbox: Any, api_key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every visitor record the sandbox serves for ``params``, read page by page over plain HTTP.

    Independent of the provider's hook and operators, so it can check what they wrote.
    """
    records: list[dict[str, Any]] = []
    headers = {"X-API-Key": api_key or sandbox.api_key}
    with httpx.Client(base_url=sandbox.url, headers=headers) as client:  # one connection, reused
        page = 1
        while True:
            response = client.get("/v1/data", params={**params, "page": page})
            response.raise_for_status()
            data = response.json()["data"]
            if not data:
                return records
            records.extend(data)
            page += 1
