"""Orbit models against the documented (generation 3) examples, copied here from the contract."""

from __future__ import annotations

import copy

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.models import (
    Audience,
    AudienceExport,
    AudienceResultsPage,
    AudienceRun,
    AudienceRunStats,
    AudienceRunStatus,
)

AUDIENCE_ID = "0f9d7a3e-5c1b-4e2a-9d8f-7a6b5c4d3e2f"
RUN_ID = "6a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d"
EXPORT_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
SIGNED_URL = "https://f005.backblazeb2.com/file/orbit-exports/run.csv?Authorization=3_20260505_signature"

# The create/list example of the "manage audiences" guide.
AUDIENCE = {
    "id": AUDIENCE_ID,
    "organizationId": "b3c4d5e6-f7a8-4b9c-8d0e-1f2a3b4c5d6e",
    "name": "VP Sales at SaaS companies",
    "status": "active",
    "accessType": "paid",
    "dailyRefreshEnabled": True,
    "audienceSize": 151,
    "lastRefreshedAt": "2026-05-05T07:49:03.000Z",
    "createdAt": "2026-05-04T12:00:00.000Z",
    "updatedAt": "2026-05-05T07:49:03.000Z",
}

# The queue-a-run example: a freshly queued manual run (a subset, counts at 0).
QUEUED_RUN = {
    "id": RUN_ID,
    "audienceId": AUDIENCE_ID,
    "organizationId": "b3c4d5e6-f7a8-4b9c-8d0e-1f2a3b4c5d6e",
    "status": "queued",
    "runType": "manual",
    "dataDate": "2026-05-04",
    "candidateCount": 0,
    "resultCount": 0,
    "attempts": 0,
    "createdAt": "2026-05-05T09:30:00.000Z",
}

# The list-runs example row: a completed daily run.
DAILY_RUN = {
    "id": RUN_ID,
    "audienceId": AUDIENCE_ID,
    "organizationId": "b3c4d5e6-f7a8-4b9c-8d0e-1f2a3b4c5d6e",
    "status": "completed",
    "runType": "daily",
    "configHash": "c0ffee",
    "dataDate": "2026-05-04",
    "resultKey": "orbit/results/run.parquet",
    "candidateCount": 121463,
    "resultCount": 151,
    "attempts": 1,
    "nextAttemptAt": None,
    "idempotencyKey": None,
    "errorCode": None,
    "errorMessage": None,
    "startedAt": "2026-05-05T07:49:00.675Z",
    "completedAt": "2026-05-05T07:49:03.000Z",
    "cancelledAt": None,
    "readyEmailSentAt": None,
    "readyEmailExportId": None,
    "readyEmailError": None,
    "createdAt": "2026-05-05T07:48:59.000Z",
    "updatedAt": "2026-05-05T07:49:03.000Z",
}

# The get-people guide: 202 while running, 200 when completed.
RESULTS_202 = {
    "data": {
        "run": {
            "id": RUN_ID,
            "status": "running",
            "runType": "manual",
            "candidateCount": 0,
            "resultCount": 0,
        },
        "state": "running",
        "results": [],
        "total": 0,
        "limit": 100,
        "offset": 0,
    }
}
PERSON = {
    "hashedEmail": "5d41402abc4b2a76b9719d911017c592",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "fullName": "Ada Lovelace",
    "businessEmail": "ada@example.com",
    "jobTitle": "VP Sales",
    "seniority": "vp",
    "company": {"name": "Example", "domain": "example.com", "industry": "Software"},
}
RESULTS_200 = {
    "data": {
        "run": {
            "id": RUN_ID,
            "status": "completed",
            "runType": "manual",
            "candidateCount": 121463,
            "resultCount": 20,
            "completedAt": "2026-05-05T09:31:00.000Z",
        },
        "results": [PERSON],
        "total": 20,
        "limit": 50,
        "offset": 0,
    }
}

# The stats-and-export guide.
STATS = {
    "data": {
        "run": {
            "id": RUN_ID,
            "audienceId": AUDIENCE_ID,
            "status": "completed",
            "runType": "manual",
            "resultCount": 151,
            "completedAt": "2026-05-05T09:31:00.000Z",
        },
        "stats": {
            "total": 151,
            "fillRates": {"company.name": {"count": 151, "percent": 100}},
            "scoreHistogram": [{"bucket": "50-69", "count": 100, "percent": 66.2}],
            "averages": {},
        },
    }
}

