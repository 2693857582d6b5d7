"""The hook's visitor and pixel calls over real HTTP against the sandbox: filters, empty results,
409 both ways, and validation that refuses before anything is sent."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeNotFoundError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from tests.integration.dag_runs import api_records

pytestmark = pytest.mark.integration


@pytest.fixture
def hook(leadpipe_sandbox):
    with LeadpipeHook() as hook:  # leadpipe_default -> the sandbox (env var set by the fixture)
        yield hook


@pytest.mark.parametrize(
    "filters",
    [{}, {"timeframe": "7d"}, {"domain": "shop.acme.io"}, {"timeframe": "30d", "domain": "docs.acme.io"}],
    ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "no filter",
)
def test_filters_return_exactly_what_the_api_serves(leadpipe_sandbox, hook, filters):
    expected = api_records(leadpipe_sandbox, **filters)
    assert expected
    assert list(hook.iter_visitors(**filters)) == expected
    if "domain" in filters:
        assert {r["visit"]["domain"] for r in expected} == {filters["domain"]}


def test_email_filter_returns_one_persons_journey(leadpipe_sandbox, hook):
    email = api_records(leadpipe_sandbox, timeframe="7d")[0]["email"]
    journey = list(hook.iter_visitors(email=email))
    assert journey == api_records(leadpipe_sandbox, email=email)
    assert len(journey) >= 1 and {r["email"] for r in journey} == {email}


def test_async_pages_agree_with_sync(leadpipe_sandbox, hook):
    async def collect():
        return [r async for r in hook.aiter_visitors(timeframe="14d")]

    assert asyncio.run(collect()) == list(hook.iter_visitors(timeframe="14d"))


def test_an_account_without_visitors_yields_nothing(leadpipe_sandbox, monkeypatch):
    monkeypatch.setenv(*leadpipe_sandbox.connection_env("leadpipe_empty", api_key="sk_test_empty").popitem())
    with LeadpipeHook(leadpipe_conn_id="leadpipe_empty") as hook:
        assert list(hook.iter_visitors()) == []
    assert leadpipe_sandbox.request_count("/v1/data", api_key="sk_test_empty") == 1


def test_create_pixel_409_both_ways(leadpipe_sandbox, hook):
    first = hook.create_pixel("acme.io", "Acme")
    assert first.domain == "acme.io"
    with pytest.raises(LeadpipeConflictError, match="already exists"):
        hook.create_pixel("ACME.io", if_exists="error")
    again = hook.create_pixel("acme.io", if_exists="return")
    assert again.id == first.id
    assert [p.id for p in hook.list_pixels()] == [first.id]
    assert leadpipe_sandbox.request_count("/v1/data/pixels", method="POST", status=409) == 2


def test_update_pixel_pauses_and_switches_filters(leadpipe_sandbox, hook):
    pixel = hook.create_pixel("acme.io", excluded_paths=["/admin"])
    paused = hook.update_pixel(pixel.id, status="paused")
    assert paused.status == "paused"
    switched = hook.update_pixel(pixel.id, included_paths=["/shop"], excluded_paths=[])
    listed = {p.id: p for p in hook.list_pixels()}[pixel.id].to_dict()
    assert switched.to_dict()["includedPaths"] == listed["includedPaths"] == ["/shop"]
    assert not listed["excludedPaths"]
    with pytest.raises(LeadpipeNotFoundError):
        hook.update_pixel("00000000-0000-0000-0000-000000000000", status="active")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: list(h.iter_visitors(timeframe="1y")), "timeframe"),
        (lambda h: h.create_pixel("acme.io", included_paths=["/a"], excluded_paths=["/b"]), "exclusive"),
        (lambda h: h.create_pixel("acme.io", included_paths=["shop"]), "/"),
        (lambda h: h.create_pixel("acme.io", included_paths=[f"/p{i}" for i in range(51)]), "50"),
        (lambda h: h.update_pixel("some-id", status="deleted"), "status"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(leadpipe_sandbox, hook, call, message):
    with pytest.raises(LeadpipeConfigError, match=message):
        call(hook)
    assert leadpipe_sandbox.request_count() == 0


def test_expired_organization_gets_403_on_data_endpoints(leadpipe_sandbox, monkeypatch):
    monkeypatch.setenv(
        *leadpipe_sandbox.connection_env("leadpipe_expired", api_key="sk_test_expired").popitem()
    )
    with LeadpipeHook(leadpipe_conn_id="leadpipe_expired") as hook:
        assert hook.get_account_status().healthy is False  # the account endpoint still answers
        with pytest.raises(LeadpipeAuthError, match="expired"):
            list(hook.iter_visitors())
    assert leadpipe_sandbox.request_count("/v1/data", api_key="sk_test_expired") == 1  # never retried
