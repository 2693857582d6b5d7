"""Hypothesis fuzzing of response handling: whatever the server sends, the result is a valid
``AccountStatus`` or a typed ``LeadpipeError`` (``LeadpipeResponseError`` for a 2xx) — never
another exception, never the key or the whole body in the message.

Three generators: arbitrary bytes with arbitrary status and headers; arbitrary JSON; and
near-valid documents generated from the published OpenAPI schema, then damaged in one place. For
the last, ``jsonschema`` is the oracle: the model accepts exactly what the schema accepts (plus its
one documented refinement: ``resetsAt`` must be an ISO 8601 date-time).

Section 4 does the same for every Orbit audience call, sync and async, seeded with the documented
examples: each returns its model or raises a typed ``LeadpipeError``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from typing import Any

import httpx
import jsonschema
import pendulum
import pytest
import respx
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.exceptions import LeadpipeError, LeadpipeResponseError
from airflow_provider_leadpipe.hooks import responses, retry
from airflow_provider_leadpipe.hooks import settings as api_settings
from airflow_provider_leadpipe.hooks.leadpipe import ACCOUNT_PATH, LeadpipeHook
from airflow_provider_leadpipe.models import AccountStatus, AudienceExport
from leadpipe_sandbox.contract import ACCOUNT_OPENAPI
from tests.hardening.figures import tally
from tests.unit.conftest import API_KEY
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

pytestmark = pytest.mark.timeout(120)

SETTINGS = api_settings.ApiSettings(conn_id="fuzz", base_url="https://api.aws53.cloud", api_key=API_KEY)
REQUEST = httpx.Request("GET", f"https://api.aws53.cloud{ACCOUNT_PATH}")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCHEMA = yaml.safe_load(ACCOUNT_OPENAPI.read_text())["components"]["schemas"]["AccountStatus"]
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def parse(response: httpx.Response) -> AccountStatus | LeadpipeError:
    """What a caller of get_account_status gets: the model, or the typed error it raised."""
    try:
        return AccountStatus.from_response(responses.handle_response(response, SETTINGS))
    except LeadpipeError as exc:
        return exc


def respond(document: Any) -> httpx.Response:
    """A 200 carrying ``document`` as JSON (NaN/Infinity included: Python's json accepts them)."""
    body = json.dumps(document).encode()
    return httpx.Response(200, content=body, headers={"content-type": "application/json"}, request=REQUEST)


def check_error(error: LeadpipeError) -> None:
    message = str(error)
    assert API_KEY not in message and API_KEY not in repr(error)
    assert len(message) < 400, message  # a summary, never the whole body


# -- 1. arbitrary bytes, statuses and headers ---------------------------------------------------

content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "application/json; charset=no-such-codec",
        "text/html",
        "text/plain",
        "application/octet-stream",
    ]
)
header_values = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@FUZZ
@given(
    status=st.integers(100, 599),
    body=st.binary(max_size=2048),
    content_type=content_types,
    retry_after=st.none() | header_values | st.sampled_from([b"0", b"7", b"99999999999999999999", b"\xb2"]),
)
def test_any_bytes_any_status(status, body, content_type, retry_after):
    headers = {}
    if content_type:
        headers["content-type"] = content_type
    if retry_after is not None:
        headers["retry-after"] = retry_after
    result = parse(httpx.Response(status, content=body, headers=headers, request=REQUEST))
    if isinstance(result, AccountStatus):
        assert 200 <= status < 300
        tally("fuzz", "arbitrary bytes, status, headers", type(result).__name__)
        return
    check_error(result)
    if 200 <= status < 300:
        assert type(result) is LeadpipeResponseError, result
    else:
        assert result.http_status == status
    retry_after_seen = getattr(result, "retry_after", None)
    assert retry_after_seen is None or retry_after_seen >= 0
    tally("fuzz", "arbitrary bytes, status, headers", type(result).__name__)


# -- 2. arbitrary JSON --------------------------------------------------------------------------


def json_of(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | floats | st.text(max_size=20) | st.just(API_KEY)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
        ),
        max_leaves=25,
    )


#: What Python's json module accepts, NaN and Infinity included.
json_values = json_of(st.floats())
#: Strict JSON (RFC 8259 has no NaN or Infinity): what the schema oracle can judge.
strict_json_values = json_of(st.floats(allow_nan=False, allow_infinity=False))


@FUZZ
@given(document=json_values, wrap=st.booleans())
def test_any_json(document, wrap):
    document = {"data": document} if wrap else document
    result = parse(respond(document))
    if isinstance(result, LeadpipeError):
        assert type(result) is LeadpipeResponseError, result
        check_error(result)
    tally("fuzz", "arbitrary JSON", type(result).__name__)


# -- 3. near-valid documents from the schema ----------------------------------------------------

numbers = st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False)
iso_datetimes = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())


