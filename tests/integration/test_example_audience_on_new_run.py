"""leadpipe_audience_on_new_run: parses on every version; scheduled on a watched leadpipe:// asset
(Airflow 3); lands the runs named by the watcher's events, or the latest completed run by hand."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from tests.integration.dag_runs import NO_LOGICAL_DATE, example_task_ids, load_dag, task_states
from tests.orbit import api_people

pytestmark = pytest.mark.integration
DAG_ID = "leadpipe_audience_on_new_run"


@pytest.fixture
def audience(leadpipe_sandbox, monkeypatch):
    """An audience with one completed daily run, named to the DAG file (read when it is parsed)."""
    audience = leadpipe_sandbox.create_audience("Example audience", people=6)
    run = leadpipe_sandbox.add_daily_run(audience["id"])
    monkeypatch.setenv("LEADPIPE_EXAMPLE_AUDIENCE_ID", audience["id"])
    return {**audience, "run": run}


def test_parses_without_import_errors():
    assert example_task_ids(DAG_ID) == {"plan_landing", "land_people"}


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="asset watchers need Airflow >= 3.0")
def test_scheduled_on_the_audience_asset_and_its_watcher(audience):
    from airflow_provider_leadpipe.triggers.watchers import LeadpipeAudienceRunEventTrigger

    dag = load_dag(DAG_ID)
    [asset] = dag.timetable.asset_condition.objects
    assert asset.uri == f"leadpipe://api.aws53.cloud/audiences/{audience['id']}"
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, LeadpipeAudienceRunEventTrigger)
    _, kwargs = watcher.trigger.serialize()
    assert kwargs["audience_id"] == audience["id"]
    assert json.loads(json.dumps(kwargs)) == kwargs


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="asset watchers need Airflow >= 3.0")
def test_every_run_named_by_the_events_is_planned(audience, tmp_path):
    dag = load_dag(DAG_ID)
    plan = dag.task_dict["plan_landing"].python_callable
    [asset] = dag.timetable.asset_condition.objects
    events = [
        SimpleNamespace(extra={"from_trigger": True, "payload": {"run": {"id": run}}}) for run in ("r1", "r2")
    ]

    class Accessor:  # as context["triggering_asset_events"]: subscripted by the asset
        def __getitem__(self, key):
            assert key.uri == asset.uri
            return events

        def __bool__(self):
            return True

    planned = plan(triggering_asset_events=Accessor(), params={"output_dir": str(tmp_path)})
    folder = f"{tmp_path}/{audience['id']}"
    assert planned == [
        {"audience_run_id": "r1", "path": f"{folder}/r1.jsonl.gz"},
        {"audience_run_id": "r2", "path": f"{folder}/r2.jsonl.gz"},
    ]


def test_a_run_by_hand_lands_the_latest_completed_run(airflow_db, leadpipe_sandbox, audience, tmp_path):
    dag = load_dag(DAG_ID)
    run = dag.test(run_conf={"output_dir": str(tmp_path)}, **NO_LOGICAL_DATE)
    assert run.state == "success", task_states(run)
    landed = tmp_path / audience["id"] / "latest-completed.jsonl.gz"
    with gzip.open(landed, "rt") as lines:
        rows = [json.loads(line) for line in lines]
    assert rows == api_people(leadpipe_sandbox, audience["id"], audience["run"]["id"])
    assert len(rows) == 6