# Create-or-reuse / get a stored export.
EXPORT = {
    "data": {
        "export": {
            "id": EXPORT_ID,
            "organizationId": "b3c4d5e6-f7a8-4b9c-8d0e-1f2a3b4c5d6e",
            "audienceId": AUDIENCE_ID,
            "runId": RUN_ID,
            "exportType": "csv",
            "status": "completed",
            "storageProvider": "b2",
            "contentType": "text/csv",
            "byteSize": 48213,
            "rowCount": 151,
            "bucketName": "orbit-exports",
            "fileId": "4_z1234",
            "fileName": "run.csv",
            "contentSha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
            "errorCode": None,
            "errorMessage": None,
            "requestedBy": "c4d5e6f7-a8b9-4c0d-8e1f-2a3b4c5d6e7f",
            "completedAt": "2026-05-05T09:32:00.000Z",
            "expiresAt": "2026-06-04T09:32:00.000Z",
            "createdAt": "2026-05-05T09:31:30.000Z",
            "updatedAt": "2026-05-05T09:32:00.000Z",
        },
        "downloadUrl": SIGNED_URL,
        "downloadUrlExpiresAt": "2026-05-05T10:32:00.000Z",
        "downloadUrlTtlSeconds": 3600,
    },
    "meta": {"timestamp": "2026-05-05T09:32:00.000Z", "request_id": "req_1"},
}


def test_audience_example_keeps_every_field():
    audience = Audience.from_response({"data": AUDIENCE, "meta": {"request_id": "r"}})
    assert audience.id == AUDIENCE_ID and audience.is_active and audience.audience_size == 151
    assert audience.to_dict() == AUDIENCE
    assert Audience.from_data(audience.to_dict()) == audience  # XCom round trip


def test_audience_config_is_opaque_and_unknown_fields_are_kept():
    config = {"topicIds": [1, 2], "filters": {"role": {"isDecisionMaker": True}}, "minScore": 70}
    audience = Audience.from_data({**AUDIENCE, "config": config, "newField": {"x": [1]}})
    assert audience.config == config
    assert audience.to_dict()["newField"] == {"x": [1]}


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"id": None}, "data.id", "expected a string"),
        ({"name": 5}, "data.name", "expected a string"),
        ({"status": None}, "data.status", "expected a string"),
        ({"audienceSize": "151"}, "data.audienceSize", "expected a whole number"),
        ({"dailyRefreshEnabled": "yes"}, "data.dailyRefreshEnabled", "expected a boolean"),
        ({"config": []}, "data.config", "expected an object"),
    ],
)
def test_audience_mistyped_field_is_named(change, field, problem):
    with pytest.raises(LeadpipeResponseError, match=f"'{field}': {problem}"):
        Audience.from_response({"data": {**AUDIENCE, **change}})


def test_audience_missing_field_is_named():
    data = {key: value for key, value in AUDIENCE.items() if key != "name"}
    with pytest.raises(LeadpipeResponseError, match=r"'data\.name': missing"):
        Audience.from_response({"data": data})


def test_audience_list_names_the_row():
    with pytest.raises(LeadpipeResponseError, match=r"'data\.1\.id'"):
        Audience.list_from_response({"data": [AUDIENCE, {**AUDIENCE, "id": 3}]})
    with pytest.raises(LeadpipeResponseError, match="no 'data' list"):
        Audience.list_from_response({"data": {}})


@pytest.mark.parametrize("example", [QUEUED_RUN, DAILY_RUN])
def test_run_examples_round_trip(example):
    run = AudienceRun.from_response({"data": example})
    assert run.to_dict() == example
    assert AudienceRun.from_data(run.to_dict()) == run
    assert run.audience_id == AUDIENCE_ID and run.data_date == "2026-05-04"


def test_run_status_knows_terminal_states():
    assert [s.value for s in AudienceRunStatus if s.is_terminal] == ["completed", "failed", "cancelled"]
    assert [s.value for s in AudienceRunStatus if s.is_success] == ["completed"]
    run = AudienceRun.from_data(DAILY_RUN)
    assert run.status is AudienceRunStatus.COMPLETED and run.is_terminal and run.is_success
    assert not AudienceRun.from_data(QUEUED_RUN).is_terminal


