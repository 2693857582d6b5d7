"""The hook's Orbit audience calls over real loopback HTTP against the sandbox, sync and async:
CRUD and SLOTS_FULL, runs through their states, idempotent queueing through a lost response,
every result row once, failed runs, export.csv and a verified stored-export download that never
carries the API key to the download host."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAudienceRunError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeNotFoundError,
    LeadpipeSlotsFullError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AudienceRunStatus
from leadpipe_sandbox.faults import Fault
from tests.orbit import hook_caller

pytestmark = pytest.mark.integration

CONFIG = {"topicIds": [101, 202], "minScore": 70, "filters": {"role": {"isDecisionMaker": True}}}
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def hook(leadpipe_sandbox):
    with LeadpipeHook(retry_backoff=0.01) as hook:
        yield hook


@pytest.fixture(params=["sync", "async"])
def call(request, hook):
    """Call a hook method by its sync name, through the sync method or its async twin."""
    return hook_caller(hook, request.param)


def wait_done(call, audience_id, run_id, limit=20):
    for _ in range(limit):
        run = call("get_audience_run", audience_id, run_id)
        if run.is_terminal:
            return run
    raise AssertionError(f"run {run_id} still {run.status} after {limit} polls")


def test_audience_crud_and_slots(leadpipe_sandbox, hook, call):
    created = call("create_audience", "VP Sales", CONFIG, status="draft")
    assert created.status == "draft" and created.name == "VP Sales"
    assert [a.id for a in call("list_audiences", status="draft")] == [created.id]
    assert call("get_audience", created.id).id == created.id
    renamed = call("update_audience", created.id, name="VP Sales EU")
    assert renamed.name == "VP Sales EU"
    free = int(hook.get_account_status().intent.audience_slots_available)
    for index in range(free):
        leadpipe_sandbox.create_audience(f"filler {index}", status="active")
    with pytest.raises(LeadpipeSlotsFullError, match="pausing another audience"):
        call("update_audience", created.id, status="active")
    call("delete_audience", created.id)
    with pytest.raises(LeadpipeNotFoundError, match=created.id):
        call("get_audience", created.id)


def test_run_goes_queued_running_completed_and_every_row_comes_once(leadpipe_sandbox, hook, call):
    audience = leadpipe_sandbox.create_audience("Pull", people=345)
    leadpipe_sandbox.set_run_schedule(queued_polls=1, running_polls=1)
    run = call("create_audience_run", audience["id"], idempotency_key="it:pull")
    assert run.status is AudienceRunStatus.QUEUED
    first = call("get_audience_results_page", audience["id"], run.id)
    assert not first.ready
    with pytest.raises(LeadpipeConflictError, match="not completed"):
        list(hook.iter_audience_results(audience["id"], run.id))
    done = wait_done(call, audience["id"], run.id)
    assert done.is_success and done.result_count == 345 and done.data_date
    rows = list(hook.iter_audience_results(audience["id"], run.id, page_size=50))

    async def pull():
        return [row async for row in hook.aiter_audience_results(audience["id"], run.id, concurrency=4)]

    assert asyncio.run(pull()) == rows and len(rows) == 345
    assert len({repr(sorted(row.items())) for row in rows}) == 345
    stats = call("get_audience_run_stats", audience["id"], run.id)
    assert stats.stats["total"] == 345


def test_a_lost_response_to_queueing_creates_no_second_run(leadpipe_sandbox, call):
    audience = leadpipe_sandbox.create_audience("Lost")
    path = f"/v1/intent/audiences/{audience['id']}/runs"
    leadpipe_sandbox.queue_faults(Fault.lost_response(method="POST", path=path))
    run = call("create_audience_run", audience["id"], idempotency_key="it:lost")
    again = call("create_audience_run", audience["id"], idempotency_key="it:lost")
    assert run.id == again.id
    assert leadpipe_sandbox.audience_runs_created(audience["id"]) == 1


def test_failed_run(leadpipe_sandbox, call):
    audience = leadpipe_sandbox.create_audience("Failing")
    leadpipe_sandbox.fail_next_run(audience["id"], error_code="MATERIALIZATION_FAILED", error_message="boom")
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_polls=0)
    run = call("create_audience_run", audience["id"])
    finished = wait_done(call, audience["id"], run.id)
    assert finished.status is AudienceRunStatus.FAILED and finished.error_code == "MATERIALIZATION_FAILED"
    with pytest.raises(LeadpipeAudienceRunError, match="boom") as caught:
        call("get_audience_results_page", audience["id"], run.id)
    assert caught.value.status == "failed" and caught.value.error_code == "MATERIALIZATION_FAILED"
    with pytest.raises(LeadpipeNotFoundError, match=MISSING):
        call("get_audience_run", audience["id"], MISSING)


def test_cancel_a_queued_run(leadpipe_sandbox, call):
    audience = leadpipe_sandbox.create_audience("Cancel")
    leadpipe_sandbox.set_run_schedule(queued_seconds=60, running_seconds=60)
    run = call("create_audience_run", audience["id"])
    call("cancel_audience_run", audience["id"], run.id)
    listed = call("list_audience_runs", audience["id"], limit=5)
    assert [r.status for r in listed if r.id == run.id] == [AudienceRunStatus.CANCELLED]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_export_csv_and_stored_export_download(leadpipe_sandbox, hook, mode, tmp_path):
    audience = leadpipe_sandbox.create_audience("Export", people=120)
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_polls=0)
    leadpipe_sandbox.set_export_row_cap(100)
    run_id = hook.create_audience_run(audience["id"]).id
    wait_done(lambda method, *a, **k: getattr(hook, method)(*a, **k), audience["id"], run_id)
    if mode == "sync":
        with hook.stream_audience_export_csv(audience["id"], run_id) as stream:
            cap, data = stream.row_cap, b"".join(stream.iter_bytes())
        export = hook.create_audience_export(audience["id"], run_id)
        fresh = hook.get_audience_export(audience["id"], run_id, export.id)
        written = hook.download_audience_export(fresh, tmp_path / "people.csv")
    else:

        async def run_async():
            async with hook.astream_audience_export_csv(audience["id"], run_id) as stream:
                body = b"".join([chunk async for chunk in stream.aiter_bytes()])
                cap = stream.row_cap
            export = await hook.acreate_audience_export(audience["id"], run_id)
            fresh = await hook.aget_audience_export(audience["id"], run_id, export.id)
            return cap, body, fresh, await hook.adownload_audience_export(fresh, tmp_path / "people.csv")

        cap, data, fresh, written = asyncio.run(run_async())
    assert cap == 100 and len(list(csv.DictReader(io.StringIO(data.decode())))) == 100
    assert fresh.row_count == 100 and written == fresh.byte_size
    assert (tmp_path / "people.csv").stat().st_size == written
    downloads = leadpipe_sandbox.export_downloads()
    assert downloads and all(not d["apiKeySent"] for d in downloads)
    assert {d["status"] for d in downloads} == {200}


def test_a_processing_export_is_polled_until_it_can_be_downloaded(leadpipe_sandbox, hook, tmp_path):
    audience = leadpipe_sandbox.create_audience("Processing", people=30)
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_polls=0)
    leadpipe_sandbox.set_export_processing_polls(2)
    run_id = hook.create_audience_run(audience["id"]).id
    wait_done(lambda method, *a, **k: getattr(hook, method)(*a, **k), audience["id"], run_id)
    export = hook.create_audience_export(audience["id"], run_id)
    assert export.status == "processing" and export.download_url is None
    with pytest.raises(LeadpipeConfigError, match="not completed"):
        hook.download_audience_export(export, tmp_path / "early.csv")
    for _ in range(5):
        export = hook.get_audience_export(audience["id"], run_id, export.id)
        if export.is_completed:
            break
    assert export.is_completed and export.row_count == 30
    assert hook.download_audience_export(export, tmp_path / "people.csv") == export.byte_size
    assert not (tmp_path / "early.csv").exists()
