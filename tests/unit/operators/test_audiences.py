"""The Orbit audience operators against the sandbox over loopback HTTP (no DAG run: see tests/integration)."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAudienceRunError,
    LeadpipeAudienceRunTimeoutError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeExportTruncatedError,
    LeadpipeSlotsFullError,
)
from airflow_provider_leadpipe.operators.audiences import (
    RUN_ID_XCOM_KEY,
    LeadpipeAudienceResultsToStorageOperator,
    LeadpipeRunAudienceOperator,
    LeadpipeUpsertAudienceOperator,
    task_idempotency_key,
)
from airflow_provider_leadpipe.triggers.audiences import LeadpipeAudienceRunTrigger
from tests.orbit import api_export_csv, api_people, api_runs, context

UUID = "3f2c0e1a-1111-4222-8333-944455556666"
CONFIG = {"topicIds": [101, 202], "minScore": 70}


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LeadpipeRunAudienceOperator(task_id="t", audience_id="abc"), "audience_id must be a UUID"),
        (
            lambda: LeadpipeRunAudienceOperator(task_id="t", audience_id=UUID, poll_interval=0),
            "poll_interval",
        ),
        (lambda: LeadpipeRunAudienceOperator(task_id="t", audience_id=UUID, timeout=-1), "timeout must be"),
        (
            lambda: LeadpipeRunAudienceOperator(task_id="t", audience_id=UUID, idempotency_key=" "),
            "idempotency",
        ),
        (lambda: LeadpipeUpsertAudienceOperator(task_id="t", name="", config=CONFIG), "name must be"),
        (
            lambda: LeadpipeUpsertAudienceOperator(task_id="t", name="A", config=[1]),
            "config must be a dict",
        ),
        (
            lambda: LeadpipeUpsertAudienceOperator(task_id="t", name="A", config={}, status="on"),
            "status must be",
        ),
        (lambda: LeadpipeUpsertAudienceOperator(task_id="t", name="A", config=None), "config must be a dict"),
        (
            lambda: LeadpipeRunAudienceOperator(task_id="t", audience_id=UUID, new_run_on_retry="maybe"),
            "new_run_on_retry",
        ),
        (
            lambda: LeadpipeRunAudienceOperator(task_id="t", audience_id=UUID, wait_for_completion=2),
            "wait_for_completion",
        ),
        (lambda: results(path="/tmp/x.jsonl", format="parquet"), "format must be one of jsonl, csv"),
        (lambda: results(path="/tmp/x.jsonl", method="s3"), "method must be one of results, export"),
        (lambda: results(path="/tmp/x.jsonl", on_truncated="ignore"), "on_truncated must be one of fail"),
        (lambda: results(path="/tmp/x.jsonl", audience_run_id="7"), "audience_run_id must be a UUID"),
        (lambda: results(path="/tmp/x.jsonl", compression="zip"), "compression must be"),
        (lambda: results(path="/tmp/out/"), "path must name a file"),
        (lambda: results(path="/tmp/x.jsonl", method="export"), "give format='csv'"),
    ],
)
def test_bad_literal_arguments_fail_at_parse_naming_the_task_and_argument(make, message):
    with pytest.raises(LeadpipeConfigError, match=message) as caught:
        make()
    assert "'t'" in str(caught.value)


def results(**kwargs):
    return LeadpipeAudienceResultsToStorageOperator(task_id="t", audience_id=UUID, **kwargs)


def test_templated_arguments_are_checked_once_rendered_before_anything_is_sent(leadpipe_sandbox):
    op = LeadpipeRunAudienceOperator(task_id="run", audience_id="{{ params.audience }}")  # fine at parse
    op.audience_id = "not-a-uuid"  # what the template rendered to
    with pytest.raises(
        LeadpipeConfigError, match="LeadpipeRunAudienceOperator 'run': audience_id must be a UUID"
    ):
        op.execute(context())
    assert leadpipe_sandbox.request_count() == 0


# -- idempotency key --------------------------------------------------------------------------------


def test_default_key_is_the_same_on_every_try_and_names_the_task_instance():
    first = task_idempotency_key(context(try_number=1))
    assert first == task_idempotency_key(context(try_number=2))
    assert first == "airflow:orbit_dag:manual__2026-05-05T09:30:00+00:00:run:-1"
    assert first != task_idempotency_key(context(map_index=3))
    assert first != task_idempotency_key(context(task_id="other"))
    assert first != task_idempotency_key(context(run_id="scheduled__2026-05-06"))


def test_new_run_on_retry_adds_the_try_number_to_the_default_and_to_a_given_key():
    first = task_idempotency_key(context(try_number=1), new_run_on_retry=True)
    assert first != task_idempotency_key(context(try_number=2), new_run_on_retry=True)
    assert task_idempotency_key(context(try_number=3), "nightly", new_run_on_retry=True) == "nightly:try3"
    assert task_idempotency_key(context(try_number=3), "nightly") == "nightly"


# -- run ------------------------------------------------------------------------------------------


@pytest.fixture
def audience(leadpipe_sandbox):
    leadpipe_sandbox.set_run_schedule(queued_polls=1, running_polls=1)
    return leadpipe_sandbox.create_audience("Ops audience", people=250)


def run_op(audience, **kwargs) -> LeadpipeRunAudienceOperator:
    return LeadpipeRunAudienceOperator(
        task_id="run",
        audience_id=audience["id"],
        poll_interval=0.02,
        hook_params={"retry_backoff": 0.001},
        **kwargs,
    )


def test_run_waits_in_the_worker_and_returns_the_completed_run(leadpipe_sandbox, audience):
    ctx = context()
    run = run_op(audience, deferrable=False).execute(ctx)
    assert (run["status"], run["resultCount"]) == ("completed", 250)
    assert ctx["ti"].pushed == [(RUN_ID_XCOM_KEY, run["id"])]  # pushed before waiting
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1
    json.dumps(run)


def test_a_second_execute_of_the_same_task_instance_gets_the_same_run(leadpipe_sandbox, audience):
    first = run_op(audience, deferrable=False).execute(context(try_number=1))
    second = run_op(audience, deferrable=False).execute(context(try_number=2))
    assert first["id"] == second["id"]
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1


def test_new_run_on_retry_starts_a_second_run(leadpipe_sandbox, audience):
    first = run_op(audience, new_run_on_retry=True, deferrable=False).execute(context(try_number=1))
    second = run_op(audience, new_run_on_retry=True, deferrable=False).execute(context(try_number=2))
    assert first["id"] != second["id"]
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 2


def test_deferrable_run_checks_once_then_defers_with_a_wall_clock_deadline(leadpipe_sandbox, audience):
    import time

    from airflow.providers.common.compat.sdk import TaskDeferred

    ctx = context()
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        run_op(audience, deferrable=True, timeout=120).execute(ctx)
    trigger = deferred.value.trigger
    assert isinstance(trigger, LeadpipeAudienceRunTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["audience_run_id"] == ctx["ti"].pushed[0][1]
    assert before + 120 <= kwargs["deadline"] <= time.time() + 120
    assert deferred.value.method_name == "execute_complete"
    assert leadpipe_sandbox.api_key not in json.dumps(kwargs)
    assert kwargs["hook_params"] == {"retry_backoff": 0.001}  # the task's own hook settings


def test_bad_hook_params_fail_at_parse():
    with pytest.raises(LeadpipeConfigError, match=r"'run': hook_params\['max_retries'\]"):
        LeadpipeRunAudienceOperator(task_id="run", audience_id=UUID, hook_params={"max_retries": -1})


def test_execute_complete_returns_the_run_or_raises_the_events_error(audience):
    op = run_op(audience)
    run = {"id": UUID, "status": "completed", "runType": "manual", "dataDate": "2026-05-04", "resultCount": 3}
    assert op.execute_complete({}, {"status": "success", "run": run, "message": "done"})["id"] == UUID
    with pytest.raises(LeadpipeAudienceRunTimeoutError, match="too slow"):
        op.execute_complete({}, {"status": "timeout", "message": "too slow"})


def test_failed_run_fails_the_task_with_error_code_and_message(leadpipe_sandbox, audience):
    leadpipe_sandbox.fail_next_run(
        audience["id"], error_code="MATERIALIZATION_FAILED", error_message="no rows"
    )
    with pytest.raises(LeadpipeAudienceRunError, match=r"MATERIALIZATION_FAILED.*no rows") as caught:
        run_op(audience, deferrable=False).execute(context())
    assert caught.value.error_code == "MATERIALIZATION_FAILED"


def test_run_unfinished_at_timeout_fails_with_a_timeout_error(leadpipe_sandbox, audience):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)  # queued for the whole test
    with pytest.raises(LeadpipeAudienceRunTimeoutError, match=r"within the timeout of 0.3 s.*queued"):
        run_op(audience, deferrable=False, timeout=0.3).execute(context())


def test_on_kill_cancels_a_queued_run_and_never_raises(leadpipe_sandbox, audience, monkeypatch):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    op = run_op(audience, wait_for_completion=False)
    queued = op.execute(context())
    op.on_kill()
    [run] = api_runs(leadpipe_sandbox, audience["id"])
    assert (run["id"], run["status"]) == (queued["id"], "cancelled")
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", "leadpipe://:k@127.0.0.1:9")  # nothing listens
    op._run = op._run.model_copy(update={})  # still believed queued
    op.on_kill()  # logs a warning, does not raise


def test_wait_for_completion_false_returns_the_queued_run(leadpipe_sandbox, audience):
    run = run_op(audience, wait_for_completion=False).execute(context())
    assert run["status"] == "queued"


# -- upsert ---------------------------------------------------------------------------------------


def upsert(**kwargs):
    return LeadpipeUpsertAudienceOperator(task_id="upsert", **kwargs).execute(context())


def test_upsert_creates_then_updates_the_same_audience(leadpipe_sandbox):
    created = upsert(name="Fintech buyers", config=CONFIG, status="draft")
    assert (created["name"], created["status"]) == ("Fintech buyers", "draft")
    updated = upsert(name="Fintech buyers", config={**CONFIG, "minScore": 80}, status="active")
    assert (updated["id"], updated["status"]) == (created["id"], "active")
    named = [a for a in leadpipe_sandbox.orbit_state()["audiences"] if a["name"] == "Fintech buyers"]
    assert len(named) == 1


def test_upsert_takes_a_config_rendered_to_json_text(leadpipe_sandbox):
    op = LeadpipeUpsertAudienceOperator(task_id="upsert", name="Rendered", config="{{ params.config }}")
    op.config = '{"topicIds": [7], "minScore": 60}'  # what the template rendered to
    created = op.execute(context())
    [audience] = [a for a in leadpipe_sandbox.orbit_state()["audiences"] if a["id"] == created["id"]]
    assert audience["config"] == {"topicIds": [7], "minScore": 60}


def test_upsert_with_two_audiences_of_that_name_names_both_ids(leadpipe_sandbox):
    one = leadpipe_sandbox.create_audience("Twin", status="draft")
    two = leadpipe_sandbox.create_audience("Twin", status="draft")
    with pytest.raises(LeadpipeConflictError) as caught:
        upsert(name="Twin", config=CONFIG)
    assert one["id"] in str(caught.value) and two["id"] in str(caught.value)


def test_upsert_active_without_a_free_slot_fails_fast(leadpipe_sandbox):
    leadpipe_sandbox.set_intent({"audienceSlots": 1, "audienceSlotsUsed": 0})
    leadpipe_sandbox.create_audience("Busy", status="active")  # takes the only slot
    with pytest.raises(LeadpipeSlotsFullError, match="paus"):
        upsert(name="One too many", config=CONFIG, status="active")


# -- results to storage ----------------------------------------------------------------------------


@pytest.fixture
def completed(leadpipe_sandbox):
    audience = leadpipe_sandbox.create_audience("Results audience", people=437)
    run = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-04")
    return audience, run


def read_lines(path) -> list[str]:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode().splitlines()


@pytest.mark.parametrize("name", ["people.jsonl", "people.jsonl.gz"])
def test_results_as_jsonl_are_every_person_in_order(leadpipe_sandbox, completed, tmp_path, name):
    audience, run = completed
    target = tmp_path / "out" / name
    result = results_op(audience, target, audience_run_id=run["id"]).execute({})
    assert result == {
        "path": str(target),
        "records": 437,
        "audience_run_id": run["id"],
        "data_date": "2026-05-04",
        "truncated": False,
    }
    assert [json.loads(line) for line in read_lines(target)] == api_people(
        leadpipe_sandbox, audience["id"], run["id"]
    )
    assert [p.name for p in target.parent.iterdir()] == [name]


def results_op(audience, target, **kwargs):
    return LeadpipeAudienceResultsToStorageOperator(
        task_id="land", audience_id=audience["id"], path=str(target), **kwargs
    )


def test_without_a_run_id_the_latest_completed_run_is_used(leadpipe_sandbox, completed, tmp_path):
    audience, older = completed
    newer = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-05")
    result = results_op(audience, tmp_path / "p.jsonl").execute({})
    assert (result["audience_run_id"], result["data_date"]) == (newer["id"], "2026-05-05")
    assert older["id"] != newer["id"]


def test_results_as_csv_have_one_row_per_person_with_dotted_columns(leadpipe_sandbox, completed, tmp_path):
    audience, run = completed
    target = tmp_path / "people.csv"
    result = results_op(audience, target, audience_run_id=run["id"], format="csv").execute({})
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    people = api_people(leadpipe_sandbox, audience["id"], run["id"])
    assert result["records"] == len(rows) == len(people) == 437
    for row, person in zip(rows, people, strict=True):
        assert row["email"] == (person.get("email") or "")
        assert row["company.name"] == (person["company"]["name"] or "")


def test_export_method_streams_the_apis_csv_as_it_is(leadpipe_sandbox, completed, tmp_path):
    audience, run = completed
    target = tmp_path / "people.csv.gz"
    result = results_op(audience, target, audience_run_id=run["id"], method="export", format="csv").execute(
        {}
    )
    assert gzip.decompress(target.read_bytes()) == api_export_csv(leadpipe_sandbox, audience["id"], run["id"])
    assert (result["records"], result["truncated"]) == (437, False)


def test_export_over_the_row_cap_fails_and_leaves_nothing(leadpipe_sandbox, completed, tmp_path):
    audience, run = completed
    leadpipe_sandbox.set_export_row_cap(100)
    op = results_op(
        audience, tmp_path / "out" / "p.csv", audience_run_id=run["id"], method="export", format="csv"
    )
    with pytest.raises(LeadpipeExportTruncatedError, match=r"437 people.*capped at 100"):
        op.execute({})
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_export_over_the_row_cap_with_warn_writes_the_capped_file(
    leadpipe_sandbox, completed, tmp_path, caplog, capsys
):
    audience, run = completed
    leadpipe_sandbox.set_export_row_cap(100)
    op = results_op(
        audience,
        tmp_path / "p.csv",
        audience_run_id=run["id"],
        method="export",
        format="csv",
        on_truncated="warn",
    )
    result = op.execute({})
    assert (result["records"], result["truncated"]) == (100, True)
    assert "capped at 100" in caplog.text + capsys.readouterr().out  # Airflow 3 logs via structlog
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 101  # header + the capped rows


def test_a_run_not_completed_yet_is_refused_before_writing(leadpipe_sandbox, audience, tmp_path):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    queued = run_op(audience, wait_for_completion=False).execute(context())
    with pytest.raises(Exception, match="is queued"):
        results_op(audience, tmp_path / "p.jsonl", audience_run_id=queued["id"]).execute({})
    assert list(tmp_path.iterdir()) == []
