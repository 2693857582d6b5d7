"""LeadpipeHook Orbit audience methods, sync and async, against a mocked API (respx)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import certifi
import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAudienceRunError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeConnectionError,
    LeadpipeNotFoundError,
    LeadpipeRequestError,
    LeadpipeResponseError,
    LeadpipeSlotsFullError,
)
from airflow_provider_leadpipe.hooks import settings as api_settings
from airflow_provider_leadpipe.hooks.audience_plans import idempotency_key
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AudienceExport, AudienceRunStatus
from tests.orbit import hook_caller
from tests.unit.conftest import API_KEY, BASE_URL
from tests.unit.models.test_audiences import (
    AUDIENCE,
    AUDIENCE_ID,
    DAILY_RUN,
    EXPORT,
    EXPORT_ID,
    QUEUED_RUN,
    RESULTS_200,
    RESULTS_202,
    RUN_ID,
    STATS,
)

AUDIENCES = f"{BASE_URL}/v1/intent/audiences"
AUDIENCE_URL = f"{AUDIENCES}/{AUDIENCE_ID}"
RUNS = f"{AUDIENCE_URL}/runs"
RUN_URL = f"{RUNS}/{RUN_ID}"
RESULTS = f"{RUN_URL}/results"
SIGNED_HOST = "https://f005.backblazeb2.com"
FAILED = {
    **DAILY_RUN,
    "status": "failed",
    "errorCode": "MATERIALIZATION_FAILED",
    "errorMessage": "worker died",
}

CONFIG = {"topicIds": [101, 202], "minScore": 70, "filters": {"role": {"isDecisionMaker": True}}}


@pytest.fixture
def hook(leadpipe_conn):
    return LeadpipeHook(retry_backoff=0.001)


@pytest.fixture(params=["sync", "async"])
def call(request, hook):
    """Call a hook method by its sync name, through the sync method or its async twin."""
    return hook_caller(hook, request.param)


def sent(route, index=-1):
    return route.calls[index].request


def body(route, index=-1):
    return json.loads(sent(route, index).content)


# -- audiences --------------------------------------------------------------------------------


def test_list_audiences_with_status_filter(call):
    with respx.mock() as mock:
        route = mock.get(AUDIENCES).respond(
            200, json={"data": [AUDIENCE, {**AUDIENCE, "id": "x", "extra": 1}]}
        )
        audiences = call("list_audiences", status="active")
    assert sent(route).url.params["status"] == "active"
    assert [a.to_dict() for a in audiences] == [AUDIENCE, {**AUDIENCE, "id": "x", "extra": 1}]


def test_list_audiences_without_filter_sends_no_status(call):
    with respx.mock() as mock:
        route = mock.get(AUDIENCES).respond(200, json={"data": []})
        assert call("list_audiences") == []
    assert "status" not in sent(route).url.params


def test_get_audience_and_404_names_the_id(call):
    with respx.mock() as mock:
        mock.get(AUDIENCE_URL).respond(200, json={"data": AUDIENCE})
        assert call("get_audience", AUDIENCE_ID).to_dict() == AUDIENCE
    with respx.mock() as mock:
        mock.get(AUDIENCE_URL).respond(404, json={"error": {"code": "NOT_FOUND", "message": "nope"}})
        with pytest.raises(LeadpipeNotFoundError, match=f"audience {AUDIENCE_ID} was not found") as caught:
            call("get_audience", AUDIENCE_ID)
    assert caught.value.http_status == 404


def test_create_audience_sends_config_untouched(call):
    with respx.mock() as mock:
        route = mock.post(AUDIENCES).respond(201, json={"data": AUDIENCE})
        audience = call("create_audience", "VP Sales", CONFIG, status="active")
    assert body(route) == {"name": "VP Sales", "config": CONFIG, "status": "active"}
    assert audience.id == AUDIENCE_ID


@pytest.mark.parametrize(
    "slots_body",
    [
        {"error": {"code": "SLOTS_FULL", "message": "No audience slots available"}},
        {"message": "SLOTS_FULL: no audience slot is free"},
    ],
)
def test_slots_full_is_a_typed_failure(call, slots_body):
    with respx.mock() as mock:
        route = mock.patch(AUDIENCE_URL).respond(403, json=slots_body)
        with pytest.raises(LeadpipeSlotsFullError, match="pausing another audience") as caught:
            call("update_audience", AUDIENCE_ID, status="active")
    assert isinstance(caught.value, AirflowFailException) and caught.value.api_code == "SLOTS_FULL"
    assert route.call_count == 1  # never retried
    assert API_KEY not in str(caught.value)


def test_update_audience_patches_only_what_is_given(call):
    with respx.mock() as mock:
        route = mock.patch(AUDIENCE_URL).respond(200, json={"data": {**AUDIENCE, "name": "New"}})
        audience = call("update_audience", AUDIENCE_ID, name="New", config=CONFIG)
    assert body(route) == {"name": "New", "config": CONFIG}
    assert audience.name == "New"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "at least one of name, status, config"),
        ({"status": "archived"}, "status must be one of draft, active, paused"),
        ({"name": "  "}, "name must be the audience.s name"),
        ({"config": [1]}, "config must be a dict"),
    ],
)
def test_update_audience_bad_arguments_send_nothing(call, kwargs, match):
    with respx.mock() as mock:  # no route: any request would fail the test
        with pytest.raises(LeadpipeConfigError, match=match):
            call("update_audience", AUDIENCE_ID, **kwargs)
        assert not mock.calls


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("get_audience", ("not-a-uuid",)),
        ("delete_audience", ("../pixels",)),
        ("get_audience_run", (AUDIENCE_ID, "123")),
        ("get_audience_results_page", (AUDIENCE_ID, None)),
        ("get_audience_export", (AUDIENCE_ID, RUN_ID, "x/y")),
        ("create_audience_run", ("",)),
    ],
)
def test_ids_are_checked_before_sending(call, name, args):
    with respx.mock() as mock:
        with pytest.raises(LeadpipeConfigError, match="must be a UUID"):
            call(name, *args)
        assert not mock.calls


@pytest.mark.parametrize(
    ("response", "expected"),
    [(httpx.Response(204), {}), (httpx.Response(200, json={"data": {"deleted": True}}), {"deleted": True})],
)
def test_delete_audience(call, response, expected):
    with respx.mock() as mock:
        mock.delete(AUDIENCE_URL).mock(return_value=response)
        assert call("delete_audience", AUDIENCE_ID) == expected


# -- runs -------------------------------------------------------------------------------------


def test_create_run_sends_the_idempotency_key(call):
    with respx.mock() as mock:
        route = mock.post(RUNS).respond(202, json={"data": QUEUED_RUN})
        run = call("create_audience_run", AUDIENCE_ID, idempotency_key="dag:run:task:-1")
    assert sent(route).headers["Idempotency-Key"] == "dag:run:task:-1"
    assert body(route) == {"runType": "manual"}
    assert run.status is AudienceRunStatus.QUEUED and run.to_dict() == QUEUED_RUN


@pytest.mark.parametrize(("status", "existing"), [(201, False), (202, False), (200, True)])
def test_create_run_tells_a_run_the_key_made_before_by_200_ok(call, status, existing):
    with respx.mock() as mock:
        mock.post(RUNS).respond(status, json={"data": QUEUED_RUN})
        run = call("create_audience_run", AUDIENCE_ID, idempotency_key="k")
    assert run.existing is existing
    assert run.to_dict() == QUEUED_RUN  # not an API field: never in XCom as one


@pytest.mark.parametrize(
    "first_failure",
    [httpx.ReadError("connection lost after sending"), httpx.Response(502), httpx.Response(500)],
)
def test_create_run_is_retried_with_the_same_key(call, first_failure):
    """A lost response or a 5xx after the server acted: retrying is safe because of the key."""
    with respx.mock() as mock:
        route = mock.post(RUNS).mock(
            side_effect=[first_failure, httpx.Response(201, json={"data": QUEUED_RUN})]
        )
        run = call("create_audience_run", AUDIENCE_ID, idempotency_key="k1")
    assert run.id == RUN_ID and route.call_count == 2
    assert {c.request.headers["Idempotency-Key"] for c in route.calls} == {"k1"}


def test_create_run_without_a_key_still_retries_with_one_random_key(call):
    with respx.mock() as mock:
        route = mock.post(RUNS).mock(
            side_effect=[httpx.ReadError("lost"), httpx.Response(201, json={"data": QUEUED_RUN})]
        )
        call("create_audience_run", AUDIENCE_ID)
    keys = {c.request.headers["Idempotency-Key"] for c in route.calls}
    assert route.call_count == 2 and len(keys) == 1


def test_other_posts_are_not_retried_after_a_lost_response(call):
    """Creating an audience carries no key: a response lost after sending is not retried."""
    with respx.mock() as mock:
        route = mock.post(AUDIENCES).mock(
            side_effect=[httpx.ReadError("lost"), httpx.Response(201, json={"data": AUDIENCE})]
        )
        with pytest.raises(LeadpipeConnectionError):
            call("create_audience", "VP Sales", CONFIG)
    assert route.call_count == 1


def test_idempotency_key_hashing():
    assert idempotency_key("short-key") == "short-key"
    assert idempotency_key("k" * 120) == "k" * 120
    long_a, long_b = "dag:" + "a" * 200, "dag:" + "a" * 199 + "b"
    hashed = idempotency_key(long_a)
    assert hashed == idempotency_key(long_a), "deterministic"
    assert len(hashed) <= 120 and hashed.isascii() and " " not in hashed
    assert hashed.startswith("dag:aaa") and hashlib.sha256(long_a.encode()).hexdigest() in hashed
    assert idempotency_key(long_b) != hashed, "distinct inputs, distinct keys"
    assert idempotency_key("k" * 121) != idempotency_key("k" * 122)
    assert len(idempotency_key("ünïcode key")) <= 120 and idempotency_key("ünïcode key").isascii()
    assert idempotency_key("ünïcode key") != idempotency_key("unicode key")
    with pytest.raises(LeadpipeConfigError):
        idempotency_key("")


def test_list_runs(call):
    with respx.mock() as mock:
        route = mock.get(RUNS).respond(200, json={"data": [DAILY_RUN, QUEUED_RUN]})
        runs = call("list_audience_runs", AUDIENCE_ID, limit=10)
    assert sent(route).url.params["limit"] == "10"
    assert [r.to_dict() for r in runs] == [DAILY_RUN, QUEUED_RUN]
    with pytest.raises(LeadpipeConfigError, match="limit must be a whole number from 1 to 100"):
        call("list_audience_runs", AUDIENCE_ID, limit=101)


def test_get_run_while_running_costs_one_request(call):
    with respx.mock() as mock:
        route = mock.get(RESULTS).respond(202, json=RESULTS_202)
        run = call("get_audience_run", AUDIENCE_ID, RUN_ID)
        assert len(mock.calls) == 1
    assert run.status is AudienceRunStatus.RUNNING and run.audience_id == AUDIENCE_ID
    assert sent(route).url.params["limit"] == "1" and sent(route).url.params["offset"] == "0"


def test_get_run_once_completed_returns_the_full_run(call):
    with respx.mock() as mock:
        mock.get(RESULTS).respond(200, json=RESULTS_200)
        mock.get(RUNS).respond(200, json={"data": [DAILY_RUN]})
        run = call("get_audience_run", AUDIENCE_ID, RUN_ID)
    assert run.to_dict() == DAILY_RUN


def test_get_run_completed_but_no_longer_listed_falls_back_to_the_results_run(call):
    with respx.mock() as mock:
        mock.get(RESULTS).respond(200, json=RESULTS_200)
        mock.get(RUNS).respond(200, json={"data": []})
        run = call("get_audience_run", AUDIENCE_ID, RUN_ID)
    assert run.is_success and run.audience_id == AUDIENCE_ID and run.result_count == 20


def test_get_run_of_a_failed_run_returns_it_with_its_error(call):
    with respx.mock() as mock:
        mock.get(RESULTS).respond(
            409, json={"error": {"code": "RUN_NOT_COMPLETED", "message": "not servable"}}
        )
        mock.get(RUNS).respond(200, json={"data": [FAILED]})
        run = call("get_audience_run", AUDIENCE_ID, RUN_ID)
    assert run.status is AudienceRunStatus.FAILED and run.error_code == "MATERIALIZATION_FAILED"


def test_get_run_unknown_409_and_not_listed_raises_run_error(call):
    with respx.mock() as mock:
        mock.get(RESULTS).respond(409)
        mock.get(RUNS).respond(200, json={"data": []})
        with pytest.raises(LeadpipeAudienceRunError, match=RUN_ID) as caught:
            call("get_audience_run", AUDIENCE_ID, RUN_ID)
    assert caught.value.run_id == RUN_ID and caught.value.status is None


def test_get_run_404_names_both_ids(call):
    with respx.mock() as mock:
        mock.get(RESULTS).respond(404)
        with pytest.raises(LeadpipeNotFoundError) as caught:
            call("get_audience_run", AUDIENCE_ID, RUN_ID)
    assert RUN_ID in str(caught.value) and AUDIENCE_ID in str(caught.value)


@pytest.mark.parametrize("response", [httpx.Response(204), httpx.Response(200, json={"data": QUEUED_RUN})])
def test_cancel_run(call, response):
    with respx.mock() as mock:
        route = mock.delete(RUN_URL).mock(return_value=response)
        assert call("cancel_audience_run", AUDIENCE_ID, RUN_ID) is None
    assert route.call_count == 1


def test_cancel_refused_is_typed(call):
    with respx.mock() as mock:
        mock.delete(RUN_URL).respond(409, json={"error": {"code": "RUN_NOT_QUEUED", "message": "running"}})
        with pytest.raises(LeadpipeConflictError, match="running"):
            call("cancel_audience_run", AUDIENCE_ID, RUN_ID)


# -- results ----------------------------------------------------------------------------------


def test_results_page_202_is_not_an_error(call):
    with respx.mock() as mock:
        mock.get(RESULTS).respond(202, json=RESULTS_202)
        page = call("get_audience_results_page", AUDIENCE_ID, RUN_ID)
    assert not page.ready and page.state == "running" and page.results == []


def test_results_page_200(call):
    with respx.mock() as mock:
        route = mock.get(RESULTS).respond(200, json=RESULTS_200)
        page = call("get_audience_results_page", AUDIENCE_ID, RUN_ID, limit=50, offset=0)
    assert page.ready and page.total == 20 and page.results == RESULTS_200["data"]["results"]
    assert dict(sent(route).url.params) == {"limit": "50", "offset": "0"}


def test_results_409_with_the_run_in_the_body(call):
    body_409 = {"data": {"run": FAILED}, "error": {"code": "RUN_FAILED", "message": "Run failed"}}
    with respx.mock() as mock:
        mock.get(RESULTS).respond(409, json=body_409)
        with pytest.raises(LeadpipeAudienceRunError) as caught:
            call("get_audience_results_page", AUDIENCE_ID, RUN_ID)
        assert len(mock.calls) == 1
    error = caught.value
    assert isinstance(error, AirflowFailException)
    assert (error.status, error.error_code, error.error_message) == (
        "failed",
        "MATERIALIZATION_FAILED",
        "worker died",
    )
    assert (error.run_id, error.audience_id) == (RUN_ID, AUDIENCE_ID)
    assert "MATERIALIZATION_FAILED" in str(error) and "worker died" in str(error)


def test_results_409_without_details_reads_them_from_the_runs_list(call):
    cancelled = {**FAILED, "status": "cancelled", "errorCode": None, "errorMessage": None}
    with respx.mock() as mock:
        mock.get(RESULTS).respond(
            409, json={"error": {"code": "CONFLICT", "message": "Run cannot serve results"}}
        )
        mock.get(RUNS).respond(200, json={"data": [cancelled]})
        with pytest.raises(LeadpipeAudienceRunError, match="is cancelled") as caught:
            call("get_audience_results_page", AUDIENCE_ID, RUN_ID)
    assert caught.value.status == "cancelled" and caught.value.error_code == "CONFLICT"


@pytest.mark.parametrize("lookup_status", [404, 401])
def test_results_409_whose_runs_lookup_fails_still_raises_the_run_error(call, lookup_status):
    """The 409 is the news: a runs-list lookup that fails must not replace it with its own error."""
    with respx.mock() as mock:
        mock.get(RESULTS).respond(
            409, json={"error": {"code": "RUN_NOT_SERVABLE", "message": "Run cannot serve results"}}
        )
        mock.get(RUNS).respond(lookup_status, json={"error": {"code": "LOOKUP", "message": "lookup failed"}})
        with pytest.raises(LeadpipeAudienceRunError) as caught:
            call("get_audience_results_page", AUDIENCE_ID, RUN_ID)
    assert caught.value.error_code == "RUN_NOT_SERVABLE"
    assert "lookup failed" not in str(caught.value)


@pytest.mark.parametrize(("limit", "offset"), [(0, 0), (101, 0), (10, -1), (True, 0)])
def test_results_page_bad_paging(call, limit, offset):
    with pytest.raises(LeadpipeConfigError):
        call("get_audience_results_page", AUDIENCE_ID, RUN_ID, limit=limit, offset=offset)


def people(count):
    return [{"email": f"p{index}@example.com", "n": index} for index in range(count)]


def serve(rows, *, max_limit=100, total=None):
    """A results endpoint over ``rows`` that serves at most ``max_limit`` per page."""

    def handler(request):
        limit = min(int(request.url.params["limit"]), max_limit)
        offset = int(request.url.params["offset"])
        page = rows[offset : offset + limit]
        run = {"id": RUN_ID, "status": "completed", "resultCount": len(rows)}
        data = {"run": run, "results": page, "total": len(rows) if total is None else total}
        return httpx.Response(200, json={"data": {**data, "limit": limit, "offset": offset}})

    return handler


def collect(hook, mode, **kwargs):
    if mode == "sync":
        return list(hook.iter_audience_results(AUDIENCE_ID, RUN_ID, **kwargs))

    async def pull():
        return [row async for row in hook.aiter_audience_results(AUDIENCE_ID, RUN_ID, **kwargs)]

    return asyncio.run(pull())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("count", "max_limit"), [(0, 100), (1, 100), (250, 100), (300, 100), (250, 40)])
def test_every_row_once_in_order(hook, mode, count, max_limit):
    rows = people(count)
    with respx.mock() as mock:
        route = mock.get(RESULTS).mock(side_effect=serve(rows, max_limit=max_limit))
        assert collect(hook, mode, page_size=100) == rows
    offsets = sorted(int(c.request.url.params["offset"]) for c in route.calls)
    assert offsets == list(range(0, max(count, 1), min(100, max_limit) if count else 1))[: len(offsets)]
    assert len(set(offsets)) == len(offsets), "no page fetched twice"


def test_async_pages_overlap_up_to_the_concurrency(hook):
    rows = people(1000)
    in_flight, peak = 0, 0
    inner = serve(rows)

    async def slow(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return inner(request)

    with respx.mock() as mock:
        mock.get(RESULTS).mock(side_effect=slow)
        assert collect(hook, "async", concurrency=4) == rows
    assert peak == 4


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_iterating_a_run_that_is_not_ready_raises(hook, mode):
    with respx.mock() as mock:
        mock.get(RESULTS).respond(202, json=RESULTS_202)
        with pytest.raises(LeadpipeConflictError, match="not completed"):
            collect(hook, mode)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_iterating_a_failed_run_raises_run_error(hook, mode):
    with respx.mock() as mock:
        mock.get(RESULTS).respond(409, json={"data": {"run": FAILED}})
        with pytest.raises(LeadpipeAudienceRunError, match="MATERIALIZATION_FAILED"):
            collect(hook, mode)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_rows_missing_before_total_raise(hook, mode):
    rows = people(150)
    with respx.mock() as mock:
        mock.get(RESULTS).mock(side_effect=serve(rows, total=400))
        with pytest.raises(LeadpipeResponseError, match=r"rows missing|inconsistent"):
            collect(hook, mode)


def test_iterator_arguments_are_checked_at_the_call(hook):
    with pytest.raises(LeadpipeConfigError):
        hook.iter_audience_results(AUDIENCE_ID, "nope")
    with pytest.raises(LeadpipeConfigError):
        hook.aiter_audience_result_pages(AUDIENCE_ID, RUN_ID, page_size=0)
    with pytest.raises(LeadpipeConfigError):
        hook.aiter_audience_result_pages(AUDIENCE_ID, RUN_ID, concurrency=17)
    with pytest.raises(LeadpipeConfigError):
        hook.aiter_audience_results("nope", RUN_ID)


# -- stats and exports ------------------------------------------------------------------------


def test_stats(call):
    with respx.mock() as mock:
        mock.get(f"{RUN_URL}/stats").respond(200, json=STATS)
        stats = call("get_audience_run_stats", AUDIENCE_ID, RUN_ID)
    assert stats.stats["total"] == 151 and stats.run.is_success


def test_stats_of_an_unfinished_or_failed_run(call):
    with respx.mock() as mock:
        mock.get(f"{RUN_URL}/stats").respond(202, json=RESULTS_202)
        with pytest.raises(LeadpipeConflictError, match="not completed"):
            call("get_audience_run_stats", AUDIENCE_ID, RUN_ID)
    with respx.mock() as mock:
        mock.get(f"{RUN_URL}/stats").respond(409, json={"data": {"run": FAILED}})
        with pytest.raises(LeadpipeAudienceRunError, match="worker died"):
            call("get_audience_run_stats", AUDIENCE_ID, RUN_ID)


CSV = b"email,name\n" + b"".join(f"p{i}@example.com,P {i}\n".encode() for i in range(2000))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_export_csv_is_streamed_with_its_row_cap(hook, mode):
    with respx.mock() as mock:
        route = mock.get(f"{RUN_URL}/export.csv").respond(
            200, content=CSV, headers={"content-type": "text/csv", "X-Export-Row-Cap": "300000"}
        )
        if mode == "sync":
            with hook.stream_audience_export_csv(AUDIENCE_ID, RUN_ID) as export:
                cap, data = export.row_cap, b"".join(export.iter_bytes())
        else:

            async def read():
                async with hook.astream_audience_export_csv(AUDIENCE_ID, RUN_ID) as export:
                    return export.row_cap, b"".join([chunk async for chunk in export.aiter_bytes()])

            cap, data = asyncio.run(read())
    assert cap == 300000 and data == CSV
    assert sent(route).headers["Accept"] == "text/csv"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_export_csv_of_a_failed_run(hook, mode):
    with respx.mock() as mock:
        mock.get(f"{RUN_URL}/export.csv").respond(409, json={"data": {"run": FAILED}})
        with pytest.raises(LeadpipeAudienceRunError, match="MATERIALIZATION_FAILED"):
            if mode == "sync":
                with hook.stream_audience_export_csv(AUDIENCE_ID, RUN_ID):
                    pass
            else:

                async def read():
                    async with hook.astream_audience_export_csv(AUDIENCE_ID, RUN_ID):
                        pass

                asyncio.run(read())


def test_create_and_get_export(call):
    with respx.mock() as mock:
        created = mock.post(f"{RUN_URL}/exports").respond(200, json=EXPORT)
        fetched = mock.get(f"{RUN_URL}/exports/{EXPORT_ID}").respond(200, json=EXPORT)
        first = call("create_audience_export", AUDIENCE_ID, RUN_ID)
        again = call("get_audience_export", AUDIENCE_ID, RUN_ID, EXPORT_ID)
    assert first == again and first.is_completed and first.download_url.startswith(SIGNED_HOST)
    assert created.call_count == fetched.call_count == 1


def stored(content: bytes, **changes) -> AudienceExport:
    data = json.loads(json.dumps(EXPORT))
    verification = {"byteSize": len(content), "contentSha1": hashlib.sha1(content).hexdigest()}
    data["data"]["export"].update({**verification, **changes})
    return AudienceExport.from_response(data)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_download_verifies_and_never_sends_the_key_to_the_signed_host(hook, mode, tmp_path):
    export = stored(CSV)
    target = tmp_path / "people.csv"
    with respx.mock() as mock:
        route = mock.get(url__startswith=SIGNED_HOST).respond(200, content=CSV)
        written = (
            hook.download_audience_export(export, target)
            if mode == "sync"
            else asyncio.run(hook.adownload_audience_export(export, target))
        )
    assert written == len(CSV) and target.read_bytes() == CSV
    request = sent(route)
    assert str(request.url) == export.download_url
    assert "x-api-key" not in request.headers and "authorization" not in request.headers
    assert API_KEY not in str(request.url) and all(API_KEY not in value for value in request.headers.values())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"contentSha1": "0" * 40}, "SHA-1"),
        ({"byteSize": 5}, "more than byteSize"),
        ({"byteSize": len(CSV) + 5}, "bytes received"),
    ],
)
def test_corrupt_download_leaves_the_destination_as_it_was(hook, mode, tmp_path, changes, match):
    export = stored(CSV, **changes)
    target = tmp_path / "people.csv"
    target.write_bytes(b"yesterday's file\n")
    with respx.mock() as mock:
        mock.get(url__startswith=SIGNED_HOST).respond(200, content=CSV)
        with pytest.raises(LeadpipeResponseError, match=match):
            if mode == "sync":
                hook.download_audience_export(export, target)
            else:
                asyncio.run(hook.adownload_audience_export(export, target))
    assert target.read_bytes() == b"yesterday's file\n"
    assert [p.name for p in tmp_path.iterdir()] == ["people.csv"], "no temporary left behind"


def test_download_retries_a_transient_failure_and_refuses_an_expired_url(hook, tmp_path):
    export = stored(CSV)
    with respx.mock() as mock:
        route = mock.get(url__startswith=SIGNED_HOST).mock(
            side_effect=[httpx.Response(503), httpx.Response(200, content=CSV)]
        )
        assert hook.download_audience_export(export, tmp_path / "a.csv") == len(CSV)
    assert route.call_count == 2
    with respx.mock() as mock:
        mock.get(url__startswith=SIGNED_HOST).respond(403, text="expired")
        with pytest.raises(LeadpipeRequestError, match="fresh one"):
            hook.download_audience_export(export, str(tmp_path / "b.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_download_into_a_file_object(hook, tmp_path):
    export = stored(CSV)
    with respx.mock() as mock, (tmp_path / "c.csv").open("wb") as handle:
        mock.get(url__startswith=SIGNED_HOST).respond(200, content=CSV)
        assert hook.download_audience_export(export, handle) == len(CSV)
    assert (tmp_path / "c.csv").read_bytes() == CSV


@pytest.mark.parametrize(
    ("changes", "url", "error", "match"),
    [
        ({"status": "processing"}, None, LeadpipeConfigError, "not completed"),
        ({}, "http://f005.backblazeb2.com/file/x.csv?Authorization=secret", LeadpipeResponseError, "https"),
        ({}, "ftp://example.com/x.csv", LeadpipeResponseError, "https"),
    ],
)
def test_download_refuses_before_sending(hook, tmp_path, changes, url, error, match):
    export = stored(CSV, **changes)
    if url:
        export = export.model_copy(update={"download_url": url})
    with respx.mock() as mock:
        with pytest.raises(error, match=match) as caught:
            hook.download_audience_export(export, tmp_path / "d.csv")
        assert not mock.calls
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_export_csv_409_of_a_running_run_is_not_a_run_failure(hook, mode):
    running = {"id": RUN_ID, "status": "running"}
    with respx.mock() as mock:
        mock.get(f"{RUN_URL}/export.csv").respond(409, json={"data": {"run": running}})
        with pytest.raises(LeadpipeConflictError, match="is running, not completed") as caught:
            if mode == "sync":
                with hook.stream_audience_export_csv(AUDIENCE_ID, RUN_ID):
                    pass
            else:

                async def read():
                    async with hook.astream_audience_export_csv(AUDIENCE_ID, RUN_ID):
                        pass

                asyncio.run(read())
    assert not isinstance(caught.value, AirflowFailException)


def test_download_into_object_storage(hook, tmp_path):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    export = stored(CSV)
    target = ObjectStoragePath(f"file://{tmp_path}/landing/people.csv")
    with respx.mock() as mock:
        mock.get(url__startswith=SIGNED_HOST).respond(200, content=CSV)
        assert hook.download_audience_export(export, target) == len(CSV)
    assert (tmp_path / "landing" / "people.csv").read_bytes() == CSV


@pytest.mark.parametrize("destination", [None, 42, ""])
def test_download_refuses_a_destination_it_cannot_write(hook, destination):
    with respx.mock() as mock:
        with pytest.raises(LeadpipeConfigError, match="destination must be"):
            hook.download_audience_export(stored(CSV), destination)
        assert not mock.calls


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_download_uses_the_connections_network_settings(leadpipe_conn, mode, tmp_path):
    hook = LeadpipeHook(timeout=7.5)
    with respx.mock() as mock:
        route = mock.get(url__startswith=SIGNED_HOST).respond(200, content=CSV)
        if mode == "sync":
            hook.download_audience_export(stored(CSV), tmp_path / "e.csv")
        else:
            asyncio.run(hook.adownload_audience_export(stored(CSV), tmp_path / "e.csv"))
    request = sent(route)
    assert request.extensions["timeout"]["read"] == 7.5 and request.extensions["timeout"]["connect"] == 7.5
    assert request.headers["user-agent"].startswith("airflow-provider-leadpipe/")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_download_client_gets_the_connections_proxy_and_ca_bundle(leadpipe_conn, mode, tmp_path, monkeypatch):
    """The client for the signed URL comes from settings.network_kwargs with this connection's settings
    (proxy and CA bundle reaching a real proxy are proven in tests/hardening/test_corporate_network.py)."""
    bundle = certifi.where()  # any readable PEM bundle with certificates
    leadpipe_conn(extra=json.dumps({"proxy": "http://proxy.corp.example:3128", "ca_bundle": bundle}))
    seen = []
    real = api_settings.network_kwargs

    def spy(settings, url):
        seen.append((settings.proxy, settings.ca_bundle, url))
        return {**real(settings, url), "proxy": None}  # no proxy exists here: respx answers

    monkeypatch.setattr(api_settings, "network_kwargs", spy)
    export = stored(CSV)
    with respx.mock() as mock:
        mock.get(url__startswith=SIGNED_HOST).respond(200, content=CSV)
        if mode == "sync":
            LeadpipeHook().download_audience_export(export, tmp_path / "f.csv")
        else:
            asyncio.run(LeadpipeHook().adownload_audience_export(export, tmp_path / "f.csv"))
    assert seen == [("http://proxy.corp.example:3128", bundle, export.download_url)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_download_to_a_long_name_that_fits_is_written_and_one_that_does_not_is_refused_first(
    hook, mode, tmp_path
):
    def download(target):
        if mode == "sync":
            return hook.download_audience_export(stored(CSV), target)
        return asyncio.run(hook.adownload_audience_export(stored(CSV), target))

    fits, too_long = tmp_path / ("p" * 245 + ".csv"), tmp_path / ("p" * 252 + ".csv")
    with respx.mock() as mock:
        route = mock.get(url__startswith=SIGNED_HOST).respond(200, content=CSV)
        assert download(fits) == len(CSV) and fits.read_bytes() == CSV
        with pytest.raises(LeadpipeConfigError, match="too long") as info:
            download(too_long)
    assert str(too_long) in str(info.value) and route.call_count == 1
    assert [p.name for p in tmp_path.iterdir()] == [fits.name]
