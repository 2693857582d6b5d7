"""Every list the hook reads is read whole, or refused with a typed error -- never a silent part.

Class: a list read as one page when the API pages it (issue 25, item 2: the audience upsert read
one page of ``GET /v1/intent/audiences`` and created a duplicate on every run once there were more
audiences than a page). Every list-reading method of the hook (sync and async; found by name, so a
method added later fails :func:`test_every_list_reading_method_is_covered` until it is covered
here) is checked

1. against the sandbox holding more items than one page, with the default and with a small page:
   every item, once;
2. against servers whose answers do not let a client tell it has everything (offset or limit
   ignored, a total that is not reached, ``hasMore`` without more, a cursor): a typed
   ``LeadpipeResponseError``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_leadpipe.conditions.audiences import AudienceRunCondition
from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.triggers.base import acheck, check
from tests.hardening.figures import record
from tests.unit.conftest import API_KEY
from tests.unit.models.test_audiences import AUDIENCE, DAILY_RUN

ORBIT = "/v1/intent/audiences"
LISTING = re.compile(r"^a?(list|iter)_")
#: The one row of the hardening report for this class.
CASE = (
    "every list read whole (audiences 57, runs 105, pixels 30+, visitors 1,000, people 437; any page size) "
    "or refused (offset/limit ignored, total not reached or changing, hasMore without more, cursor)"
)

# -- 0. which methods read a list -----------------------------------------------------------------

#: Every list-reading hook method and the sandbox check that covers it (section 1). Methods that
#: read one bounded page by design are not lists: ``get_audience_results_page``.
SANDBOX_CHECKED = {
    "list_audiences",
    "alist_audiences",
    "list_audience_runs",
    "alist_audience_runs",
    "list_pixels",
    "iter_visitors",
    "aiter_visitors",
    "iter_visitor_pages",
    "aiter_visitor_pages",
    "iter_audience_results",
    "aiter_audience_results",
    "iter_audience_result_pages",
    "aiter_audience_result_pages",
}


def test_every_list_reading_method_is_covered():
    found = {name for name, _ in inspect.getmembers(LeadpipeHook, callable) if LISTING.match(name)}
    assert found == SANDBOX_CHECKED, "a list-reading hook method is not covered by this module"


# -- 1. against the sandbox: more items than a page -------------------------------------------------


def _call(mode: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return method(*args, **kwargs)
    return asyncio.run(method(*args, **kwargs))


def _collect(mode: str, iterator: Any) -> list[Any]:
    if mode == "sync":
        return list(iterator)

    async def drain() -> list[Any]:
        return [item async for item in iterator]

    return asyncio.run(drain())


def _plain_ids(sandbox: Any, path: str, **params: Any) -> list[str]:
    """Every id of a list over plain HTTP, independent of the provider (limit/offset to the end)."""
    ids: list[str] = []
    with httpx.Client(base_url=sandbox.url, headers={"x-api-key": sandbox.api_key}) as client:
        while True:
            page = client.get(path, params={**params, "limit": 100, "offset": len(ids)}).json()["data"]
            ids += [row["id"] for row in page]
            if len(page) < 100:
                return ids


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_audience_and_run_lists_are_read_to_the_end(leadpipe_sandbox, mode):
    audiences = [leadpipe_sandbox.create_audience(f"Audience {n}", status="draft") for n in range(57)]
    busy = audiences[3]["id"]
    for day in range(1, 106):
        leadpipe_sandbox.add_daily_run(busy, data_date=f"2026-0{1 + day // 28}-{1 + day % 28:02d}")
    with LeadpipeHook() as hook:
        prefix = "" if mode == "sync" else "a"
        list_audiences = getattr(hook, f"{prefix}list_audiences")
        list_runs = getattr(hook, f"{prefix}list_audience_runs")

        expected = [a["id"] for a in audiences]
        assert _plain_ids(leadpipe_sandbox, ORBIT) == expected
        before = leadpipe_sandbox.request_count(ORBIT)
        assert [a.id for a in _call(mode, list_audiences)] == expected  # default page: 50
        assert leadpipe_sandbox.request_count(ORBIT) - before == 2
        assert [a.id for a in _call(mode, list_audiences, page_size=4)] == expected  # 15 pages
        assert [a.id for a in _call(mode, list_audiences, status="draft", page_size=7)] == expected

        runs = _plain_ids(leadpipe_sandbox, f"{ORBIT}/{busy}/runs")
        assert len(runs) == 105
        assert [r.id for r in _call(mode, list_runs, busy)] == runs  # default page: 100
        assert [r.id for r in _call(mode, list_runs, busy, page_size=9)] == runs
        # An explicit limit is one request for the newest ``limit`` runs, as documented.
        assert [r.id for r in _call(mode, list_runs, busy, limit=10)] == runs[:10]
    record("lists", CASE, mode=mode)


def test_pixels_visitors_and_results_are_read_to_the_end(leadpipe_sandbox):
    for n in range(30):
        with LeadpipeHook() as hook:
            hook.create_pixel(f"site{n}.example.com")
    expected_pixels = {p["id"] for p in leadpipe_sandbox.key_state()["pixels"]}
    audience = leadpipe_sandbox.create_audience("People", people=437)
    run = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-04")
    with LeadpipeHook() as hook:
        assert {p.id for p in hook.list_pixels()} == expected_pixels and len(expected_pixels) >= 30
        visitors = [v for v in hook.iter_visitors(timeframe="all")]
        assert len(visitors) == 1000 == len({json.dumps(v, sort_keys=True) for v in visitors})
        pages = list(hook.iter_visitor_pages(timeframe="all"))
        assert sum(len(p.records) for p in pages) == 1000 and len(pages) == 20
        assert len(_collect("async", hook.aiter_visitors(timeframe="all", concurrency=3))) == 1000
        assert len(_collect("async", hook.aiter_visitor_pages(timeframe="all", concurrency=3))) == 20
        args = (audience["id"], run["id"])
        people = list(hook.iter_audience_results(*args, page_size=30))
        assert len(people) == 437
        assert len(list(hook.iter_audience_result_pages(*args, page_size=30))) == 15
        assert _collect("async", hook.aiter_audience_results(*args, page_size=30, concurrency=3)) == people
        assert len(_collect("async", hook.aiter_audience_result_pages(*args, page_size=30))) == 15
    record("lists", CASE, mode="sync")
    record("lists", CASE, mode="async")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_run_condition_looks_past_the_newest_100_runs_before_saying_none_yet(leadpipe_sandbox, mode):
    """The sensor's condition reads the newest 100 runs first; with no match among a full window it
    reads the whole list rather than answer "none yet" from part of it."""
    audience = leadpipe_sandbox.create_audience("Backlog", status="draft")["id"]
    done = leadpipe_sandbox.add_daily_run(audience, data_date="2026-05-04")
    for _ in range(100):  # newer, failed: the completed run is the 101st newest
        leadpipe_sandbox.add_daily_run(audience, data_date="2026-05-05", status="failed")
    condition = AudienceRunCondition(audience_id=audience)
    with LeadpipeHook() as hook:
        run, message = _call(mode, check if mode == "sync" else acheck, hook, condition.reads())
    assert run is not None and run.id == done["id"], message
    record("lists", CASE, mode=mode)


# -- 2. against servers that do not let a client tell it has everything ----------------------------

BASE = "https://api.aws53.cloud"
AUDIENCE_ID = AUDIENCE["id"]


def _audience(n: int) -> dict[str, Any]:
    return {**AUDIENCE, "id": f"00000000-0000-4000-8000-{n:012d}", "name": f"A{n}"}


def _run(n: int) -> dict[str, Any]:
    return {**DAILY_RUN, "id": f"00000000-0000-4000-9000-{n:012d}"}


def _lying(
    kind: str, make: Callable[[int], dict[str, Any]], items: int = 23
) -> Callable[..., httpx.Response]:
    """A list endpoint holding ``items`` rows that misbehaves as ``kind`` says."""
    rows = [make(n) for n in range(items)]

    def answer(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params.get("limit", 10))
        offset = int(request.url.params.get("offset", 0))
        meta: dict[str, Any] = {"timestamp": "2026-05-05T00:00:00Z", "request_id": "r"}
        if kind == "ignores offset":
            page = rows[:limit]
        elif kind == "ignores limit":
            page = rows
        elif kind == "total not reached":
            page = rows[offset : min(offset + limit, 10)]  # stops at 10 rows, says 23
            meta["total"] = items
        elif kind == "total changes":
            page = rows[offset : offset + limit]
            meta["total"] = items + offset
        elif kind == "hasMore without more":
            page = rows[offset : min(offset + limit, 10)]
            meta["hasMore"] = True
        elif kind == "cursor":
            page = rows[:limit]
            meta["nextCursor"] = "c2"
        else:
            raise AssertionError(kind)
        return httpx.Response(200, json={"data": page, "meta": meta})

    return answer


KINDS = [
    "ignores offset",
    "ignores limit",
    "total not reached",
    "total changes",
    "hasMore without more",
    "cursor",
]
LISTS = {
    "audiences": (
        f"{BASE}{ORBIT}",
        _audience,
        lambda hook, prefix: getattr(hook, f"{prefix}list_audiences")(page_size=5),
    ),
    "runs": (
        f"{BASE}{ORBIT}/{AUDIENCE_ID}/runs",
        _run,
        lambda hook, prefix: getattr(hook, f"{prefix}list_audience_runs")(AUDIENCE_ID, page_size=5),
    ),
}


@pytest.fixture
def api_hook(monkeypatch) -> LeadpipeHook:
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEADPIPE_DEFAULT", json.dumps({"conn_type": "leadpipe", "password": API_KEY})
    )
    return LeadpipeHook(max_retries=0)


@pytest.mark.parametrize("what", sorted(LISTS))
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_list_that_cannot_be_told_whole_is_refused_with_a_typed_error(api_hook, what, mode):
    url, make, read = LISTS[what]
    refused = []
    for kind in KINDS:
        with respx.mock(assert_all_called=False) as mock:
            mock.get(url).mock(side_effect=_lying(kind, make))

            async def aread() -> Any:
                async with api_hook:
                    return await read(api_hook, "a")

            with pytest.raises(LeadpipeResponseError, match="cannot be read whole") as info:
                read(api_hook, "") if mode == "sync" else asyncio.run(aread())
            assert API_KEY not in str(info.value)
            refused.append(kind)
    assert refused == KINDS
    record("lists", CASE, mode=mode)


@pytest.mark.parametrize("what", sorted(LISTS))
def test_a_list_of_one_page_is_asked_for_without_the_undocumented_offset(api_hook, what):
    url, make, read = LISTS[what]
    rows = [make(n) for n in range(3)]
    with respx.mock() as mock:
        route = mock.get(url).mock(return_value=httpx.Response(200, json={"data": rows}))
        assert [row.id for row in read(api_hook, "")] == [row["id"] for row in rows]
    assert [dict(call.request.url.params) for call in route.calls] == [{"limit": "5"}]


@pytest.mark.parametrize(
    "meta",
    [{"total": 40}, {"hasMore": True}, {"nextCursor": "c2"}],
    ids=["total above rows", "hasMore", "cursor"],
)
def test_a_pixel_list_saying_it_holds_more_is_refused(api_hook, meta):
    pixel = {
        "id": "9d1c4a2e-0000-4000-8000-000000000001",
        "domain": "a.example.com",
        "name": "a",
        "status": "active",
        "pausedReason": None,
        "createdAt": "2026-05-01T00:00:00Z",
    }
    with respx.mock() as mock:
        mock.get(f"{BASE}/v1/data/pixels").mock(
            return_value=httpx.Response(200, json={"data": [pixel], "meta": meta})
        )
        with pytest.raises(LeadpipeResponseError, match="pixel list cannot be read whole"):
            api_hook.list_pixels()
        mock.get(f"{BASE}/v1/data/pixels").mock(
            return_value=httpx.Response(200, json={"data": [pixel], "meta": {"total": 1, "hasMore": False}})
        )
        assert [p.id for p in api_hook.list_pixels()] == [pixel["id"]]
    record("lists", CASE, mode="sync")
