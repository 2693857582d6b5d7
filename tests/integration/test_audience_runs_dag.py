"""The Orbit operators inside real Airflow runs (dag.test) against the sandbox over loopback HTTP:
failed runs, SLOTS_FULL, lost responses and retries that must not start a second run, a large
pull checked row by row, and a capped export that must leave nothing behind."""

from __future__ import annotations

import json

import airflow
import pytest
from packaging.version import Version

from tests.integration.dag_runs import (
    NO_LOGICAL_DATE,
    DagFiles,
    dag_run_output,
    task_log_to_this_tests_stdout,
    task_states,
    try_number,
    xcom_value,
)
from tests.orbit import api_people

pytestmark = pytest.mark.integration

#: The route as the sandbox counts it, and as a fault glob.
RUNS = "/v1/intent/audiences/{audienceId}/runs"
RUNS_GLOB = "/v1/intent/audiences/*/runs"
RESULTS = "/v1/intent/audiences/{audienceId}/runs/{runId}/results"


def dag_source(dag_id: str, *, retries: int, new_run_on_retry: bool = False, extra: str = "") -> str:
    return f'''
from __future__ import annotations

from datetime import timedelta

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.audiences import LeadpipeRunAudienceOperator
from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator

with DAG(
    "{dag_id}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1),
    catchup=False,
    params={{"audience_id": "", "out": "/tmp/x.jsonl", "method": "results"}},
    default_args={{"retries": {retries}, "retry_delay": timedelta(seconds=0)}},
) as dag:
    run = LeadpipeRunAudienceOperator(
        task_id="run_audience",
        audience_id="{{{{ params.audience_id }}}}",
        deferrable=True,
        poll_interval=0.1,
        timeout=60,
        new_run_on_retry={new_run_on_retry},
    )
    {extra}
'''


LAND = """land = LeadpipeAudienceResultsToStorageOperator(
        task_id="land_people",
        audience_id="{{ params.audience_id }}",
        audience_run_id="{{ ti.xcom_pull(task_ids='run_audience', key='audience_run_id') }}",
        path="{{ params.out }}",
        format="csv",
        method="export",
    )
    run >> land"""


@pytest.fixture
def dag_file():
    """``dag_file(dag_id, source)``: the DAG of a file written to the DAG folder, removed after."""
    dags = DagFiles()
    yield dags.load
    dags.remove()


@pytest.fixture
def make_dag(dag_file):
    return lambda dag_id, **kwargs: dag_file(dag_id, dag_source(dag_id, **kwargs))


@pytest.fixture
def audience(leadpipe_sandbox):
    leadpipe_sandbox.set_run_schedule(queued_polls=1, running_polls=1)
    return leadpipe_sandbox.create_audience("Integration audience", people=300)


def no_retries_connection(sandbox, monkeypatch) -> None:
    """leadpipe_default with the hook's own retries off: a lost response fails the try at once."""
    conn = json.loads(sandbox.connection_json())
    conn["extra"] = {"max_retries": 0}
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", json.dumps(conn))


def test_failed_run_fails_the_task_once_without_retry_and_logs_the_error_code(
    airflow_db, leadpipe_sandbox, audience, make_dag, capsys, monkeypatch
):
    task_log_to_this_tests_stdout(monkeypatch)
    leadpipe_sandbox.fail_next_run(audience["id"], error_code="MATERIALIZATION_FAILED", error_message="boom")
    dag = make_dag("orbit_failed_run_it", retries=3)
    run = dag.test(run_conf={"audience_id": audience["id"]}, **NO_LOGICAL_DATE)
    assert task_states(run)["run_audience"] == "failed"
    assert try_number(run, "run_audience") == 1, "a failed run is not retried"
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1
    output = capsys.readouterr()
    assert "MATERIALIZATION_FAILED" in output.out + output.err


UPSERT_DAG = """
from __future__ import annotations

from datetime import timedelta

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.audiences import LeadpipeUpsertAudienceOperator

with DAG(
    "orbit_slots_full_it",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
) as dag:
    LeadpipeUpsertAudienceOperator(
        task_id="upsert_audience", name="Waiting its turn", config={"topicIds": [1]}, status="active"
    )
"""


