"""leadpipe_audience_as_code (an audience kept in a YAML file beside the DAG) with dag.test() against
the sandbox: it runs end to end, a second run sends no update, an invalid filter key in the file
fails the upsert before any create or update request (the sandbox's request log), a size gate
refuses activation, and the people reach neither XCom nor the logs. The CI command passes over the
same folder."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import DAGS_FOLDER
from tests.integration.dag_runs import (
    EXAMPLE_DAGS,
    NO_LOGICAL_DATE,
    dag_run_output,
    dagbag,
    example_task_ids,
    load_dag,
    task_log_to_this_tests_stdout,
    task_states,
    xcom_value,
)
from tests.orbit import api_people

pytestmark = pytest.mark.integration
DAG_ID = "leadpipe_audience_as_code"
TASKS = {"upsert_audience", "run_audience", "land_people"}
AUDIENCES = "/v1/intent/audiences"
AUDIENCE = "/v1/intent/audiences/{audienceId}"
VALIDATE = "/v1/intent/audiences/validate"
FILE_NAME = "high_intent_crm.yaml"
NAME = "High-intent CRM buyers"


@pytest.fixture
def audience_file():
    """The YAML file beside the DAG's copy in the test DAG folder; restored after the test."""
    path = DAGS_FOLDER / "audiences" / FILE_NAME
    original = path.read_text()
    yield path
    path.write_text(original)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def writes(sandbox) -> int:
    """Create and update requests sent to Orbit."""
    return sandbox.request_count(AUDIENCES, method="POST") + sandbox.request_count(AUDIENCE, method="PATCH")


def output_text(capsys) -> str:
    output = capsys.readouterr()
    # Airflow 3.0 prints tracebacks with rich: colour codes and wrapped lines.
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", dag_run_output(output.out + output.err)).split())


def run_dag(tmp_path: Path):
    return load_dag(DAG_ID).test(run_conf={"output_dir": str(tmp_path / "out")}, **NO_LOGICAL_DATE)


def test_parses_without_import_errors():
    assert example_task_ids(DAG_ID) == TASKS


