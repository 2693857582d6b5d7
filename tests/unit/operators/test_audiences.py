"""The Orbit audience operators against the sandbox over loopback HTTP (no DAG run: see tests/integration)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAudienceRunError,
    LeadpipeAudienceRunTimeoutError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeExportTruncatedError,
    LeadpipeIncompleteError,
    LeadpipeSlotsFullError,
)
from airflow_provider_leadpipe.hooks.audience_answers import ExportCsvStream
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator
from airflow_provider_leadpipe.operators.audiences import (
    REUSED_XCOM_KEY,
    RUN_ID_XCOM_KEY,
    LeadpipeRunAudienceOperator,
    LeadpipeUpsertAudienceOperator,
    task_idempotency_key,
)
from airflow_provider_leadpipe.triggers.audiences import LeadpipeAudienceRunTrigger
from airflow_provider_leadpipe.utils import compat
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


def test_a_cleared_task_instance_gets_a_new_key_and_its_retries_keep_it():
    task = SimpleNamespace(retries=2)
    tries = [context(try_number=n, max_tries=2, task=task) for n in (1, 2, 3)]  # never cleared
    assert {task_idempotency_key(c) for c in tries} == {task_idempotency_key(context())}
    # Cleared after try 3: Airflow sets max_tries = 3 + 2; tries 4 and 5 are that clear's.
    after_clear = [task_idempotency_key(context(try_number=n, max_tries=5, task=task)) for n in (4, 5)]
    assert after_clear[0] == after_clear[1] == task_idempotency_key(context()) + ":clear4"
    # Cleared again after try 4.
    again = task_idempotency_key(context(try_number=5, max_tries=6, task=task))
    assert again.endswith(":clear5") and again not in after_clear
    # The user's own key is theirs: a clear does not change it.
    assert task_idempotency_key(context(try_number=4, max_tries=5, task=task), "nightly") == "nightly"


def test_a_dag_run_re_created_under_the_same_id_gets_a_new_key():
    first = SimpleNamespace(start_date=datetime(2026, 5, 5, 9, 30, tzinfo=timezone.utc))
    second = SimpleNamespace(start_date=datetime(2026, 5, 5, 11, 0, tzinfo=timezone.utc))
    key = task_idempotency_key(context(dag_run=first))
    assert key == task_idempotency_key(context(dag_run=first, try_number=2))
    assert key != task_idempotency_key(context(dag_run=second))
    assert key.endswith(":dr2026-05-05T09:30:00+00:00")


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
    assert ctx["ti"].pushed == [(RUN_ID_XCOM_KEY, run["id"])]  # before waiting; a new run: nothing reused
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1
    json.dumps(run)


def test_a_second_execute_of_the_same_task_instance_gets_the_same_run_and_says_so(
    leadpipe_sandbox, audience, caplog, capsys
):
    first = run_op(audience, deferrable=False).execute(context(try_number=1))
    retry = context(try_number=2)
    second = run_op(audience, deferrable=False).execute(retry)
    assert first["id"] == second["id"]
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1
    assert (REUSED_XCOM_KEY, {"id": first["id"], "createdAt": first["createdAt"]}) in retry["ti"].pushed
    logged = caplog.text + capsys.readouterr().out  # Airflow 3 logs via structlog
    assert f"reusing run {first['id']}, created at {first['createdAt']}" in logged


def test_a_cleared_task_instance_starts_a_new_run(leadpipe_sandbox, audience):
    task = SimpleNamespace(retries=1)
    first = run_op(audience, deferrable=False).execute(context(try_number=1, max_tries=1, task=task))
    # Cleared after try 1 (Airflow: max_tries = 1 + retries), e.g. after changing the audience.
    cleared = context(try_number=2, max_tries=2, task=task)
    second = run_op(audience, deferrable=False).execute(cleared)
    assert first["id"] != second["id"]
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 2
    assert REUSED_XCOM_KEY not in [key for key, _ in cleared["ti"].pushed]
    # A retry of the cleared instance (try 3) gets the cleared instance's run back.
    third = run_op(audience, deferrable=False).execute(context(try_number=3, max_tries=2, task=task))
    assert third["id"] == second["id"]


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


def test_run_still_queued_at_timeout_is_cancelled(leadpipe_sandbox, audience):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    with pytest.raises(LeadpipeAudienceRunTimeoutError, match="queued; the queued run was cancelled"):
        run_op(audience, deferrable=False, timeout=0.3).execute(context())
    [run] = api_runs(leadpipe_sandbox, audience["id"])
    assert run["status"] == "cancelled"


def test_run_already_running_at_timeout_is_left_running(leadpipe_sandbox, audience):
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_seconds=600)
    with pytest.raises(LeadpipeAudienceRunTimeoutError, match=r"running$"):
        run_op(audience, deferrable=False, timeout=0.3).execute(context())
    [run] = api_runs(leadpipe_sandbox, audience["id"])
    assert run["status"] == "running"


@pytest.mark.parametrize("status", ["queued", "running"])
def test_deferral_timeout_backstop_cancels_a_still_queued_run(leadpipe_sandbox, audience, status):
    """Airflow fails the deferred task itself when the trigger's event never came in time (the
    triggerer down past the grace): the resumed task cancels the run while it is still queued."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    if status == "queued":
        leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    else:
        leadpipe_sandbox.set_run_schedule(queued_polls=1, running_seconds=600)
    ctx = context()
    with pytest.raises(TaskDeferred):
        run_op(audience, deferrable=True).execute(ctx)
    with pytest.raises(Exception, match=r"[Tt]imeout") as caught:  # the framework's own error, passed on
        run_op(audience, deferrable=True).resume_execution("__fail__", {"error": "Trigger timeout"}, ctx)
    assert compat.is_deferral_timeout(caught.value)
    [run] = api_runs(leadpipe_sandbox, audience["id"])
    assert run["status"] == ("cancelled" if status == "queued" else "running")