def from_schema(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """A strategy for documents valid against one (inline, $ref-free) JSON schema."""
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return st.one_of([from_schema({**schema, "type": kind}, name) for kind in kinds])
    if kinds == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        known = st.fixed_dictionaries(
            {key: from_schema(sub, key) for key, sub in properties.items() if key in required},
            optional={key: from_schema(sub, key) for key, sub in properties.items() if key not in required},
        )
        extra = st.dictionaries(
            st.text(max_size=10).filter(lambda k: k not in properties), strict_json_values, max_size=2
        )
        return st.tuples(known, extra).map(lambda parts: {**parts[1], **parts[0]})
    if kinds == "number":
        return numbers
    if kinds == "string":
        return iso_datetimes if name == "resetsAt" else st.text(max_size=20) | st.just(API_KEY)
    if kinds == "boolean":
        return st.booleans()
    if kinds == "null":
        return st.none()
    raise AssertionError(f"unsupported schema {schema}")


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON document (dict keys and list indexes)."""
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
        return replacement if how != "drop" else {}
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if how == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return document


def resets_at_ok(data: Any) -> bool:
    try:
        value = data["credits"]["resetsAt"]
    except (KeyError, TypeError):
        return True
    if value is None:
        return True
    try:
        return isinstance(value, str) and isinstance(pendulum.parse(value), pendulum.DateTime)
    except Exception:
        return False


def expect(document: Any, result: AccountStatus | LeadpipeError) -> None:
    valid = VALIDATOR.is_valid(document) and resets_at_ok(document.get("data"))
    if valid:
        assert isinstance(result, AccountStatus), (result, document)
        assert AccountStatus.from_data(result.to_dict()) == result  # XCom round trip
        assert {k: v for k, v in result.to_dict().items() if k != "credits"} == {
            k: v for k, v in document["data"].items() if k != "credits"
        }
    else:
        assert type(result) is LeadpipeResponseError, (result, document)
        check_error(result)
        assert "'data" in str(result) or "no 'data' object" in str(result) or "'data' envelope" in str(result)


@FUZZ
@given(document=from_schema(SCHEMA))
def test_schema_valid_documents_parse(document):
    result = parse(respond(document))
    expect(document, result)
    tally("fuzz", "documents generated from the schema", type(result).__name__)


@FUZZ
@given(
    document=from_schema(SCHEMA),
    choice=st.data(),
    how=st.sampled_from(["drop", "replace", "null"]),
    replacement=strict_json_values,
)
def test_near_valid_documents_are_accepted_exactly_when_the_schema_says_so(
    document, choice, how, replacement
):
    path = choice.draw(st.sampled_from(paths(document)), label="path")
    damaged = damage(copy.deepcopy(document), path, how, None if how == "null" else replacement)
    result = parse(respond(damaged))
    expect(damaged, result)
    tally("fuzz", "near-valid documents", type(result).__name__)


@FUZZ
@given(value=st.text(max_size=40))
def test_retry_after_parsing_never_raises(value):
    seconds = retry.parse_retry_after(value)
    assert seconds is None or seconds >= 0


# -- 4. Orbit audience calls ---------------------------------------------------------------------
# Every hook method, sync and async, over the real request core (respx answers at the transport):
# any status, any bytes, any JSON, or a documented example damaged in one place. Each call returns
# its model or raises a typed LeadpipeError -- never another exception, never the key, never a
# whole body in the message; nothing reaching another host carries the key.

ORBIT_FUZZ = settings(
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


@st.composite
def orbit_bodies(draw: Any, seed: Any) -> bytes:
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


@ORBIT_FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(CALLS)), mode=st.sampled_from(["sync", "async"]))
def test_orbit_calls_raise_only_typed_errors(fuzz_hook, tmp_path, data, name, mode):
    invoke, seed = CALLS[name]
    status = data.draw(statuses, label="status")
    content = data.draw(orbit_bodies(seed), label="body")
    headers = {"content-type": data.draw(st.sampled_from(["application/json", "text/csv", "text/html"]))}
    if data.draw(st.booleans(), label="row cap header"):
        headers["x-export-row-cap"] = data.draw(st.sampled_from([b"300000", b"-1", b"x", b"\xb2", b""]))
    with respx.mock(assert_all_called=False) as mock:
        mock.route().mock(
            side_effect=lambda request: httpx.Response(status, content=content, headers=headers)
        )
        outcome = "returned"
        try:
            invoke(fuzz_hook, mode, tmp_path)
        except LeadpipeError as exc:
            message = str(exc)
            assert API_KEY not in message and API_KEY not in repr(exc)
            assert len(message) < 800, message
            outcome = type(exc).__name__
        for call in mock.calls:
            if call.request.url.host != "api.aws53.cloud":
                assert "x-api-key" not in call.request.headers
    tally("fuzz", "Orbit audience calls (sync and async)", outcome)
