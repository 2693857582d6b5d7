"""Lineage: real OpenLineage events from dag.test runs of both pulls (file transport), the
``leadpipe://`` asset scheme, and the operators without the OpenLineage provider."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import urllib.parse
from contextlib import closing
from pathlib import Path

import pytest

from airflow_provider_leadpipe.utils import lineage
from tests.conftest import DAGS_FOLDER, REPO

pytestmark = pytest.mark.integration

HAS_OPENLINEAGE = importlib.util.find_spec("airflow.providers.openlineage") is not None
needs_openlineage = pytest.mark.skipif(
    not HAS_OPENLINEAGE, reason="the OpenLineage provider (extra 'openlineage') is not installed"
)

DAG_ID = "leadpipe_test_lineage"
RUN_ID = "3F2C0E1A-1111-4222-8333-944455556666"

#: Runs the test DAG with dag.test() in a fresh interpreter, so the OpenLineage settings of the
#: environment apply (the provider reads them once per process). ``--no-openlineage`` makes the
#: provider unimportable and invisible to Airflow's provider discovery, as when the extra is not
#: installed.
RUNNER = """
import json, sys

if "--no-openlineage" in sys.argv:
    import importlib.abc

    class NoOpenLineage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.startswith(("airflow.providers.openlineage", "openlineage")):
                raise ImportError(f"{name} is not installed")
            return None

    sys.meta_path.insert(0, NoOpenLineage())

    def without_openlineage(distributions):
        def filtered(**kwargs):
            return [d for d in distributions(**kwargs) if "openlineage" not in (d.metadata["Name"] or "")]

        return filtered

    import importlib.metadata

    importlib.metadata.distributions = without_openlineage(importlib.metadata.distributions)
    try:
        import importlib_metadata
    except ImportError:
        pass
    else:
        importlib_metadata.distributions = without_openlineage(importlib_metadata.distributions)
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2.x
    from airflow.models import DagBag

folder, dag_id, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
bag = DagBag(dag_folder=folder)
assert not bag.import_errors, bag.import_errors
kwargs = {"logical_date": None} if sys.modules["airflow"].__version__[0] != "2" else {}
run = bag.dags[dag_id].test(run_conf=conf, **kwargs)
states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
ol_modules = [m for m in sys.modules if m.startswith(("airflow.providers.openlineage", "openlineage"))]
print("OPENLINEAGE MODULES", sorted(ol_modules))
print("STATES", json.dumps(states))
"""


def run_dag(conf: dict, *, env: dict | None = None, block_openlineage: bool = False) -> tuple[dict, str]:
    args = [sys.executable, "-c", RUNNER, str(DAGS_FOLDER), DAG_ID, json.dumps(conf)]
    if block_openlineage:
        args.append("--no-openlineage")
    # A copy of the migrated metadata DB of its own: a second process writing to the SQLite file
    # this one holds open left it "malformed" for every later test (seen in a fresh-clone run).
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("sqlite:///"), url
    db = Path(tempfile.mkdtemp(prefix="leadpipe-lineage-db-")) / "airflow.db"
    with (
        closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as source,
        closing(sqlite3.connect(db)) as copy,
    ):
        source.backup(copy)
    own = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}"}
    result = subprocess.run(
        args, env={**os.environ, **own, **(env or {})}, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    states = json.loads(output.split("STATES ", 1)[1].splitlines()[0])
    return states, output


@pytest.fixture
def pulls(leadpipe_sandbox, airflow_db, tmp_path):
    """The DAG's params: a completed run of a new audience, and an output folder."""
    audience = leadpipe_sandbox.create_audience("Lineage audience", people=7)
    run = leadpipe_sandbox.add_daily_run(audience["id"])
    return {"out_dir": str(tmp_path), "audience_id": audience["id"], "run_id": run["id"]}


# -- the asset URI scheme -----------------------------------------------------------------------