def test_slots_full_fails_the_upsert_once_without_retry(
    airflow_db, leadpipe_sandbox, dag_file, capsys, monkeypatch
):
    task_log_to_this_tests_stdout(monkeypatch)
    leadpipe_sandbox.set_intent({"audienceSlots": 1, "audienceSlotsUsed": 0})
    leadpipe_sandbox.create_audience("Busy", status="active")  # takes the only slot
    paused = leadpipe_sandbox.create_audience("Waiting its turn", status="paused")
    run = dag_file("orbit_slots_full_it", UPSERT_DAG).test(**NO_LOGICAL_DATE)
    assert task_states(run)["upsert_audience"] == "failed"
    assert try_number(run, "upsert_audience") == 1, "SLOTS_FULL is not retried"
    output = capsys.readouterr()
    assert "LeadpipeSlotsFullError" in output.out + output.err
    [still] = [a for a in leadpipe_sandbox.orbit_state()["audiences"] if a["id"] == paused["id"]]
    assert still["status"] == "paused"


def test_a_lost_response_to_the_post_is_retried_into_the_same_run(
    airflow_db, leadpipe_sandbox, audience, make_dag
):
    from leadpipe_sandbox import Fault

    leadpipe_sandbox.queue_faults(Fault.lost_response(count=1, method="POST", path=RUNS_GLOB))
    dag = make_dag("orbit_lost_response_it", retries=0)
    run = dag.test(run_conf={"audience_id": audience["id"]}, **NO_LOGICAL_DATE)
    assert run.state == "success", task_states(run)
    assert leadpipe_sandbox.request_count(RUNS, method="POST") == 2  # the lost one and its retry
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1


@pytest.mark.parametrize(("new_run_on_retry", "runs_created"), [(False, 1), (True, 2)])
def test_a_task_retry_after_the_run_was_created_gets_the_same_run_unless_asked(
    airflow_db, leadpipe_sandbox, audience, make_dag, monkeypatch, new_run_on_retry, runs_created
):
    """The first try dies after the server created the run (its answer never arrives, as when the
    worker is killed between the POST and the XCom push); Airflow retries the task."""
    from leadpipe_sandbox import Fault

    no_retries_connection(leadpipe_sandbox, monkeypatch)
    leadpipe_sandbox.queue_faults(Fault.lost_response(count=1, method="POST", path=RUNS_GLOB))
    dag = make_dag(
        f"orbit_crash_retry_{new_run_on_retry}_it".lower(), retries=1, new_run_on_retry=new_run_on_retry
    )
    run = dag.test(run_conf={"audience_id": audience["id"]}, **NO_LOGICAL_DATE)
    assert run.state == "success", task_states(run)
    assert try_number(run, "run_audience") == 2
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == runs_created


@pytest.mark.skipif(
    Version(airflow.__version__).release[:2] < (3, 3),
    reason="dag.test() re-running a DAG run's tasks with their try number is verified on Airflow 3.3",
)
def test_a_run_the_api_returns_again_is_named_in_the_task_log_and_xcom(
    airflow_db, leadpipe_sandbox, audience, make_dag, capsys
):
    """dag.test() for a logical date that already has a DAG run runs its tasks again in that DAG
    run with the same try number (unlike a clear from the UI or the REST API, which raises
    max_tries), so the run task sends the same key and Orbit returns the run made before: the task
    log names it with its creation time, and XCom key ``audience_run_reused`` holds both."""
    from datetime import datetime, timezone

    dag = make_dag("orbit_same_run_it", retries=1)
    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    first = dag.test(run_conf={"audience_id": audience["id"]}, logical_date=when, run_after=when)
    assert first.state == "success", task_states(first)
    assert xcom_value(first, "run_audience", "audience_run_reused") is None
    made = xcom_value(first, "run_audience")
    capsys.readouterr()
    again = dag.test(run_conf={"audience_id": audience["id"]}, logical_date=when, run_after=when)
    assert again.state == "success" and again.run_id == first.run_id, task_states(again)
    reused = {"id": made["id"], "createdAt": made["createdAt"]}
    assert xcom_value(again, "run_audience", "audience_run_reused") == reused
    assert f"reusing run {made['id']}, created at {made['createdAt']}" in capsys.readouterr().out
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1


