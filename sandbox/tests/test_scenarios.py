"""Organisation states: expired/inactive, credits (set, consume, reset, exhaust, recover), key setup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox, SandboxError

ClientFactory = Callable[..., httpx.Client]
AccountOf = Callable[[str], Any]
DATA_CALLS = [("GET", "/v1/data"), ("GET", "/v1/data/pixels"), ("POST", "/v1/data/pixels")]


@pytest.mark.parametrize(
    ("api_key", "status"), [("sk_test_expired", "expired"), ("sk_test_inactive", "inactive")]
)
def test_unusable_org_gets_200_account_and_403_elsewhere(
    client_for: ClientFactory, account_of: AccountOf, api_key: str, status: str
) -> None:
    assert account_of(api_key)["healthy"] is False
    client = client_for(api_key)
    for method, path in DATA_CALLS:
        response = client.request(method, path, json={"domain": "x.example"} if method == "POST" else None)
        assert response.status_code == 403
        assert response.json() == {"error": {"code": "HTTP_ERROR", "message": f"Organization is {status}"}}


def test_expiring_and_reviving_an_org(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.set_organization(status="expired")
    assert client.get("/v1/data").status_code == 403
    assert client.get("/v1/data/account").json()["data"]["organization"]["status"] == "expired"
    leadpipe_sandbox.set_organization(status="active", name="Renewed Inc")
    assert client.get("/v1/data").status_code == 200
    assert client.get("/v1/data/account").json()["data"]["organization"] == {
        "name": "Renewed Inc",
        "status": "active",
    }


def test_set_consume_and_reset_credits(leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf) -> None:
    leadpipe_sandbox.set_credits(used=100, limit=200, resets_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert account_of("sk_test_sandbox")["credits"] == {
        "used": 100,
        "limit": 200,
        "remaining": 100,
        "percentUsed": 50.0,
        "resetsAt": "2030-01-01T00:00:00.000Z",
    }
    leadpipe_sandbox.consume_credits(99)
    credits = account_of("sk_test_sandbox")["credits"]
    assert (credits["used"], credits["remaining"], credits["percentUsed"]) == (199, 1, 99.5)
    leadpipe_sandbox.consume_credits(5)
    data = account_of("sk_test_sandbox")
    assert (data["healthy"], data["credits"]["remaining"]) == (False, 0)
    leadpipe_sandbox.reset_credits()
    data = account_of("sk_test_sandbox")
    assert (data["healthy"], data["credits"]["used"], data["credits"]["remaining"]) == (True, 0, 200)


def test_unlimited_switch(leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf) -> None:
    leadpipe_sandbox.set_credits(limit=None, resets_at=None)
    credits = account_of("sk_test_sandbox")["credits"]
    assert (credits["limit"], credits["remaining"], credits["percentUsed"]) == (None, None, None)
    with pytest.raises(SandboxError, match="unlimited"):
        leadpipe_sandbox.exhaust_credits()


def test_builtin_recovering_key_recovers_after_three_account_calls(account_of: AccountOf) -> None:
    seen = [account_of("sk_test_recovering") for _ in range(5)]
    assert [d["healthy"] for d in seen] == [False, False, False, True, True]
    assert [d["credits"]["remaining"] for d in seen] == [0, 0, 0, 500, 500]


def test_exhaust_and_recover_after_n_account_calls(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, account_of: AccountOf
) -> None:
    leadpipe_sandbox.exhaust_credits(recover_after_account_calls=2)
    client.get("/v1/data")  # other endpoints do not count
    client.get("/v1/data/pixels")
    assert [account_of("sk_test_sandbox")["healthy"] for _ in range(3)] == [False, False, True]


def test_exhaust_and_recover_at_a_time_ahead(
    leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf
) -> None:
    # No race with the wall clock: an hour ahead, every answer is before the recovery whatever the
    # machine's speed (the next test takes a time already past: the next answer is after it).
    ahead = datetime.now(timezone.utc) + timedelta(hours=1)
    leadpipe_sandbox.exhaust_credits(recover_at=ahead)
    before = account_of("sk_test_sandbox")
    assert before["healthy"] is False
    assert before["credits"]["resetsAt"] == ahead.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert account_of("sk_test_sandbox")["healthy"] is False


def test_exhaust_and_recover_at_a_time_past(leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf) -> None:
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    leadpipe_sandbox.exhaust_credits(recover_at=past)
    after = account_of("sk_test_sandbox")
    assert (after["healthy"], after["credits"]["used"]) == (True, 0)
    # The next cycle starts: resetsAt moves on by 30 days.
    next_reset = datetime.fromisoformat(after["credits"]["resetsAt"].replace("Z", "+00:00"))
    assert abs(next_reset - (past + timedelta(days=30))) < timedelta(milliseconds=2)


def test_exhaust_and_recover_in_seconds(leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf) -> None:
    # The recovery time is the server's clock plus the seconds given.
    sent = datetime.now(timezone.utc)
    state = leadpipe_sandbox.exhaust_credits(recover_in_seconds=3600)
    answered = datetime.now(timezone.utc)
    at = datetime.fromisoformat(state["config"]["recovery"]["at"].replace("Z", "+00:00"))
    margin = timedelta(milliseconds=1)  # the sandbox writes milliseconds
    assert sent + timedelta(hours=1) - margin <= at <= answered + timedelta(hours=1) + margin
    assert account_of("sk_test_sandbox")["healthy"] is False
    # Zero seconds: the recovery is due at once (no sleeping on the wall clock).
    leadpipe_sandbox.exhaust_credits(recover_in_seconds=0)
    assert account_of("sk_test_sandbox")["healthy"] is True


def test_a_new_recovery_replaces_the_old_one_whole(
    leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf
) -> None:
    leadpipe_sandbox.exhaust_credits(recover_after_account_calls=2)
    leadpipe_sandbox.reset_credits()
    state = leadpipe_sandbox.exhaust_credits(recover_in_seconds=3600)  # was a 400 (two modes merged)
    recovery = state["config"]["recovery"]
    assert recovery["at"] is not None and recovery["afterAccountCalls"] is None, recovery
    state = leadpipe_sandbox.exhaust_credits(recover_after_account_calls=1)
    assert (
        state["config"]["recovery"]["afterAccountCalls"] == 1
        and state["config"]["recovery"].get("at") is None
    )
    assert [account_of("sk_test_sandbox")["healthy"] for _ in range(2)] == [False, True]


def test_intent_block_set_and_cleared(leadpipe_sandbox: LeadpipeSandbox, account_of: AccountOf) -> None:
    leadpipe_sandbox.set_intent({"audienceSlots": 3, "audienceSlotsUsed": 1, "status": "active"})
    assert account_of("sk_test_sandbox")["intent"] == {
        "audienceSlots": 3,
        "audienceSlotsUsed": 1,
        "audienceSlotsAvailable": 2,
        "status": "active",
    }
    leadpipe_sandbox.set_intent(None)
    assert account_of("sk_test_sandbox")["intent"] is None


def test_configured_key_starts_from_a_scenario(
    leadpipe_sandbox: LeadpipeSandbox, client_for: ClientFactory
) -> None:
    state = leadpipe_sandbox.configure_key(
        "sk_test_mine", {"organization": {"name": "Mine"}}, scenario="active"
    )
    assert state["account"]["organization"] == {"name": "Mine", "status": "active"}
    assert state["account"]["pixels"]["total"] == 2  # inherited from the active scenario
    assert client_for("sk_test_mine").get("/v1/data/pixels").status_code == 200


def test_revoking_and_deleting_a_key(leadpipe_sandbox: LeadpipeSandbox, client_for: ClientFactory) -> None:
    leadpipe_sandbox.configure_key("sk_test_temp")
    leadpipe_sandbox.update_key({"revoked": True}, api_key="sk_test_temp")
    assert client_for("sk_test_temp").get("/v1/data/account").status_code == 403
    leadpipe_sandbox.delete_key("sk_test_temp")
    assert client_for("sk_test_temp").get("/v1/data/account").status_code == 401


def test_key_names_with_odd_characters(leadpipe_sandbox: LeadpipeSandbox, client_for: ClientFactory) -> None:
    odd = "sk_test_a/b c?d"
    leadpipe_sandbox.configure_key(odd, {"organization": {"name": "Odd"}})
    assert leadpipe_sandbox.key_state(odd)["apiKey"] == odd
    assert client_for(odd).get("/v1/data/account").json()["data"]["organization"]["name"] == "Odd"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"credits": {"used": -1}}, "credits.used"),
        ({"organisation": {}}, "organisation"),  # typo: unknown fields are refused
        ({"recovery": {"afterAccountCalls": 1, "inSeconds": 2}}, "exactly one"),
        ({"faultRate": {"rate": 2}}, "faultRate.rate"),
    ],
)
def test_invalid_configuration_is_refused(
    leadpipe_sandbox: LeadpipeSandbox, config: dict, fragment: str
) -> None:
    with pytest.raises(SandboxError, match="400") as error:
        leadpipe_sandbox.update_key(config)
    assert fragment in str(error.value)


def test_unknown_scenario_and_key_are_refused(leadpipe_sandbox: LeadpipeSandbox) -> None:
    with pytest.raises(SandboxError, match="Unknown scenario 'gold'"):
        leadpipe_sandbox.configure_key("sk_test_x", scenario="gold")
    with pytest.raises(SandboxError, match="404"):
        leadpipe_sandbox.key_state("sk_test_never_made")