def test_leadpipe_uris_are_normalised_and_checked():
    def sanitize(uri: str) -> str:
        return urllib.parse.urlunsplit(lineage.sanitize_uri(urllib.parse.urlsplit(uri)))

    assert sanitize(f"leadpipe://API.aws53.cloud:443/audiences/{RUN_ID}//") == (
        f"leadpipe://api.aws53.cloud/audiences/{RUN_ID.lower()}"
    )
    assert sanitize("leadpipe://127.0.0.1:8080/visitors") == "leadpipe://127.0.0.1:8080/visitors"
    for bad in (
        "leadpipe:///visitors",
        "leadpipe://api.aws53.cloud",
        "leadpipe://api.aws53.cloud/visitors?x=1",
    ):
        with pytest.raises(ValueError, match="leadpipe://"):
            sanitize(bad)


def test_airflow_applies_the_scheme_to_assets():
    try:
        from airflow.sdk import Asset
    except ImportError:  # Airflow 2.x: datasets, read from "dataset-uris"
        from airflow.datasets import Dataset as Asset

    asset = Asset(f"leadpipe://API.aws53.cloud/audiences/{RUN_ID}")
    assert asset.uri == f"leadpipe://api.aws53.cloud/audiences/{RUN_ID.lower()}"


@needs_openlineage
def test_an_asset_converts_to_the_operators_input_dataset():
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    try:
        from airflow.sdk import Asset
    except ImportError:
        from airflow.datasets import Dataset as Asset

    resource = f"audiences/{RUN_ID}/runs/{RUN_ID}"
    dataset = translate_airflow_asset(Asset(f"leadpipe://api.aws53.cloud/{resource}"), lineage_context=None)
    assert (dataset.namespace, dataset.name) == ("leadpipe://api.aws53.cloud", resource.lower())
    # The same dataset as the results pull reports for that run on that API.
    assert lineage.namespace("https://api.aws53.cloud") == dataset.namespace


# -- real events --------------------------------------------------------------------------------


@needs_openlineage
def test_each_pull_emits_a_complete_event_with_its_datasets(leadpipe_sandbox, pulls, tmp_path):
    events_file = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    states, output = run_dag(
        pulls,
        env={
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "leadpipe_tests",
        },
    )
    assert states == {"pull_visitors": "success", "pull_people": "success"}, output[-3000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = {
        event["job"]["name"].rsplit(".", 1)[-1]: event for event in events if event["eventType"] == "COMPLETE"
    }
    assert set(complete) >= {"pull_visitors", "pull_people"}, [e["eventType"] for e in events]

    api = lineage.namespace(leadpipe_sandbox.url)
    assert api.startswith("leadpipe://127.0.0.1:")
    expected = {
        "pull_visitors": ("visitors", tmp_path / "visitors.jsonl"),
        "pull_people": (
            f"audiences/{pulls['audience_id']}/runs/{pulls['run_id']}",
            tmp_path / "people.jsonl",
        ),
    }
    for task_id, (resource, written) in expected.items():
        event = complete[task_id]
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [(api, resource)]
        [output_dataset] = event["outputs"]
        assert (output_dataset["namespace"], output_dataset["name"]) == ("file", str(written))
        stats = output_dataset["outputFacets"]["outputStatistics"]
        rows = len(written.read_text().splitlines())
        assert stats["rowCount"] == rows and rows > 0
        assert stats["size"] == written.stat().st_size
    assert complete["pull_people"]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 7
    # Neither the key nor the people's data travel in lineage events.
    text = events_file.read_text()
    assert leadpipe_sandbox.api_key not in text
    first_person = json.loads((tmp_path / "people.jsonl").read_text().splitlines()[0])
    assert all(
        str(value) not in text for value in first_person.values() if isinstance(value, str) and "@" in value
    )


def test_the_pulls_work_without_the_openlineage_provider(pulls, tmp_path):
    states, output = run_dag(pulls, block_openlineage=True)
    assert states == {"pull_visitors": "success", "pull_people": "success"}, output[-3000:]
    assert "OPENLINEAGE MODULES []" in output  # nothing of it was imported
    assert len((tmp_path / "people.jsonl").read_text().splitlines()) == 7
