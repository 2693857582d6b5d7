"""Deeply nested JSON, in a 2xx or an error answer, anywhere in the body, ends in a parsed result
or a typed ``LeadpipeError``: never a ``RecursionError`` from the decoder or a ``ValueError`` from
serialising the result later (XCom, trigger events)."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.exceptions import LeadpipeError, LeadpipeResponseError
from airflow_provider_leadpipe.hooks import responses
from airflow_provider_leadpipe.hooks import settings as api_settings
from airflow_provider_leadpipe.hooks.leadpipe import ACCOUNT_PATH, LeadpipeHook
from airflow_provider_leadpipe.models import AccountStatus
from tests.hardening.conftest import call
from tests.hardening.figures import tally
from tests.hardening.loopback import Reply, ScriptedServer
from tests.unit.conftest import API_KEY, account_data

pytestmark = pytest.mark.timeout(120)

SETTINGS = api_settings.ApiSettings(conn_id="deep", base_url="https://api.aws53.cloud", api_key=API_KEY)
REQUEST = httpx.Request("GET", f"https://api.aws53.cloud{ACCOUNT_PATH}")
HOLE = "__DEEP__"
CASE = "nested JSON, depth 1-100000, 6 places"

#: Where the nested value goes: ``HOLE`` marks the spot in an otherwise valid document.
PLACES = {
    "whole body": HOLE,
    "data": {"data": HOLE},
    "known field": {"data": {**account_data(), "organization": HOLE}},
    "unknown field": {"data": {**account_data(), "extraField": HOLE}},
    "error.message": {"error": {"code": "X", "message": HOLE}},
    "error.code": {"error": {"code": HOLE, "message": "failed"}},
}


def nested(depth: int, bracket: str) -> str:
    """JSON text nested ``depth`` levels deep, built as text (json.dumps would itself recurse)."""
    if bracket == "[":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@given(
    place=st.sampled_from(sorted(PLACES)),
    depth=st.integers(1, 400) | st.integers(400, 100_000),
    bracket=st.sampled_from(["[", "{"]),
    status=st.sampled_from([200, 400, 404, 429, 500, 503]),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_nesting_anywhere_is_parsed_or_a_typed_error(place, depth, bracket, status):
    body = json.dumps(PLACES[place]).replace(f'"{HOLE}"', nested(depth, bracket)).encode()
    response = httpx.Response(
        status, content=body, headers={"content-type": "application/json"}, request=REQUEST
    )
    try:
        status_model = AccountStatus.from_response(responses.handle_response(response, SETTINGS))
        json.dumps(status_model.to_dict())  # what XCom and the trigger event need
    except LeadpipeError as exc:
        if 200 <= status < 300:
            assert type(exc) is LeadpipeResponseError, exc
        else:
            assert exc.http_status == status
        tally("fuzz", CASE, type(exc).__name__)
        return
    assert status == 200 and place == "unknown field"
    tally("fuzz", CASE, "model")


def test_deep_answers_over_http_are_typed_errors(mode, conn_to):
    deep = nested(100_000, "[").encode()
    for status in (200, 500):
        with (
            ScriptedServer(default=Reply(status, deep)) as server,
            pytest.raises(LeadpipeError, match="nested too deeply") as info,
        ):
            call(mode, LeadpipeHook(conn_to(server.url), max_retries=0))
        assert info.value.http_status == status
