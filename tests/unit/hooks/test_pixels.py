"""LeadpipeHook pixel methods against a mocked API (respx)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from airflow_provider_leadpipe.exceptions import (
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeNotFoundError,
    LeadpipeResponseError,
    LeadpipeServerError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import Pixel
from tests.unit.conftest import BASE_URL

PIXELS_URL = f"{BASE_URL}/v1/data/pixels"
PIXEL_ID = "7b1c2f0e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
CONFLICT = {"error": {"code": "HTTP_ERROR", "message": "Pixel already exists for this domain"}}


def listed(domain="acme.com", **fields):
    row = {
        "id": PIXEL_ID,
        "domain": domain,
        "name": "Acme",
        "status": "active",
        "pausedReason": None,
        "createdAt": "2026-08-01T10:00:00.000Z",
    }
    row.update(fields)
    return row


def created(domain="acme.com"):
    return {
        "id": PIXEL_ID,
        "domain": domain,
        "name": domain,
        "status": "active",
        "code": f'<script src="https://leadpipe.aws53.cloud/p/{PIXEL_ID}.js"></script>',
        "createdAt": "2026-08-01T10:00:00.000Z",
    }


@pytest.fixture
def hook(leadpipe_conn):
    return LeadpipeHook(retry_backoff=0.001)


def sent_json(route):
    return json.loads(route.calls.last.request.content)


def test_list_pixels_keeps_every_field(hook):
    rows = [listed(), listed("b.io", id="other", status="paused", pausedReason="limit", extra={"x": 1})]
    with respx.mock() as mock:
        mock.get(PIXELS_URL).respond(200, json={"data": rows})
        pixels = hook.list_pixels()
    assert [p.domain for p in pixels] == ["acme.com", "b.io"]
    assert pixels[1].is_paused and pixels[1].paused_reason == "limit"
    assert [p.to_dict() for p in pixels] == rows, "to_dict gives back exactly what the API sent"


def test_create_sends_the_api_names_and_returns_the_snippet(hook):
    with respx.mock() as mock:
        route = mock.post(PIXELS_URL).respond(201, json={"data": created()})
        pixel = hook.create_pixel("acme.com", name="Acme", excluded_paths=["/admin", "/internal"])
    assert sent_json(route) == {
        "domain": "acme.com",
        "name": "Acme",
        "excludedPaths": ["/admin", "/internal"],
    }
    assert pixel.id == PIXEL_ID and pixel.code.startswith("<script")
    assert pixel.to_dict() == created()


def test_create_409_raises_by_default(hook):
    with respx.mock(assert_all_called=False) as mock:
        post = mock.post(PIXELS_URL).respond(409, json=CONFLICT)
        listing = mock.get(PIXELS_URL)
        with pytest.raises(LeadpipeConflictError, match="Pixel already exists for this domain") as info:
            hook.create_pixel("acme.com")
    assert info.value.http_status == 409
    assert post.call_count == 1 and not listing.called


def test_create_409_returns_the_existing_pixel_matched_by_domain(hook):
    rows = [listed("other.com", id="x"), listed("Acme.COM.")]
    with respx.mock() as mock:
        mock.post(PIXELS_URL).respond(409, json=CONFLICT)
        mock.get(PIXELS_URL).respond(200, json={"data": rows})
        pixel = hook.create_pixel("acme.com", if_exists="return")
    assert pixel.id == PIXEL_ID
    assert pixel.to_dict() == rows[1]


def test_create_409_with_no_matching_pixel_is_a_clear_conflict(hook):
    with respx.mock() as mock:
        mock.post(PIXELS_URL).respond(409, json=CONFLICT)
        mock.get(PIXELS_URL).respond(200, json={"data": [listed("other.com")]})
        with pytest.raises(
            LeadpipeConflictError, match=r"none of the organization's 1 pixel\(s\) has domain"
        ):
            hook.create_pixel("acme.com", if_exists="return")


def test_create_retries_503_then_409_returns_existing(hook):
    """A retried POST that meets its own earlier success is still idempotent with 'return'."""
    with respx.mock() as mock:
        post = mock.post(PIXELS_URL)
        post.side_effect = [httpx.Response(503), httpx.Response(409, json=CONFLICT)]
        mock.get(PIXELS_URL).respond(200, json={"data": [listed()]})
        assert hook.create_pixel("acme.com", if_exists="return").id == PIXEL_ID
    assert post.call_count == 2


def test_create_is_not_retried_on_500(hook):
    with respx.mock() as mock:
        post = mock.post(PIXELS_URL).respond(500)
        with pytest.raises(LeadpipeServerError):
            hook.create_pixel("acme.com")
    assert post.call_count == 1, "a POST that may have been processed is never repeated"


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        ({"status": "paused"}, {"status": "paused"}),
        ({"included_paths": ["/shop"]}, {"includedPaths": ["/shop"]}),
        ({"excluded_paths": []}, {"excludedPaths": None}),
        (
            {"included_paths": ["/shop"], "excluded_paths": []},
            {"includedPaths": ["/shop"], "excludedPaths": None},
        ),
        (
            {"status": "active", "included_paths": [], "excluded_paths": []},
            {
                "status": "active",
                "includedPaths": None,
                "excludedPaths": None,
            },
        ),
    ],
    ids=["pause", "allowlist", "clear-denylist", "switch-to-allowlist", "activate-and-clear-both"],
)
def test_update_sends_only_what_changes(hook, kwargs, body):
    updated = {
        **listed(),
        "includedPaths": ["/shop"],
        "excludedPaths": [],
        "updatedAt": "2026-08-02T00:00:00Z",
    }
    with respx.mock() as mock:
        route = mock.patch(f"{PIXELS_URL}/{PIXEL_ID}").respond(200, json={"data": updated})
        pixel = hook.update_pixel(PIXEL_ID, **kwargs)
    assert sent_json(route) == body
    assert pixel.included_paths == ["/shop"] and pixel.to_dict() == updated


def test_update_unknown_pixel_is_not_found(hook):
    with respx.mock() as mock:
        mock.patch(f"{PIXELS_URL}/nope").respond(404, json={"error": {"message": "Pixel not found"}})
        with pytest.raises(LeadpipeNotFoundError, match="Pixel not found"):
            hook.update_pixel("nope", status="paused")


def test_pixel_id_is_escaped_into_one_path_segment(hook):
    with respx.mock() as mock:
        # Match loosely and check the raw path: respx < 0.23 decodes %2F in a route's URL pattern.
        route = mock.patch(url__startswith=PIXELS_URL).respond(200, json={"data": listed()})
        hook.update_pixel("a/../account", status="paused")
    assert route.call_count == 1
    assert route.calls.last.request.url.raw_path == b"/v1/data/pixels/a%2F..%2Faccount"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda h: h.create_pixel(""), "domain is required"),
        (lambda h: h.create_pixel("x" * 256), "domain must be 1-255 characters long, got 256"),
        (lambda h: h.create_pixel("a.com", name="n" * 256), "name must be 1-255 characters long"),
        (lambda h: h.create_pixel("a.com", if_exists="ignore"), "if_exists must be one of error, return"),
        (
            lambda h: h.create_pixel("a.com", included_paths=["/a"], excluded_paths=["/b"]),
            "mutually exclusive",
        ),
        (lambda h: h.create_pixel("a.com", included_paths={"/blog": 1}), r"must be a list of path prefixes"),
        (
            lambda h: h.create_pixel("a.com", excluded_paths=["blog"]),
            r"excluded_paths\[0\] must start with '/'",
        ),
        (
            lambda h: h.create_pixel("a.com", excluded_paths=["/"]),
            r"excluded_paths\[0\] must be 2-500 characters",
        ),
        (
            lambda h: h.create_pixel("a.com", excluded_paths=["/" + "a" * 500]),
            r"must be 2-500 characters long, got 501",
        ),
        (
            lambda h: h.create_pixel("a.com", included_paths=[f"/p{i}" for i in range(51)]),
            "included_paths has 51 entries; Leadpipe allows at most 50",
        ),
        (
            lambda h: h.create_pixel("a.com", included_paths=["/ok", 3]),
            r"included_paths\[1\] must be a string",
        ),
        (lambda h: h.update_pixel(PIXEL_ID), "nothing to update"),
        (lambda h: h.update_pixel(PIXEL_ID, status="stopped"), "status must be one of active, paused"),
        (lambda h: h.update_pixel("", status="paused"), "pixel_id must be the pixel's id"),
        (
            lambda h: h.update_pixel(PIXEL_ID, included_paths=["/a"], excluded_paths=["/b"]),
            "mutually exclusive",
        ),
    ],
)
def test_bad_arguments_fail_before_any_request(hook, call, match):
    with respx.mock(assert_all_called=False) as mock:
        routes = [mock.route(host="api.aws53.cloud")]
        with pytest.raises(LeadpipeConfigError, match=match):
            call(hook)
    assert not routes[0].called


def test_exactly_50_paths_of_500_chars_are_accepted(hook):
    paths = [f"/{i:03d}" + "a" * 496 for i in range(50)]
    assert all(len(p) == 500 for p in paths)
    with respx.mock() as mock:
        route = mock.post(PIXELS_URL).respond(201, json={"data": created()})
        hook.create_pixel("a.com", included_paths=paths)
    assert sent_json(route)["includedPaths"] == paths


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"data": {"domain": "a.com"}}, r"'data.id': missing"),
        ({"data": {"id": 5, "domain": "a.com"}}, r"'data.id': expected a string"),
        ({"data": None}, r"'data': expected an object"),
    ],
)
def test_malformed_pixel_is_a_response_error(hook, body, match):
    with respx.mock() as mock:
        mock.post(PIXELS_URL).respond(201, json=body)
        with pytest.raises(LeadpipeResponseError, match=match):
            hook.create_pixel("a.com")


def test_malformed_list_names_the_row(hook):
    with respx.mock() as mock:
        mock.get(PIXELS_URL).respond(200, json={"data": [listed(), {"id": "x"}]})
        with pytest.raises(LeadpipeResponseError, match=r"'data.1.domain': missing"):
            hook.list_pixels()


def test_pixel_round_trips_through_xcom_dict():
    pixel = Pixel.from_data(created())
    assert Pixel.from_data(json.loads(json.dumps(pixel.to_dict()))) == pixel