def test_export_cap_hit_with_on_truncated_fail_leaves_nothing_at_path(
    airflow_db, leadpipe_sandbox, audience, make_dag, tmp_path
):
    leadpipe_sandbox.set_export_row_cap(100)
    target = tmp_path / "out" / "people.csv"
    dag = make_dag("orbit_export_cap_it", retries=0, extra=LAND)
    run = dag.test(run_conf={"audience_id": audience["id"], "out": str(target)}, **NO_LOGICAL_DATE)
    assert task_states(run) == {"run_audience": "success", "land_people": "failed"}
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_10000_people_arrive_row_by_row(leadpipe_sandbox, tmp_path):
    from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator

    audience = leadpipe_sandbox.create_audience("Ten thousand", people=10_000)
    daily = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-04")
    target = tmp_path / "people.jsonl"
    result = LeadpipeAudienceResultsToStorageOperator(
        task_id="land", audience_id=audience["id"], path=str(target), concurrency=8
    ).execute({})
    assert (result["records"], result["audience_run_id"]) == (10_000, daily["id"])
    written = [json.loads(line) for line in target.read_text().splitlines()]
    expected = api_people(leadpipe_sandbox, audience["id"], daily["id"])
    assert len(written) == len(expected) == 10_000
    for index, (got, want) in enumerate(zip(written, expected, strict=True)):
        assert got == want, f"person {index} differs"


def test_dag_run_output_holds_no_key_and_no_email(
    airflow_db, leadpipe_sandbox, audience, make_dag, tmp_path, capsys, monkeypatch
):
    task_log_to_this_tests_stdout(monkeypatch)
    target = tmp_path / "people.csv"
    dag = make_dag("orbit_leak_check_it", retries=0, extra=LAND)
    run = dag.test(run_conf={"audience_id": audience["id"], "out": str(target)}, **NO_LOGICAL_DATE)
    assert run.state == "success", task_states(run)
    captured = capsys.readouterr()
    output = dag_run_output(captured.out + captured.err)
    run_id = xcom_value(run, "run_audience", key="audience_run_id")
    emails = {p["email"] for p in api_people(leadpipe_sandbox, audience["id"], run_id) if p.get("email")}
    assert emails and "land_people" in output
    assert leadpipe_sandbox.api_key not in output
    assert not [email for email in emails if email in output]


SENSOR_DAG = """
from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.sensors.audiences import LeadpipeAudienceRunSensor

with DAG(
    "orbit_sensor_it",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1),
    catchup=False,
    params={"audience_id": "", "run_id": "", "since": ""},
) as dag:
    LeadpipeAudienceRunSensor(
        task_id="wait_for_run",
        audience_id="{{ params.audience_id }}",
        audience_run_id="{{ params.run_id }}",
        min_data_date="{{ params.since }}",
        poke_interval=0.1,
        timeout=60,
        deferrable=True,
    )
"""


@pytest.fixture
def sensor_dag(dag_file):
    return dag_file("orbit_sensor_it", SENSOR_DAG)


def test_sensor_defers_until_the_run_completes_and_pushes_it(
    airflow_db, leadpipe_sandbox, audience, sensor_dag
):
    import httpx

    leadpipe_sandbox.set_run_schedule(queued_polls=2, running_polls=2)
    response = httpx.post(
        f"{leadpipe_sandbox.url}/v1/intent/audiences/{audience['id']}/runs",
        json={"runType": "manual"},
        headers={"x-api-key": leadpipe_sandbox.api_key},
    )
    run_id = response.raise_for_status().json()["data"]["id"]
    run = sensor_dag.test(run_conf={"audience_id": audience["id"], "run_id": run_id}, **NO_LOGICAL_DATE)
    assert run.state == "success", task_states(run)
    pushed = xcom_value(run, "wait_for_run")
    assert (pushed["id"], pushed["status"], pushed["resultCount"]) == (run_id, "completed", 300)
    # It was queued at the first poke: the trigger did the rest (2 queued + 2 running polls).
    assert leadpipe_sandbox.request_count(RESULTS) >= 4


def test_sensor_without_a_run_id_takes_the_daily_run_of_the_date(
    airflow_db, leadpipe_sandbox, audience, sensor_dag
):
    leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-03")
    daily = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-04")
    run = sensor_dag.test(run_conf={"audience_id": audience["id"], "since": "2026-05-04"}, **NO_LOGICAL_DATE)
    assert run.state == "success", task_states(run)
    assert xcom_value(run, "wait_for_run")["id"] == daily["id"]
