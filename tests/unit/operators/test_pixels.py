"""Pixel operators: XCom values, idempotent create, update semantics (API mocked with respx)."""

from __future__ import annotations

import json

import pytest
import respx

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError, LeadpipeConflictError
from airflow_provider_leadpipe.operators.pixels import (
    LeadpipeCreatePixelOperator,
    LeadpipeUpdatePixelOperator,
)
from tests.unit.hooks.test_pixels import CONFLICT, PIXEL_ID, PIXELS_URL, created, listed


def test_create_returns_the_new_pixel_as_api_named_dict(leadpipe_conn):
    op = LeadpipeCreatePixelOperator(task_id="create", domain="acme.com", included_paths=["/shop"])
    with respx.mock() as mock:
        route = mock.post(PIXELS_URL).respond(201, json={"data": created()})
        value = op.execute({})
    assert value == created()
    assert json.loads(json.dumps(value)) == value
    assert json.loads(route.calls.last.request.content) == {"domain": "acme.com", "includedPaths": ["/shop"]}


def test_create_is_idempotent_by_default(leadpipe_conn):
    op = LeadpipeCreatePixelOperator(task_id="create", domain="acme.com")
    with respx.mock() as mock:
        mock.post(PIXELS_URL).respond(409, json=CONFLICT)
        mock.get(PIXELS_URL).respond(200, json={"data": [listed()]})
        assert op.execute({}) == listed()


def test_create_with_if_exists_error_fails_on_an_existing_pixel(leadpipe_conn):
    op = LeadpipeCreatePixelOperator(task_id="create", domain="acme.com", if_exists="error")
    with respx.mock() as mock:
        mock.post(PIXELS_URL).respond(409, json=CONFLICT)
        with pytest.raises(LeadpipeConflictError, match="already exists"):
            op.execute({})


def test_bad_if_exists_fails_when_the_dag_is_parsed():
    with pytest.raises(LeadpipeConfigError, match="if_exists must be one of error, return"):
        LeadpipeCreatePixelOperator(task_id="create", domain="acme.com", if_exists="skip")


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        ({"status": "paused"}, {"status": "paused"}),
        ({"status": "active"}, {"status": "active"}),
        ({"excluded_paths": ["/admin"]}, {"excludedPaths": ["/admin"]}),
        ({"included_paths": []}, {"includedPaths": None}),
    ],
)
def test_update_returns_the_pixel_and_sends_only_what_changes(leadpipe_conn, kwargs, body):
    op = LeadpipeUpdatePixelOperator(task_id="update", pixel_id=PIXEL_ID, **kwargs)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.patch(f"{PIXELS_URL}/{PIXEL_ID}").respond(200, json={"data": listed(status="paused")})
        assert op.execute({}) == listed(status="paused")
    assert json.loads(route.calls.last.request.content) == body


def test_update_with_nothing_to_change_fails_clearly(leadpipe_conn):
    # A literal fails when the DAG is parsed; a templated status that renders to "" at execute.
    with pytest.raises(LeadpipeConfigError, match="nothing to update"):
        LeadpipeUpdatePixelOperator(task_id="update", pixel_id=PIXEL_ID, status="")
    op = LeadpipeUpdatePixelOperator(task_id="update", pixel_id=PIXEL_ID, status="{{ params.status }}")
    op.status = ""  # as rendered
    with pytest.raises(LeadpipeConfigError, match="nothing to update"):
        op.execute({})


def test_template_fields():
    assert {"domain", "name", "included_paths", "excluded_paths"} <= set(
        LeadpipeCreatePixelOperator.template_fields
    )
    assert {"pixel_id", "status", "included_paths", "excluded_paths"} <= set(
        LeadpipeUpdatePixelOperator.template_fields
    )


@pytest.mark.parametrize(
    "rendered",
    [["/shop", "/blog"], "['/shop', '/blog']", '["/shop", "/blog"]', "/shop, /blog"],
    ids=["native-list", "list-as-text", "json", "comma-separated"],
)
def test_templated_path_lists_are_read_in_every_rendered_form(leadpipe_conn, rendered):
    op = LeadpipeCreatePixelOperator(task_id="create", domain="acme.com", included_paths="{{ params.paths }}")
    op.included_paths = rendered  # what rendering produces
    with respx.mock() as mock:
        route = mock.post(PIXELS_URL).respond(201, json={"data": created()})
        op.execute({})
    assert json.loads(route.calls.last.request.content)["includedPaths"] == ["/shop", "/blog"]


def test_a_rendered_path_list_that_is_no_list_fails_before_any_request(leadpipe_conn):
    op = LeadpipeUpdatePixelOperator(task_id="update", pixel_id=PIXEL_ID, excluded_paths="{{ params.paths }}")
    op.excluded_paths = "{'/shop': 1}"
    with respx.mock(assert_all_called=False) as mock:
        route = mock.patch(f"{PIXELS_URL}/{PIXEL_ID}").respond(200, json={"data": created()})
        with pytest.raises(LeadpipeConfigError, match="excluded_paths must be a list"):
            op.execute({})
    assert not route.called