def test_on_kill_cancels_a_queued_run_and_never_raises(leadpipe_sandbox, audience, monkeypatch):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    op = run_op(audience, wait_for_completion=False)
    queued = op.execute(context())
    op.on_kill()
    [run] = api_runs(leadpipe_sandbox, audience["id"])
    assert (run["id"], run["status"]) == (queued["id"], "cancelled")
    # Nothing listens there. A longer key than "k": Airflow 2.11 masks a 1-character secret everywhere.
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", "leadpipe://:sk_test_nothing_listens@127.0.0.1:9")
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


def test_upsert_finds_its_audience_past_the_first_page_and_creates_no_duplicate(leadpipe_sandbox):
    for n in range(60):
        leadpipe_sandbox.create_audience(f"Other {n}", status="draft")
    created = upsert(name="Late", config=CONFIG, status="draft")  # the 61st: past a page of 50
    again = upsert(name="Late", config={**CONFIG, "minScore": 80})
    assert again["id"] == created["id"]
    named = [a for a in leadpipe_sandbox.orbit_state()["audiences"] if a["name"] == "Late"]
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


def test_an_export_shorter_than_the_run_fails_and_leaves_nothing(leadpipe_sandbox, completed, tmp_path):
    audience, run = completed
    leadpipe_sandbox.set_export_csv_short_by(387)  # 50 of the run's 437 rows, row cap not reached
    op = results_op(
        audience, tmp_path / "out" / "p.csv", audience_run_id=run["id"], method="export", format="csv"
    )
    with pytest.raises(LeadpipeIncompleteError, match=r"announced 437 people but the pull returned 50"):
        op.execute({})
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    ("cap", "short_by", "on_incomplete", "expected", "received"),
    [(None, 387, "warn", 437, 50), (100, 377, "warn", 100, 60), (None, 387, None, 437, 50)],
    ids=["warn", "capped-and-short-warn", "none"],
)
def test_a_short_export_with_warn_or_none_writes_what_arrived(
    leadpipe_sandbox, completed, tmp_path, caplog, capsys, cap, short_by, on_incomplete, expected, received
):
    audience, run = completed
    if cap is not None:  # capped at 100 and short of even that: 60 of min(437, 100)
        leadpipe_sandbox.set_export_row_cap(cap)
    leadpipe_sandbox.set_export_csv_short_by(short_by)
    op = results_op(
        audience,
        tmp_path / "p.csv",
        audience_run_id=run["id"],
        method="export",
        format="csv",
        on_truncated="warn",
        on_incomplete=on_incomplete,
    )
    result = op.execute({})
    assert result["records"] == received == len((tmp_path / "p.csv").read_text().splitlines()) - 1
    logged = caplog.text + capsys.readouterr().out
    announced = f"announced {expected} people but the pull returned {received}"
    assert (announced in logged) == (on_incomplete == "warn")


