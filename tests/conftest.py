"""Test-wide Airflow isolation: a throwaway AIRFLOW_HOME, SQLite DB and DAG folder.

These variables must be set before anything imports Airflow, hence module level here (the
provider's own pytest plugin, loaded earlier, imports nothing from Airflow).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import hypothesis
import pytest

REPO = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="leadpipe-airflow-home-"))
DAGS_FOLDER = _HOME / "dags"

os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "False",
    }
)
os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)

# dag.test() only runs DAGs that live in the DAG folder: the example DAGs and the test DAGs.
DAGS_FOLDER.mkdir()
for source in (REPO / "example_dags", REPO / "tests" / "dags"):
    for dag_file in source.glob("*.py"):
        shutil.copy(dag_file, DAGS_FOLDER / dag_file.name)
# The audience files leadpipe_audience_as_code reads, beside it as in a real DAGs folder.
shutil.copytree(REPO / "example_dags" / "audiences", DAGS_FOLDER / "audiences")


# Property tests: CI (CI=true, as .ci/run is started) draws the same examples on every run, so a red
# CI can be reproduced and a green one is not luck; elsewhere every run draws new examples and can
# find new cases. Loaded here, before any test module applies its @settings.
hypothesis.settings.register_profile("ci", derandomize=True)
if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    hypothesis.settings.load_profile("ci")


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata DB (only for tests that run real DAGs)."""
    from airflow.utils.db import initdb

    initdb()
    _build_dag_test_execution_api_once()
    return _HOME / "airflow.db"


def _build_dag_test_execution_api_once() -> None:
    """Give Airflow 3.0-3.2's dag.test() the cached in-process execution API of Airflow 3.3.

    Before 3.3, dag.test() builds a new FastAPI/Cadwyn app (and an a2wsgi event-loop thread) for
    every task it runs: seconds of CPU per task on 3.1/3.2, most of their integration suites'
    time. Airflow 3.3 builds it once per process (apache/airflow#65235: ``lru_cache`` on
    ``in_process_api_server``; a trigger run, which passes no DAG, drops the previous task's DAG
    bag override). This applies the same two changes; 3.3+ (already cached) and 2.x (no execution
    API) are left alone.
    """
    try:
        from airflow.sdk.execution_time import supervisor
    except ImportError:  # Airflow 2.x
        return
    if hasattr(supervisor.in_process_api_server, "cache_clear"):
        return
    from airflow.api_fastapi.common.dagbag import dag_bag_from_app

    server = functools.lru_cache(maxsize=1)(supervisor.in_process_api_server)
    api_client = supervisor.InProcessTestSupervisor._api_client

    def api_client_without_stale_dag_bag(dag=None):
        if dag is None:
            server().app.dependency_overrides.pop(dag_bag_from_app, None)
        return api_client(dag)

    supervisor.in_process_api_server = server
    supervisor.InProcessTestSupervisor._api_client = staticmethod(api_client_without_stale_dag_bag)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


#: Shared fixtures: the local disk and an object store for the file-writing tests.
pytest_plugins = ("tests.stores",)
