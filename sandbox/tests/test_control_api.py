"""The control API over plain HTTP: statistics, reset, key listing, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from leadpipe_sandbox import Fault, LeadpipeSandbox

ClientFactory = Callable[..., httpx.Client]


@pytest.fixture
def control(leadpipe_sandbox: LeadpipeSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{leadpipe_sandbox.url}/_sandbox", trust_env=False) as client:
        yield client


def test_stats_count_requests_per_key_route_and_status(
    leadpipe_sandbox: LeadpipeSandbox, client_for: ClientFactory
) -> None:
    leadpipe_sandbox.queue_faults(Fault.rate_limit(count=2))
    for _ in range(3):
        client_for().get("/v1/data/account")
    client_for().get("/v1/data")
    pixel = client_for().post("/v1/data/pixels", json={"domain": "s.example"}).json()["data"]
    client_for().patch(f"/v1/data/pixels/{pixel['id']}", json={"status": "paused"})
    client_for(None).get("/v1/data/account")
    client_for("sk_live_secret_looking_key").get("/v1/data/account")

    stats = leadpipe_sandbox.stats()
    assert stats["total"] == 8
    assert stats["byStatus"] == {"200": 3, "201": 1, "401": 2, "429": 2}
    ours = stats["keys"]["sk_test_sandbox"]
    assert ours["routes"]["GET /v1/data/account"] == {"total": 3, "byStatus": {"200": 1, "429": 2}}
    assert ours["routes"]["PATCH /v1/data/pixels/{id}"] == {"total": 1, "byStatus": {"200": 1}}
    assert stats["keys"]["<missing>"]["total"] == 1
    assert stats["keys"]["<invalid>"]["total"] == 1
    assert "sk_live_secret_looking_key" not in str(stats)  # unknown keys are never echoed

    assert leadpipe_sandbox.request_count("/v1/data/account") == 5
    assert leadpipe_sandbox.request_count("/v1/data/account", status=429) == 2
    assert leadpipe_sandbox.request_count(api_key="sk_test_sandbox", method="post") == 1
    assert leadpipe_sandbox.request_count(status=401) == 2


def test_control_calls_are_not_counted(leadpipe_sandbox: LeadpipeSandbox, control: httpx.Client) -> None:
    control.get("/health")
    control.get("/keys")
    assert leadpipe_sandbox.stats() == {"total": 0, "byStatus": {}, "keys": {}}


def test_reset_restores_everything(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, control: httpx.Client
) -> None:
    leadpipe_sandbox.configure_key("sk_test_extra")
    leadpipe_sandbox.set_credits(used=499)
    leadpipe_sandbox.queue_faults(Fault.unavailable(3))
    client.get("/v1/data/account")
    response = control.post("/reset")
    assert response.status_code == 200
    assert "sk_test_extra" not in response.json()["data"]["keys"]
    assert client.get("/v1/data/account").json()["data"]["credits"]["used"] == 0
    assert leadpipe_sandbox.request_count() == 1


def test_keys_listing_and_health(control: httpx.Client) -> None:
    keys = {row["apiKey"]: row for row in control.get("/keys").json()["data"]}
    assert keys["sk_test_active"]["config"]["organization"]["name"] == "Acme Analytics"
    assert control.get("/health").json() == {"data": {"ok": True, "keys": len(keys)}}


def test_control_errors_use_the_error_envelope(control: httpx.Client) -> None:
    assert control.get("/nope").status_code == 404
    assert control.delete("/stats").status_code == 405
    bad = control.put("/keys/sk_test_x", content=b"{", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.json() == {"error": {"code": "HTTP_ERROR", "message": "Request body must be JSON"}}
    assert control.post("/keys/sk_test_x/credits/consume", json={"amount": 1}).status_code == 404


def test_put_key_over_http(control: httpx.Client, client_for: ClientFactory) -> None:
    response = control.put(
        "/keys/sk_test_http", json={"scenario": "unlimited", "organization": {"name": "HTTP"}}
    )
    assert response.status_code == 200
    data = client_for("sk_test_http").get("/v1/data/account").json()["data"]
    assert (data["organization"]["name"], data["credits"]["limit"]) == ("HTTP", None)
