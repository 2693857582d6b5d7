"""Injected faults: scripted sequences, path restriction, and the seeded random rate."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx
import pytest

from leadpipe_sandbox import Fault, LeadpipeSandbox, SandboxError

ClientFactory = Callable[..., httpx.Client]
ACCOUNT = "/v1/data/account"


def test_rate_limit_with_delta_seconds_then_normal(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    leadpipe_sandbox.queue_faults(Fault.rate_limit(count=3, retry_after=7))
    answers = [client.get(ACCOUNT) for _ in range(4)]
    assert [r.status_code for r in answers] == [429, 429, 429, 200]
    assert [r.headers.get("retry-after") for r in answers[:3]] == ["7", "7", "7"]
    assert answers[0].json() == {"error": {"code": "HTTP_ERROR", "message": "Too Many Requests"}}


def test_rate_limit_with_http_date(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.rate_limit(retry_after=120, retry_after_format="http-date"))
    response = client.get(ACCOUNT)
    assert response.status_code == 429
    header = response.headers["retry-after"]
    assert header.endswith(" GMT")
    wait = (parsedate_to_datetime(header) - datetime.now(timezone.utc)).total_seconds()
    assert 115 <= wait <= 121


def test_rate_limit_without_retry_after(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.rate_limit(retry_after=None))
    response = client.get(ACCOUNT)
    assert response.status_code == 429
    assert "retry-after" not in response.headers


def test_burst_of_503s(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.unavailable(5, retry_after=1))
    statuses = [client.get(ACCOUNT).status_code for _ in range(6)]
    assert statuses == [503] * 5 + [200]
    assert leadpipe_sandbox.request_count(ACCOUNT, status=503) == 5


def test_any_status_with_the_error_envelope(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.error(502, message="upstream died"))
    response = client.get(ACCOUNT)
    assert (response.status_code, response.json()["error"]["message"]) == (502, "upstream died")


def test_slow_response_arrives_late_but_intact(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    leadpipe_sandbox.queue_faults(Fault.slow(0.5))
    started = time.perf_counter()
    response = client.get(ACCOUNT)
    assert time.perf_counter() - started >= 0.5
    assert response.json()["data"]["healthy"] is True


def test_slow_response_trips_a_client_timeout(
    leadpipe_sandbox: LeadpipeSandbox, client_for: ClientFactory
) -> None:
    leadpipe_sandbox.queue_faults(Fault.slow(1.0))
    with pytest.raises(httpx.ReadTimeout):
        client_for(timeout=0.2).get(ACCOUNT)


def test_malformed_json(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.malformed_json())
    response = client.get(ACCOUNT)
    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_html_error_page(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.html(), Fault.html(status=200))
    first, second = client.get(ACCOUNT), client.get(ACCOUNT)
    assert first.status_code == 502
    assert first.headers["content-type"].startswith("text/html")
    assert first.text.lstrip().startswith("<!DOCTYPE html>")
    assert second.status_code == 200 and second.headers["content-type"].startswith("text/html")


def test_truncated_body_drops_the_connection(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.truncated())
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|complete message body"):
        client.get(ACCOUNT)
    assert client.get(ACCOUNT).status_code == 200  # the next request is fine again
    assert "Traceback" not in leadpipe_sandbox.server_output()


def test_wrong_shape(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.wrong_shape(), Fault.wrong_shape({"data": [1, 2, 3]}))
    assert client.get(ACCOUNT).json() == {"data": {"status": "ok"}}
    assert client.get(ACCOUNT).json() == {"data": [1, 2, 3]}


def test_faults_fire_in_order(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    pending = leadpipe_sandbox.queue_faults(
        Fault.unavailable(2), Fault.rate_limit(retry_after=0), Fault.html()
    )
    assert [(f["kind"], f.get("count", 1)) for f in pending] == [
        ("unavailable", 2),
        ("rate_limit", 1),
        ("html", 1),
    ]
    assert [client.get(ACCOUNT).status_code for _ in range(5)] == [503, 503, 429, 502, 200]


def test_fault_restricted_to_a_path_and_method(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    leadpipe_sandbox.queue_faults(
        Fault.unavailable(path="/v1/data/pixels*", method="POST"), Fault.rate_limit(path="/v1/data")
    )
    assert client.get(ACCOUNT).status_code == 200
    assert client.get("/v1/data/pixels").status_code == 200
    assert client.post("/v1/data/pixels", json={"domain": "a.example"}).status_code == 503
    assert client.post("/v1/data/pixels", json={"domain": "a.example"}).status_code == 201
    assert client.get("/v1/data").status_code == 429
    assert client.get("/v1/data").status_code == 200


def test_faults_belong_to_one_key(leadpipe_sandbox: LeadpipeSandbox, client_for: ClientFactory) -> None:
    leadpipe_sandbox.queue_faults(Fault.unavailable(), api_key="sk_test_active")
    assert client_for().get(ACCOUNT).status_code == 200
    assert client_for("sk_test_active").get(ACCOUNT).status_code == 503


def test_faults_come_before_the_organisation_checks(
    leadpipe_sandbox: LeadpipeSandbox, client_for: ClientFactory
) -> None:
    leadpipe_sandbox.queue_faults(Fault.rate_limit(), api_key="sk_test_expired")
    assert client_for("sk_test_expired").get("/v1/data").status_code == 429
    assert client_for("sk_test_expired").get("/v1/data").status_code == 403


def test_clear_faults(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(Fault.unavailable(10))
    assert client.get(ACCOUNT).status_code == 503
    assert leadpipe_sandbox.key_state()["pendingFaults"] == [{"kind": "unavailable", "count": 9}]
    leadpipe_sandbox.clear_faults()
    assert client.get(ACCOUNT).status_code == 200


def test_invalid_faults_are_refused(leadpipe_sandbox: LeadpipeSandbox) -> None:
    with pytest.raises(SandboxError, match="400"):
        leadpipe_sandbox._control("POST", "keys/sk_test_sandbox/faults", {"faults": [{"kind": "meteor"}]})
    with pytest.raises(ValueError, match="seconds"):
        Fault(kind="slow")


def _statuses(client: httpx.Client, n: int) -> list[int]:
    return [client.get(ACCOUNT).status_code for _ in range(n)]


def test_random_fault_rate_is_seeded_and_near_the_rate(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    leadpipe_sandbox.set_fault_rate(0.25, seed=3)
    first = _statuses(client, 200)
    leadpipe_sandbox.set_fault_rate(0.25, seed=3)
    assert _statuses(client, 200) == first  # same seed, same sequence
    failures = [s for s in first if s != 200]
    assert set(failures) == {429, 503}
    assert 25 <= len(failures) <= 75
    leadpipe_sandbox.set_fault_rate(0)
    assert set(_statuses(client, 50)) == {200}


def test_random_faults_of_chosen_kinds_on_one_path(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    leadpipe_sandbox.set_fault_rate(1.0, faults=[Fault.error(500)], path="/v1/data")
    assert client.get(ACCOUNT).status_code == 200
    assert client.get("/v1/data").status_code == 500


def test_builtin_flaky_key(client_for: ClientFactory) -> None:
    statuses = _statuses(client_for("sk_test_flaky"), 200)
    assert 5 <= sum(s != 200 for s in statuses) <= 40
    assert set(statuses) <= {200, 429, 503}


async def test_server_wide_fault_rate_applies_to_every_key_without_its_own() -> None:
    """``--fault-rate`` / ``LeadpipeSandbox(fault_rate=...)``, checked in-process through ASGI."""
    from leadpipe_sandbox.server import create_app
    from leadpipe_sandbox.state import SandboxOptions

    app = create_app(SandboxOptions(fault_rate=1.0, fault_seed=5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as client:
        for key in ("sk_test_sandbox", "sk_test_active"):
            response = await client.get(ACCOUNT, headers={"X-API-Key": key})
            assert response.status_code in (429, 503)
        await client.patch("/_sandbox/keys/sk_test_active", json={"faultRate": {"rate": 0}})
        assert (await client.get(ACCOUNT, headers={"X-API-Key": "sk_test_active"})).status_code == 200
