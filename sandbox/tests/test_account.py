"""GET /v1/data/account: the contract for every built-in key, derived fields, and authentication."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox

AccountOf = Callable[[str], Any]
ClientFactory = Callable[..., httpx.Client]
BUILTIN_KEYS = [
    "sk_test_sandbox",
    "sk_test_active",
    "sk_test_unlimited",
    "sk_test_low_credits",
    "sk_test_exhausted",
    "sk_test_recovering",
    "sk_test_expired",
    "sk_test_inactive",
    "sk_test_empty",
    "sk_test_flaky",
]


def test_scenarios_lists_every_builtin_key(leadpipe_sandbox: LeadpipeSandbox) -> None:
    listed = {row["apiKey"] for row in leadpipe_sandbox.scenarios()}
    assert listed == {*BUILTIN_KEYS, "sk_test_revoked"}


@pytest.mark.parametrize("api_key", [k for k in BUILTIN_KEYS if k != "sk_test_flaky"])
def test_every_builtin_account_matches_the_openapi_contract(account_of: AccountOf, api_key: str) -> None:
    account_of(api_key)  # status 200 and schema validation happen inside


def test_flaky_key_account_matches_the_contract_when_it_answers(
    leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf
) -> None:
    leadpipe_sandbox.set_fault_rate(0, api_key="sk_test_flaky")
    assert account_of("sk_test_flaky")["healthy"] is True


def test_default_key_is_a_healthy_trial_with_500_credits(account_of: AccountOf) -> None:
    assert account_of("sk_test_sandbox") == {
        "healthy": True,
        "organization": {"name": "Sandbox Trial Org", "status": "trial"},
        "credits": {"used": 0, "limit": 500, "remaining": 500, "percentUsed": 0.0, "resetsAt": None},
        "pixels": {"total": 0, "active": 0, "paused": 0},
        "intent": {
            "audienceSlots": 3,
            "audienceSlotsUsed": 0,
            "audienceSlotsAvailable": 3,
            "status": "active",
        },
    }


def test_active_key_has_intent_slots_pixels_and_a_reset_date(account_of: AccountOf) -> None:
    data = account_of("sk_test_active")
    assert data["healthy"] is True
    assert data["credits"] == {
        "used": 1250,
        "limit": 10000,
        "remaining": 8750,
        "percentUsed": 12.5,
        "resetsAt": data["credits"]["resetsAt"],
    }
    assert data["credits"]["resetsAt"].endswith("-01T00:00:00.000Z")
    assert data["intent"] == {
        "audienceSlots": 5,
        "audienceSlotsUsed": 2,
        "audienceSlotsAvailable": 3,
        "status": "active",
    }
    assert data["pixels"] == {"total": 2, "active": 1, "paused": 1}


def test_unlimited_plan_has_null_limit_remaining_percent_and_reset(account_of: AccountOf) -> None:
    data = account_of("sk_test_unlimited")
    assert data["healthy"] is True
    assert data["credits"] == {
        "used": 4200,
        "limit": None,
        "remaining": None,
        "percentUsed": None,
        "resetsAt": None,
    }


@pytest.mark.parametrize(
    ("api_key", "healthy", "remaining", "status"),
    [
        ("sk_test_low_credits", True, 5, "trial"),
        ("sk_test_exhausted", False, 0, "trial"),
        ("sk_test_expired", False, 500, "expired"),  # as observed live: 500 credits left, still unhealthy
        ("sk_test_inactive", False, 380, "inactive"),
    ],
)
def test_healthy_needs_a_usable_organisation_and_credits_left(
    account_of: AccountOf, api_key: str, healthy: bool, remaining: int, status: str
) -> None:
    data = account_of(api_key)
    assert (data["healthy"], data["credits"]["remaining"], data["organization"]["status"]) == (
        healthy,
        remaining,
        status,
    )


def test_configured_keys_match_the_contract(leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf) -> None:
    leadpipe_sandbox.configure_key(
        "sk_test_custom",
        {
            "organization": {"name": "Custom Co", "status": "active"},
            "credits": {"used": 30, "limit": 40, "resetsAt": "2031-01-01T00:00:00Z"},
            "intent": {"audienceSlots": 2, "audienceSlotsUsed": 2, "status": "full"},
        },
    )
    leadpipe_sandbox.configure_key("sk_test_expired_copy", scenario="expired")
    leadpipe_sandbox.configure_key("sk_test_free", {"credits": {"limit": 0}})
    custom = account_of("sk_test_custom")
    assert custom["organization"] == {"name": "Custom Co", "status": "active"}
    assert custom["credits"] == {
        "used": 30,
        "limit": 40,
        "remaining": 10,
        "percentUsed": 75.0,
        "resetsAt": "2031-01-01T00:00:00.000Z",
    }
    assert custom["intent"]["audienceSlotsAvailable"] == 0
    assert account_of("sk_test_expired_copy")["organization"]["status"] == "expired"
    free = account_of("sk_test_free")
    assert (free["healthy"], free["credits"]["remaining"], free["credits"]["percentUsed"]) == (False, 0, 0.0)


def test_pixel_counts_follow_the_pixels_that_exist(client: httpx.Client, account_of: AccountOf) -> None:
    first = client.post("/v1/data/pixels", json={"domain": "one.example"}).json()["data"]
    client.post("/v1/data/pixels", json={"domain": "two.example"})
    client.patch(f"/v1/data/pixels/{first['id']}", json={"status": "paused"})
    assert account_of("sk_test_sandbox")["pixels"] == {"total": 2, "active": 1, "paused": 1}


# -- authentication ------------------------------------------------------------------------------

INVALID = {"error": {"code": "HTTP_ERROR", "message": "Invalid API key"}}


@pytest.mark.parametrize("path", ["/v1/data/account", "/v1/data", "/v1/data/pixels"])
def test_missing_or_unknown_key_is_401(client_for: ClientFactory, path: str) -> None:
    for response in (client_for(None).get(path), client_for("sk_live_not_a_sandbox_key").get(path)):
        assert response.status_code == 401
        assert response.json() == INVALID


def test_bearer_authorization_is_not_accepted(client_for: ClientFactory) -> None:
    response = client_for(None).get("/v1/data/account", headers={"Authorization": "Bearer sk_test_sandbox"})
    assert (response.status_code, response.json()) == (401, INVALID)


@pytest.mark.parametrize("header", ["x-api-key", "X-API-KEY", "X-Api-Key"])
def test_api_key_header_name_is_case_insensitive(client_for: ClientFactory, header: str) -> None:
    response = client_for(None).get("/v1/data/account", headers={header: "sk_test_sandbox"})
    assert response.status_code == 200


def test_revoked_key_is_403_everywhere(client_for: ClientFactory) -> None:
    client = client_for("sk_test_revoked")
    for method, path in [
        ("GET", "/v1/data/account"),
        ("GET", "/v1/data"),
        ("GET", "/v1/data/pixels"),
        ("POST", "/v1/data/pixels"),
    ]:
        response = client.request(method, path, json={"domain": "x.example"} if method == "POST" else None)
        assert response.status_code == 403
        assert response.json() == {"error": {"code": "HTTP_ERROR", "message": "API key has been revoked"}}


def test_unknown_route_and_wrong_method_use_the_error_envelope(client: httpx.Client) -> None:
    missing = client.get("/v1/data/nothing")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "HTTP_ERROR")
    wrong = client.delete("/v1/data/account")
    assert (wrong.status_code, wrong.json()["error"]["message"]) == (405, "Method not allowed")