def test_the_file_is_found_beside_the_dag_wherever_the_folder_is(tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere" / "dags"
    moved.mkdir(parents=True)
    shutil.copy(EXAMPLE_DAGS / f"{DAG_ID}.py", moved)
    shutil.copytree(EXAMPLE_DAGS / "audiences", moved / "audiences")
    monkeypatch.chdir(tmp_path)  # not the repository, nor the DAG's folder
    bag = dagbag(moved / f"{DAG_ID}.py")
    assert not bag.import_errors, bag.import_errors
    upsert = bag.dags[DAG_ID].get_task("upsert_audience")
    assert (upsert.name, upsert.status) == (NAME, "active")
    assert upsert.topic_names == ["CRM Software", "Sales Engagement"]
    assert (upsert.min_audience_size, upsert.max_audience_size) == (50, 5000)
    assert upsert.config["filters"]["contact.hasBusinessEmail"] is True

    shutil.rmtree(moved / "audiences")
    [error] = dagbag(moved / f"{DAG_ID}.py").import_errors.values()
    assert "LeadpipeConfigError" in error and f"audience file {moved / 'audiences' / FILE_NAME}" in error


def test_runs_end_to_end_and_a_second_run_sends_no_update(
    airflow_db, leadpipe_sandbox, monkeypatch, tmp_path, capsys
):
    task_log_to_this_tests_stdout(monkeypatch)
    monkeypatch.setenv("LEADPIPE_EXAMPLE_POLL_INTERVAL", "0.2")
    leadpipe_sandbox.set_run_schedule(queued_polls=1, running_polls=1)

    first = run_dag(tmp_path)
    assert task_states(first) == dict.fromkeys(TASKS, "success")
    created = xcom_value(first, "upsert_audience")
    assert (created["name"], created["status"], created["upsert"]) == (NAME, "active", "created")
    [audience] = leadpipe_sandbox.orbit_state()["audiences"]
    assert audience["config"]["topicIds"] == [104, 108]  # CRM Software, Sales Engagement by name
    first_xcom = {task_id: xcom_value(first, task_id) for task_id in TASKS}  # read before the next run
    first_run_id = xcom_value(first, "run_audience", key="audience_run_id")
    assert writes(leadpipe_sandbox) == 1  # the create

    second = run_dag(tmp_path)
    assert task_states(second) == dict.fromkeys(TASKS, "success")
    unchanged = xcom_value(second, "upsert_audience")
    assert (unchanged["id"], unchanged["upsert"]) == (created["id"], "unchanged")
    assert writes(leadpipe_sandbox) == 1, "the second run sent an update"
    assert leadpipe_sandbox.audience_runs_created(created["id"]) == 2  # run daily: a new run each time

    people = api_people(leadpipe_sandbox, created["id"], first_run_id)
    assert people
    landed = sorted((tmp_path / "out" / "audience-as-code").iterdir())
    assert len(landed) == 2
    first_file = landed[0].parent / f"{first.run_id.replace(':', '-').replace('+', '_')}.jsonl.gz"
    assert first_file in landed
    with gzip.open(first_file, "rt") as lines:
        assert [json.loads(line) for line in lines] == people
    assert first_xcom["land_people"]["records"] == len(people)

    # People are personal data: in the files only. Nor does the preview's masked sample leak.
    sample = httpx.post(
        f"{leadpipe_sandbox.url}/v1/intent/audiences/preview",
        json=audience["config"],
        headers={"x-api-key": leadpipe_sandbox.api_key},
    ).json()["data"]["sample"]
    personal = {p[field] for p in people for field in ("email", "fullName") if p.get(field)}
    personal |= {p[field] for p in sample for field in ("fullName", "email") if p.get(field)}
    second_xcom = {task_id: xcom_value(second, task_id) for task_id in TASKS}
    logs = output_text(capsys)
    assert f"('{NAME}') unchanged: status active" in logs  # the task logs were captured
    text = logs + json.dumps([first_xcom, second_xcom])
    assert personal and not [value for value in personal if value in text]


def test_an_invalid_filter_key_in_the_file_fails_before_any_write(
    airflow_db, leadpipe_sandbox, audience_file, monkeypatch, tmp_path, capsys
):
    task_log_to_this_tests_stdout(monkeypatch)
    edit(audience_file, "role.seniority:", "role.seniorty:")

    run = run_dag(tmp_path)

    states = task_states(run)
    assert states["upsert_audience"] == "failed"
    assert states["run_audience"] == states["land_people"] == "upstream_failed"
    text = output_text(capsys)
    assert "LeadpipeInvalidConfigError" in text
    assert "filters.role.seniorty: Unknown filter key 'role.seniorty'" in text
    assert leadpipe_sandbox.request_count(VALIDATE, method="POST") == 1
    assert writes(leadpipe_sandbox) == 0
    assert leadpipe_sandbox.orbit_state()["audiences"] == []


def test_a_size_gate_refuses_activation(
    airflow_db, leadpipe_sandbox, audience_file, monkeypatch, tmp_path, capsys
):
    task_log_to_this_tests_stdout(monkeypatch)
    edit(audience_file, "min_audience_size: 50\nmax_audience_size: 5000", "min_audience_size: 100000")

    run = run_dag(tmp_path)

    assert task_states(run)["upsert_audience"] == "failed"
    text = output_text(capsys)
    assert "LeadpipeAudienceSizeError" in text and "not made active" in text
    assert leadpipe_sandbox.request_count("/v1/intent/audiences/preview", method="POST") == 1
    assert writes(leadpipe_sandbox) == 0
    assert leadpipe_sandbox.orbit_state()["audiences"] == []
    assert not (tmp_path / "out").exists()


def test_the_ci_command_passes_over_the_example_audiences(leadpipe_sandbox, tmp_path):
    # A metadata DB of its own: a second process must not write to the suite's SQLite file.
    home = Path(tempfile.mkdtemp(prefix="leadpipe-cli-home-"))
    env = {
        **os.environ,
        "AIRFLOW_CONN_LEADPIPE_DEFAULT": leadpipe_sandbox.connection_json(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    command = "airflow_provider_leadpipe.hooks.config_files"
    done = subprocess.run(
        [sys.executable, "-m", command, str(EXAMPLE_DAGS / "audiences")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr
    assert "1 audience file(s) checked, 0 problem(s)" in done.stderr
    assert leadpipe_sandbox.request_count(VALIDATE, method="POST") == 1
    assert leadpipe_sandbox.request_count("/v1/intent/audiences/preview", method="POST") == 1  # size-gated
    assert writes(leadpipe_sandbox) == 0

    edited = tmp_path / "audiences"
    shutil.copytree(EXAMPLE_DAGS / "audiences", edited)
    edit(edited / FILE_NAME, "role.seniority:", "role.seniorty:")
    done = subprocess.run(
        [sys.executable, "-m", command, str(edited)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == (
        f"{edited / FILE_NAME}: config: filters.role.seniorty: Unknown filter key 'role.seniorty'\n"
    )
    shutil.rmtree(home, ignore_errors=True)
