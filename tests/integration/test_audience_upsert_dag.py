"""LeadpipeUpsertAudienceOperator inside real Airflow runs (dag.test) against the sandbox over
loopback HTTP: an invalid filter key fails before any create or update is sent (the sandbox's
request log proves it), an unchanged config sends no update and says "unchanged" in XCom, a size
gate refuses activation, and the preview's masked sample reaches neither XCom nor the task log."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.integration.dag_runs import (
    NO_LOGICAL_DATE,
    DagFiles,
    dag_run_output,
    task_log_to_this_tests_stdout,
    task_states,
    try_number,
    xcom_value,
)

pytestmark = pytest.mark.integration

AUDIENCES = "/v1/intent/audiences"
AUDIENCE = "/v1/intent/audiences/{audienceId}"
PREVIEW = "/v1/intent/audiences/preview"
CONFIG = {"topicIds": [101, 103], "filters": {"role.seniority": {"values": ["VP", "Director"]}}}


def source(dag_id: str) -> str:
    return f'''
from __future__ import annotations

from datetime import timedelta

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.audiences import LeadpipeUpsertAudienceOperator

with DAG(
    "{dag_id}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1),
    catchup=False,
    params={{"config": {{}}, "status": "draft", "min": 0}},
    render_template_as_native_obj=True,
    default_args={{"retries": 2, "retry_delay": timedelta(seconds=0)}},
) as dag:
    LeadpipeUpsertAudienceOperator(
        task_id="upsert_audience",
        name="Audience as code",
        config="{{{{ params.config }}}}",
        status="{{{{ params.status }}}}",
        min_audience_size=50,
    )
'''


@pytest.fixture
def dag_file():
    """``dag_file(dag_id, source)``: the DAG of a file written to the DAG folder, removed after."""
    dags = DagFiles()
    yield dags.load
    dags.remove()


def writes(sandbox) -> int:
    return sandbox.request_count(AUDIENCES, method="POST") + sandbox.request_count(AUDIENCE, method="PATCH")


def run(dag_file, name, **conf):
    return dag_file(name, source(name)).test(run_conf=conf, **NO_LOGICAL_DATE)


def test_an_invalid_filter_key_fails_before_anything_is_sent(
    airflow_db, leadpipe_sandbox, dag_file, capsys, monkeypatch
):
    task_log_to_this_tests_stdout(monkeypatch)
    bad = {**CONFIG, "filters": {"role.seniorty": {"values": ["VP"]}}}
    dag_run = run(dag_file, "orbit_upsert_invalid_it", config=bad)
    assert task_states(dag_run)["upsert_audience"] == "failed"
    assert try_number(dag_run, "upsert_audience") == 1, "an invalid config is not retried"
    output = capsys.readouterr()
    # Airflow 3.0 prints the traceback with rich: colour codes and wrapped lines.
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", output.out + output.err).split())
    assert "LeadpipeInvalidConfigError" in text
    assert "filters.role.seniorty: Unknown filter key 'role.seniorty'" in text
    assert leadpipe_sandbox.request_count("/v1/intent/audiences/validate", method="POST") == 1
    assert writes(leadpipe_sandbox) == 0
    assert leadpipe_sandbox.orbit_state()["audiences"] == []


def test_unchanged_config_sends_no_update_and_size_gate_refuses_activation(
    airflow_db, leadpipe_sandbox, dag_file, capsys, monkeypatch
):
    task_log_to_this_tests_stdout(monkeypatch)
    first = run(dag_file, "orbit_upsert_first_it", config=CONFIG, status="draft")
    assert xcom_value(first, "upsert_audience")["upsert"] == "created"
    same = run(dag_file, "orbit_upsert_same_it", config=CONFIG, status="draft")
    unchanged = xcom_value(same, "upsert_audience")
    assert unchanged["upsert"] == "unchanged"
    assert writes(leadpipe_sandbox) == 1  # the create only

    nobody = {"topicIds": [101], "filters": {"jobTitle.include": ["Astronaut"]}}
    gated = run(dag_file, "orbit_upsert_gated_it", config=nobody, status="active")
    assert task_states(gated)["upsert_audience"] == "failed"
    assert try_number(gated, "upsert_audience") == 1, "a size gate is not retried"
    assert writes(leadpipe_sandbox) == 1
    [audience] = leadpipe_sandbox.orbit_state()["audiences"]
    assert (audience["status"], audience["config"]) == ("draft", CONFIG)

    activated = run(dag_file, "orbit_upsert_active_it", config=CONFIG, status="active")
    result = xcom_value(activated, "upsert_audience")
    assert (result["upsert"], result["status"]) == ("updated", "active")

    # The masked sample the previews returned is in no XCom and no log line.
    sample = httpx.post(
        f"{leadpipe_sandbox.url}{PREVIEW}", json=CONFIG, headers={"x-api-key": leadpipe_sandbox.api_key}
    ).json()["data"]["sample"]
    secrets = {person[field] for person in sample for field in ("fullName", "email") if person[field]}
    output = capsys.readouterr()
    text = dag_run_output(output.out + output.err) + json.dumps([unchanged, result])
    assert "LeadpipeAudienceSizeError" in text
    assert secrets and not [secret for secret in secrets if secret in text]
