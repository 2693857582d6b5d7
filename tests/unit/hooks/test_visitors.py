"""LeadpipeHook.iter_visitors / aiter_visitors against a mocked /v1/data (respx)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeResponseError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from tests.unit.conftest import BASE_URL

VISITORS_URL = f"{BASE_URL}/v1/data"


def visitors(count: int, prefix: str = "v") -> list[dict]:
    return [{"email": f"{prefix}{i}@example.com", "n": i, "person": {"name": f"P {i}"}} for i in range(count)]


class FakeVisitorsApi:
    """Serves ``records`` 50 per page; ``meta`` picks which meta fields the API sends."""

    def __init__(self, records, *, meta=("total",), per_page=50, fail=None):
        self.records = records
        self.meta = meta
        self.per_page = per_page
        self.fail = fail or {}  # page number -> list of responses to send first
        self.pages: list[int] = []
        self.queries: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        number = int(params.pop("page"))
        self.pages.append(number)
        self.queries.append(params)
        if self.fail.get(number):
            return self.fail[number].pop(0)
        start = (number - 1) * self.per_page
        data = self.records[start : start + self.per_page]
        total_pages = -(-len(self.records) // self.per_page)
        meta = {
            "total": len(self.records),
            "totalPages": total_pages,
            "hasMore": number < total_pages,
        }
        body = {"data": data}
        if self.meta is not None:
            body["meta"] = {key: meta[key] for key in self.meta}
        return httpx.Response(200, json=body)


def fast_hook() -> LeadpipeHook:
    return LeadpipeHook(retry_backoff=0.001)


def collect_async(hook, *args, concurrency=1, **kwargs):
    async def run():
        async with hook:
            return [r async for r in hook.aiter_visitors(*args, concurrency=concurrency, **kwargs)]

    return asyncio.run(run())


@pytest.fixture(params=["sync", "async", "async-concurrent"])
def pull(request, leadpipe_conn):
    """All records through one of the three paths; they must agree."""

    def call(*args, **kwargs):
        hook = fast_hook()
        if request.param == "sync":
            return list(hook.iter_visitors(*args, **kwargs))
        return collect_async(hook, *args, concurrency=1 if request.param == "async" else 4, **kwargs)

    call.mode = request.param
    return call


@pytest.mark.parametrize(
    "meta",
    [("total",), ("totalPages",), ("hasMore",), ("total", "totalPages", "hasMore"), None],
    ids=["total", "totalPages", "hasMore", "all-meta", "no-meta"],
)
@pytest.mark.parametrize("count", [0, 1, 50, 51, 437])
def test_every_record_once_in_order_whatever_meta(pull, meta, count):
    records = visitors(count)
    api = FakeVisitorsApi(records, meta=meta)
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        assert pull() == records
    full_pages = -(-count // 50)
    if pull.mode != "async-concurrent":
        # Meta ends the walk at the last page; without meta one empty page confirms the end.
        expected = full_pages + (1 if meta is None or count == 0 else 0)
        assert api.pages == list(range(1, max(expected, 1) + 1))


def test_meta_total_bounds_read_ahead(leadpipe_conn):
    records = visitors(120)  # 3 pages
    api = FakeVisitorsApi(records, meta=("total",))
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        assert collect_async(fast_hook(), concurrency=8) == records
    assert sorted(api.pages) == [1, 2, 3], "meta.total says 3 pages: nothing past them is requested"


def test_read_ahead_without_meta_is_bounded_by_concurrency(leadpipe_conn):
    records = visitors(100)
    api = FakeVisitorsApi(records, meta=None)
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        assert collect_async(fast_hook(), concurrency=3) == records
    # Page 1 alone, then up to 3 in flight; it stops at the first empty page (3) plus read-ahead.
    assert api.pages[0] == 1
    assert set(api.pages) <= {1, 2, 3, 4, 5}
    assert {1, 2, 3} <= set(api.pages)


def test_concurrent_requests_really_overlap(leadpipe_conn):
    records = visitors(500)
    api = FakeVisitorsApi(records, meta=("total",))
    state = {"now": 0, "max": 0}

    async def slow(request):
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return api(request)

    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=slow)
        assert collect_async(fast_hook(), concurrency=4) == records
    assert state["max"] == 4


def test_filters_are_sent_and_blank_ones_dropped(pull):
    api = FakeVisitorsApi(visitors(3))
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        pull(timeframe="7d", domain="acme.com", email="")
    assert api.queries == [{"timeframe": "7d", "domain": "acme.com"}]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeframe": "1d"}, r"timeframe must be one of 24h, 7d, 14d, 30d, 90d, all; got '1d'"),
        ({"timeframe": 7}, r"timeframe must be a string, got int 7"),
        ({"email": "nobody"}, r"email must be an email address"),
        ({"domain": "x" * 256}, r"domain must be 1-255 characters long, got 256"),
    ],
)
def test_bad_filters_fail_before_any_request(leadpipe_conn, kwargs, match):
    hook = fast_hook()
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(VISITORS_URL)
        with pytest.raises(LeadpipeConfigError, match=match):
            hook.iter_visitors(**kwargs)  # raised on the call, not at the first next()
        with pytest.raises(LeadpipeConfigError, match=match):
            hook.aiter_visitors(**kwargs)
    assert not route.called


@pytest.mark.parametrize("concurrency", [0, 17, 2.5, True, "4"])
def test_bad_concurrency(leadpipe_conn, concurrency):
    with pytest.raises(LeadpipeConfigError, match="concurrency must be a whole number from 1 to 16"):
        fast_hook().aiter_visitors(concurrency=concurrency)


def test_503_mid_pull_is_retried(pull):
    records = visitors(200)
    api = FakeVisitorsApi(records, fail={3: [httpx.Response(503), httpx.Response(503)]})
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        assert pull() == records
    assert api.pages.count(3) == 3


def test_auth_failure_mid_pull_raises_after_earlier_pages(pull):
    records = visitors(200)
    api = FakeVisitorsApi(
        records, fail={3: [httpx.Response(403, json={"error": {"message": "Organization is expired"}})]}
    )
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        with pytest.raises(LeadpipeAuthError, match="Organization is expired"):
            pull()
    assert api.pages.count(3) == 1, "auth errors are never retried"


def test_partial_consumption_makes_no_further_requests(leadpipe_conn):
    api = FakeVisitorsApi(visitors(500))
    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        iterator = fast_hook().iter_visitors()
        first = [next(iterator) for _ in range(60)]
    assert [r["n"] for r in first] == list(range(60))
    assert api.pages == [1, 2], "pages are fetched lazily"


def test_async_consumer_stopping_early_cancels_read_ahead(leadpipe_conn):
    api = FakeVisitorsApi(visitors(2000))

    async def run():
        hook = fast_hook()
        async with hook:
            stream = hook.aiter_visitors(concurrency=4)
            got = [await anext(stream) for _ in range(60)]
            await stream.aclose()
            return got, [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    requested = []

    async def slow(request):
        # Read-ahead pages never answer, so they are still in flight when the consumer stops, however
        # slow the machine (a 0.5 s delay could pass first).
        page = int(request.url.params["page"])
        requested.append(page)
        if page > 2:
            await asyncio.get_running_loop().create_future()  # until cancelled
        return api(request)

    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=slow)
        got, leftover = asyncio.run(run())
    assert len(got) == 60
    assert leftover == [], "read-ahead tasks must not outlive the iterator"
    assert max(requested) <= 6 and api.pages == [1, 2]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"data": {"x": 1}}, r"page 1: field 'data' is dict, expected a list"),
        ({"data": [{"a": 1}, "oops"]}, r"page 1: field 'data.1' is str, expected an object"),
        ({"data": [], "meta": []}, r"'meta': expected an object"),
        ({"data": [{"a": 1}], "meta": {"total": "5"}}, r"'meta.total': expected a whole number"),
        ({"data": [{"a": 1}], "meta": {"hasMore": "yes"}}, r"'meta.hasMore': expected a boolean"),
    ],
)
def test_malformed_pages_are_response_errors(pull, body, match):
    with respx.mock() as mock:
        mock.get(VISITORS_URL).respond(200, json=body)
        with pytest.raises(LeadpipeResponseError, match=match):
            pull()


def test_api_ignoring_page_is_detected_not_looped(pull):
    with respx.mock() as mock:
        route = mock.get(VISITORS_URL).respond(200, json={"data": visitors(50)})
        with pytest.raises(LeadpipeResponseError, match="same 50 records for pages 1 and 2"):
            pull()
    assert route.call_count <= 5


def test_pages_shifting_during_pull_duplicate_but_never_lose_records(pull):
    """New visitors arriving at the front while paging: records repeat, none is lost."""
    original = visitors(150)
    state = {"records": list(original)}

    def api(request):
        number = int(request.url.params["page"])
        if number == 2:  # 10 new visitors identified between page 1 and page 2
            state["records"] = visitors(10, prefix="new") + state["records"]
        data = state["records"][(number - 1) * 50 : number * 50]
        return httpx.Response(200, json={"data": data, "meta": {"total": len(state["records"])}})

    with respx.mock() as mock:
        mock.get(VISITORS_URL).mock(side_effect=api)
        got = pull()
    assert all(record in got for record in original)
    assert len(got) == 160  # 10 records read twice: pages are not a snapshot