def test_a_run_not_completed_yet_is_refused_before_writing(leadpipe_sandbox, audience, tmp_path):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)
    queued = run_op(audience, wait_for_completion=False).execute(context())
    with pytest.raises(Exception, match="is queued"):
        results_op(audience, tmp_path / "p.jsonl", audience_run_id=queued["id"]).execute({})
    assert list(tmp_path.iterdir()) == []


# -- spreadsheet formulas in CSV -------------------------------------------------------------------

FORMULA = '=HYPERLINK("http://evil.example/","x")'
PHONE = "+1 534 555 0100"


@pytest.fixture
def hostile_people(monkeypatch):
    """The first person of every results page gets a formula as email and a phone number."""
    real = LeadpipeHook.aiter_audience_result_pages

    async def pages(self, *args, **kwargs):
        async for page in real(self, *args, **kwargs):
            page.results[0]["email"] = FORMULA
            page.results[0]["phone"] = PHONE
            yield page

    monkeypatch.setattr(LeadpipeHook, "aiter_audience_result_pages", pages)


@pytest.mark.parametrize(("option", "written"), [({}, f"'{FORMULA}"), ({"csv_formulas": "keep"}, FORMULA)])
def test_results_as_csv_escape_formulas_by_default(
    leadpipe_sandbox, completed, tmp_path, hostile_people, option, written
):
    audience, run = completed
    target = tmp_path / "people.csv"
    results_op(audience, target, audience_run_id=run["id"], format="csv", **option).execute({})
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 437
    assert [(r["email"], r["phone"]) for r in rows[::100]] == [(written, PHONE)] * 5


@pytest.mark.parametrize(("option", "written"), [({}, f"'{FORMULA}"), ({"csv_formulas": "keep"}, FORMULA)])
def test_the_export_csv_has_formulas_escaped_by_default(
    leadpipe_sandbox, completed, tmp_path, monkeypatch, option, written
):
    audience, run = completed
    hostile = f'email,phone\r\n"{FORMULA.replace(chr(34), chr(34) * 2)}",{PHONE}\r\n@SUM(1),-12\r\n'.encode()

    def iter_bytes(self, chunk_size=None):
        yield from (hostile[i : i + 7] for i in range(0, len(hostile), 7))

    monkeypatch.setattr(ExportCsvStream, "iter_bytes", iter_bytes)
    target = tmp_path / "people.csv"
    # Two hostile rows stand in for the run's 437: on_incomplete=None keeps the short file.
    op = results_op(
        audience,
        target,
        audience_run_id=run["id"],
        method="export",
        format="csv",
        on_incomplete=None,
        **option,
    )
    assert op.execute({})["records"] == 2
    rows = list(csv.reader(io.StringIO(target.read_bytes().decode(), newline="")))
    escaped = "'@SUM(1)" if not option else "@SUM(1)"
    assert rows == [["email", "phone"], [written, PHONE], [escaped, "-12"]]
    if option:
        assert target.read_bytes() == hostile


def test_csv_formulas_must_be_escape_or_keep():
    with pytest.raises(LeadpipeConfigError, match="csv_formulas"):
        LeadpipeAudienceResultsToStorageOperator(
            task_id="land",
            audience_id="5f0c8a4e-2b1d-4c3e-9f6a-7b8c9d0e1f2a",
            path="/tmp/p.csv",
            csv_formulas="off",
        )
