"""leadpipe_intent_audience_daily end to end with dag.test() against the sandbox.

The audience does not exist at first: the run creates it (active), queues a run that goes queued ->
running -> completed while the operator waits deferred, and lands every person in the output folder.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.integration.dag_runs import (
    NO_LOGICAL_DATE,
    example_task_ids,
    load_dag,
    task_states,
    xcom_value,
)
from tests.orbit import api_people

pytestmark = pytest.mark.integration
DAG_ID = "leadpipe_intent_audience_daily"
TASKS = {"upsert_audience", "run_audience", "land_people", "summary"}


def test_parses_without_import_errors():
    assert example_task_ids(DAG_ID) == TASKS


def test_upserts_runs_and_lands_every_person(airflow_db, leadpipe_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("LEADPIPE_EXAMPLE_POLL_INTERVAL", "0.2")
    leadpipe_sandbox.set_run_schedule(queued_polls=1, running_polls=2)
    dag = load_dag(DAG_ID)
    out = tmp_path / "out"

    run = dag.test(run_conf={"output_dir": str(out), "audience_name": "Example audience"}, **NO_LOGICAL_DATE)

    assert run.state == "success", task_states(run)
    assert task_states(run) == dict.fromkeys(TASKS, "success")
    audience = xcom_value(run, "upsert_audience")
    assert (audience["name"], audience["status"]) == ("Example audience", "active")
    run_id = xcom_value(run, "run_audience", key="audience_run_id")
    assert xcom_value(run, "run_audience")["id"] == run_id
    assert xcom_value(run, "run_audience")["status"] == "completed"
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1
    summary = xcom_value(run, "summary")
    people = api_people(leadpipe_sandbox, audience["id"], run_id)
    assert summary["audience_run_id"] == run_id
    assert summary["people"] == summary["result_count"] == len(people) > 0
    [landed] = (out / "orbit").iterdir()
    assert landed.name == f"{run.run_id.replace(':', '-').replace('+', '_')}.jsonl.gz"
    assert summary["path"].endswith(str(landed))
    with gzip.open(landed, "rt") as lines:
        assert [json.loads(line) for line in lines] == people
    # People are personal data: no XCom holds any of them.
    emails = {p["email"] for p in people if p.get("email")}
    for task_id in TASKS:
        text = json.dumps(xcom_value(run, task_id))
        assert not any(email in text for email in emails), task_id
