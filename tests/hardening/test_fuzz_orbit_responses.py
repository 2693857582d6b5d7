"""Hypothesis fuzzing of the Orbit audience calls: whatever the server sends (any status, any
bytes, any JSON, the documented examples damaged in one place), every hook method returns its
model or raises a typed ``LeadpipeError`` -- never another exception, never the key, never a
whole body in the message. Sync and async paths both run, over the real request core (respx
answers at the transport)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.exceptions import LeadpipeError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AudienceExport
from tests.unit.conftest import API_KEY
from tests.unit.test_models_audiences import (
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

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CONTENT = b"email\nada@example.com\n"
DOWNLOADABLE = copy.deepcopy(EXPORT)
DOWNLOADABLE["data"]["export"].update(byteSize=len(CONTENT), contentSha1=hashlib.sha1(CONTENT).hexdigest())
EXPORT_MODEL = AudienceExport.from_response(DOWNLOADABLE)


def _drain_stream(hook: LeadpipeHook, mode: str, tmp: Any) -> Any:
    if mode == "sync":
        with hook.stream_audience_export_csv(AUDIENCE_ID, RUN_ID) as stream:
            return stream.row_cap, b"".join(stream.iter_bytes())

    async def read() -> Any:
        async with hook.astream_audience_export_csv(AUDIENCE_ID, RUN_ID) as stream:
            return stream.row_cap, b"".join([chunk async for chunk in stream.aiter_bytes()])

    return asyncio.run(read())


def _rows(hook: LeadpipeHook, mode: str, tmp: Any) -> Any:
    if mode == "sync":
        return list(hook.iter_audience_results(AUDIENCE_ID, RUN_ID, page_size=10))

    async def pull() -> Any:
        return [
            r async for r in hook.aiter_audience_results(AUDIENCE_ID, RUN_ID, page_size=10, concurrency=3)
        ]

    return asyncio.run(pull())


def _plain(name: str, *args: Any, **kwargs: Any) -> Any:
    def invoke(hook: LeadpipeHook, mode: str, tmp: Any) -> Any:
        if mode == "sync":
            return getattr(hook, name)(*args, **kwargs)
        return asyncio.run(getattr(hook, f"a{name}")(*args, **kwargs))

    return invoke


#: Every hook path, with the documented body it expects (the seed for near-valid documents).
CALLS: dict[str, tuple[Any, Any]] = {
    "list_audiences": (_plain("list_audiences", status="active"), {"data": [AUDIENCE]}),
    "get_audience": (_plain("get_audience", AUDIENCE_ID), {"data": AUDIENCE}),
    "create_audience": (
        _plain("create_audience", "n", {"topicIds": [1]}, status="active"),
        {"data": AUDIENCE},
    ),
    "update_audience": (_plain("update_audience", AUDIENCE_ID, status="active"), {"data": AUDIENCE}),
    "delete_audience": (_plain("delete_audience", AUDIENCE_ID), {"data": {"deleted": True}}),
    "create_audience_run": (
        _plain("create_audience_run", AUDIENCE_ID, idempotency_key="k"),
        {"data": QUEUED_RUN},
    ),
    "list_audience_runs": (_plain("list_audience_runs", AUDIENCE_ID), {"data": [DAILY_RUN]}),
    "get_audience_run": (_plain("get_audience_run", AUDIENCE_ID, RUN_ID), RESULTS_202),
    "cancel_audience_run": (_plain("cancel_audience_run", AUDIENCE_ID, RUN_ID), {"data": QUEUED_RUN}),
    "get_audience_results_page": (_plain("get_audience_results_page", AUDIENCE_ID, RUN_ID), RESULTS_200),
    "iter_audience_results": (_rows, RESULTS_200),
    "get_audience_run_stats": (_plain("get_audience_run_stats", AUDIENCE_ID, RUN_ID), STATS),
    "create_audience_export": (_plain("create_audience_export", AUDIENCE_ID, RUN_ID), EXPORT),
    "get_audience_export": (_plain("get_audience_export", AUDIENCE_ID, RUN_ID, EXPORT_ID), EXPORT),
    "stream_audience_export_csv": (_drain_stream, {"data": {"run": {"id": RUN_ID, "status": "failed"}}}),
    "download_audience_export": (
        lambda hook, mode, tmp: (
            hook.download_audience_export(EXPORT_MODEL, tmp / "x.csv")
            if mode == "sync"
            else asyncio.run(hook.adownload_audience_export(EXPORT_MODEL, tmp / "x.csv"))
        ),
        {"data": {}},
    ),
}

statuses = st.sampled_from([200, 201, 202, 204, 400, 401, 403, 404, 409, 422, 429, 500, 503]) | st.integers(
    200, 599
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.just(API_KEY),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def damage(document: Any, path: tuple, how: str, replacement: Any) -> Any:
    if not path:
        return replacement
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if how == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return document


@st.composite
def bodies(draw: Any, seed: Any) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "near-valid", "valid"]))
    if kind == "bytes":
        return draw(st.binary(max_size=512))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    document = copy.deepcopy(seed)
    if kind == "near-valid":
        path = draw(st.sampled_from(paths(document)))
        how = draw(st.sampled_from(["drop", "replace", "null"]))
        document = damage(document, path, how, None if how == "null" else draw(json_values))
    return json.dumps(document).encode()


@pytest.fixture(scope="module")
def fuzz_hook() -> Any:
    conn = json.dumps({"conn_type": "leadpipe", "password": API_KEY})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", conn)
        with LeadpipeHook(max_retries=0) as hook:
            yield hook


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(CALLS)), mode=st.sampled_from(["sync", "async"]))
def test_orbit_calls_raise_only_typed_errors(fuzz_hook, tmp_path, data, name, mode):
    invoke, seed = CALLS[name]
    status = data.draw(statuses, label="status")
    content = data.draw(bodies(seed), label="body")
    headers = {"content-type": data.draw(st.sampled_from(["application/json", "text/csv", "text/html"]))}
    if data.draw(st.booleans(), label="row cap header"):
        headers["x-export-row-cap"] = data.draw(st.sampled_from([b"300000", b"-1", b"x", b"\xb2", b""]))
    with respx.mock(assert_all_called=False) as mock:
        mock.route().mock(
            side_effect=lambda request: httpx.Response(status, content=content, headers=headers)
        )
        try:
            invoke(fuzz_hook, mode, tmp_path)
        except LeadpipeError as exc:
            message = str(exc)
            assert API_KEY not in message and API_KEY not in repr(exc)
            assert len(message) < 800, message
        for call in mock.calls:
            if call.request.url.host != "api.aws53.cloud":
                assert "x-api-key" not in call.request.headers
