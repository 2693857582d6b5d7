"""Test-wide Airflow isolation: a throwaway AIRFLOW_HOME, SQLite DB and DAG folder.

These variables must be set before anything imports Airflow, hence module level here (the
provider's own pytest plugin, loaded earlier, imports nothing from Airflow).
"""

from __future__ import annotations

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
    return _HOME / "airflow.db"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


#: Shared fixtures: the local disk and an object store for the file-writing tests.
pytest_plugins = ("tests.stores",)