def test_failed_run_describes_its_error():
    run = AudienceRun.from_data(
        {**DAILY_RUN, "status": "failed", "errorCode": "MATERIALIZATION_FAILED", "errorMessage": "boom"}
    )
    assert run.describe() == f"audience run {RUN_ID} is failed (MATERIALIZATION_FAILED: boom)"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "exploded"}, "data.status"),
        ({"status": None}, "data.status"),
        ({"dataDate": "2026-13-04"}, "data.dataDate"),
        ({"dataDate": "2026-05-04T00:00:00Z"}, "data.dataDate"),
        ({"resultCount": -1}, "data.resultCount"),
        ({"errorCode": 7}, "data.errorCode"),
    ],
)
def test_run_mistyped_field_is_named(change, field):
    with pytest.raises(LeadpipeResponseError, match=f"'{field}'"):
        AudienceRun.from_response({"data": {**QUEUED_RUN, **change}})


def test_results_202_is_a_not_ready_page():
    page = AudienceResultsPage.from_response(RESULTS_202, ready=False, limit=100, offset=0)
    assert not page.ready and page.state == "running" and page.results == [] and page.total == 0
    assert page.run.status is AudienceRunStatus.RUNNING and page.run.audience_id is None


def test_results_200_keeps_people_unchanged():
    page = AudienceResultsPage.from_response(RESULTS_200, ready=True, limit=50, offset=0)
    assert page.ready and page.results == [PERSON] and page.results[0] is RESULTS_200["data"]["results"][0]
    assert (page.total, page.limit, page.offset) == (20, 50, 0)


def test_results_200_without_paging_fields_uses_the_request_and_result_count():
    body = copy.deepcopy(RESULTS_200)
    for key in ("total", "limit", "offset"):
        del body["data"][key]
    page = AudienceResultsPage.from_response(body, ready=True, limit=10, offset=30)
    assert (page.total, page.limit, page.offset) == (20, 10, 30)
    del body["data"]["run"]["resultCount"]
    with pytest.raises(LeadpipeResponseError, match=r"'data\.total': missing"):
        AudienceResultsPage.from_response(body, ready=True, limit=10, offset=30)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"results": {}}, "data.results"), ({"results": ["x"]}, "data.results"), ({"run": None}, "data.run")],
)
def test_results_mistyped_field_is_named(change, field):
    body = {"data": {**RESULTS_200["data"], **change}}
    with pytest.raises(LeadpipeResponseError, match=f"'{field}'"):
        AudienceResultsPage.from_response(body, ready=True, limit=50, offset=0)


def test_stats_example():
    stats = AudienceRunStats.from_response(STATS)
    assert stats.run.result_count == 151 and stats.stats["total"] == 151
    assert stats.to_dict() == STATS["data"]
    with pytest.raises(LeadpipeResponseError, match=r"'data\.stats'"):
        AudienceRunStats.from_response({"data": {**STATS["data"], "stats": [1]}})


def test_export_example_hides_the_signed_url():
    export = AudienceExport.from_response(EXPORT)
    assert export.is_completed and export.byte_size == 48213 and export.row_count == 151
    assert export.content_sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert export.download_url == SIGNED_URL and export.download_url_ttl_seconds == 3600
    assert SIGNED_URL not in repr(export) and "signature" not in str(export.to_dict())
    assert export.to_dict()["downloadUrlExpiresAt"] == "2026-05-05T10:32:00.000Z"
    assert export.to_dict()["storageProvider"] == "b2"  # unknown fields kept


def test_processing_export_has_no_verification_fields_yet():
    body = copy.deepcopy(EXPORT)
    body["data"]["export"].update(status="processing", byteSize=None, contentSha1=None, rowCount=None)
    del body["data"]["downloadUrl"]
    export = AudienceExport.from_response(body)
    assert export.status == "processing" and not export.is_completed and export.download_url is None


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda d: d["data"].pop("export"), "data.export"),
        (lambda d: d["data"]["export"].pop("id"), "data.export.id"),
        (lambda d: d["data"]["export"].update(byteSize="1"), "data.export.byteSize"),
        (lambda d: d["data"].update(downloadUrl=5), "data.downloadUrl"),
    ],
)
def test_export_damaged_field_is_named(damage, field):
    body = copy.deepcopy(EXPORT)
    damage(body)
    with pytest.raises(LeadpipeResponseError, match=f"'{field}'"):
        AudienceExport.from_response(body)
