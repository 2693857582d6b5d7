"""Orbit audiences in the sandbox: CRUD over HTTP, validation, and slots that agree with the account."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox, SandboxError
from orbit_helpers import AUDIENCES, CONFIG, data, error

ClientFactory = Callable[..., httpx.Client]
AUDIENCE_FIELDS = {
    "id", "organizationId", "name", "status", "accessType", "dailyRefreshEnabled", "audienceSize",
    "config", "lastRefreshedAt", "createdAt", "updatedAt",
}  # fmt: skip


def _intent(client: httpx.Client) -> dict[str, int | str]:
    response = client.get("/v1/data/account")
    assert response.status_code == 200
    return response.json()["data"]["intent"]


def test_create_get_list_update_delete(client: httpx.Client) -> None:
    created = data(client.post(AUDIENCES, json={"name": "CDP buyers", "config": CONFIG}), 201)
    assert set(created) == AUDIENCE_FIELDS
    assert uuid.UUID(created["id"])
    assert (created["name"], created["status"], created["config"]) == ("CDP buyers", "draft", CONFIG)
    assert created["dailyRefreshEnabled"] is False
    audience_path = f"{AUDIENCES}/{created['id']}"
    assert data(client.get(audience_path)) == created
    assert [a["id"] for a in data(client.get(AUDIENCES))] == [created["id"]]

    changed = data(client.patch(audience_path, json={"name": "Renamed", "config": {"topicIds": [104]}}))
    assert (changed["name"], changed["config"], changed["status"]) == (
        "Renamed",
        {"topicIds": [104]},
        "draft",
    )
    active = data(client.patch(audience_path, json={"status": "active"}))
    assert (active["status"], active["dailyRefreshEnabled"]) == ("active", True)

    assert data(client.delete(audience_path)) == {"id": created["id"], "deleted": True}
    error(client.get(audience_path), 404, "NOT_FOUND")
    assert data(client.get(AUDIENCES)) == []


def test_list_filters_by_status_and_limits(client: httpx.Client) -> None:
    for n, status in enumerate(["draft", "active", "paused", "draft"]):
        data(client.post(AUDIENCES, json={"name": f"a{n}", "status": status, "config": CONFIG}), 201)
    assert [a["name"] for a in data(client.get(AUDIENCES, params={"status": "draft"}))] == ["a0", "a3"]
    assert [a["name"] for a in data(client.get(AUDIENCES, params={"status": "active"}))] == ["a1"]
    assert len(data(client.get(AUDIENCES, params={"limit": 2}))) == 2
    error(client.get(AUDIENCES, params={"status": "archived"}), 400, "VALIDATION_ERROR")
    error(client.get(AUDIENCES, params={"limit": 0}), 400, "VALIDATION_ERROR")


def test_list_pages_by_limit_and_offset_with_a_small_default_page(client: httpx.Client) -> None:
    for n in range(23):
        data(client.post(AUDIENCES, json={"name": f"a{n}", "config": CONFIG}), 201)
    assert [a["name"] for a in data(client.get(AUDIENCES))] == [f"a{n}" for n in range(10)]
    page = data(client.get(AUDIENCES, params={"limit": 5, "offset": 20}))
    assert [a["name"] for a in page] == ["a20", "a21", "a22"]
    assert data(client.get(AUDIENCES, params={"offset": 23})) == []
    assert len(data(client.get(AUDIENCES, params={"limit": 100}))) == 23
    error(client.get(AUDIENCES, params={"limit": 101}), 400, "VALIDATION_ERROR")
    error(client.get(AUDIENCES, params={"offset": -1}), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"config": CONFIG}, "name"),
        ({"name": "  ", "config": CONFIG}, "name"),
        ({"name": "x"}, "config"),
        ({"name": "x", "config": {"minScore": 70}}, "topicIds"),
        ({"name": "x", "config": {"topicIds": ["101"]}}, "topicIds"),
        ({"name": "x", "config": {"topicIds": [1], "maxScore": 20}}, "maxScore"),
        ({"name": "x", "status": "archived", "config": CONFIG}, "status"),
    ],
)
def test_bad_audience_bodies_are_400s_naming_the_field(client: httpx.Client, body: dict, named: str) -> None:
    body_json = error(client.post(AUDIENCES, json=body), 400, "VALIDATION_ERROR")
    assert named in body_json["error"]["message"]
    assert data(client.get(AUDIENCES)) == []


def test_unknown_and_malformed_ids(client: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    assert missing in error(client.get(f"{AUDIENCES}/{missing}"), 404, "NOT_FOUND")["error"]["message"]
    error(client.patch(f"{AUDIENCES}/{missing}", json={"name": "x"}), 404, "NOT_FOUND")
    error(client.get(f"{AUDIENCES}/not-a-uuid"), 400, "VALIDATION_ERROR")
    audience = data(client.post(AUDIENCES, json={"name": "x", "config": CONFIG}), 201)
    error(client.patch(f"{AUDIENCES}/{audience['id']}", json={}), 400, "VALIDATION_ERROR")


def test_active_audiences_use_slots_and_the_account_agrees(client: httpx.Client) -> None:
    assert _intent(client) == {
        "audienceSlots": 3,
        "audienceSlotsUsed": 0,
        "audienceSlotsAvailable": 3,
        "status": "active",
    }
    ids = [
        data(client.post(AUDIENCES, json={"name": f"a{n}", "status": "active", "config": CONFIG}), 201)["id"]
        for n in range(3)
    ]
    assert (_intent(client)["audienceSlotsUsed"], _intent(client)["audienceSlotsAvailable"]) == (3, 0)

    full = error(
        client.post(AUDIENCES, json={"name": "one too many", "status": "active", "config": CONFIG}),
        403,
        "SLOTS_FULL",
    )
    assert "pause another audience" in full["error"]["message"]
    draft = data(client.post(AUDIENCES, json={"name": "waiting", "config": CONFIG}), 201)
    error(client.patch(f"{AUDIENCES}/{draft['id']}", json={"status": "active"}), 403, "SLOTS_FULL")
    assert data(client.get(f"{AUDIENCES}/{draft['id']}"))["status"] == "draft"

    data(client.patch(f"{AUDIENCES}/{ids[0]}", json={"status": "paused"}))
    assert _intent(client)["audienceSlotsAvailable"] == 1
    data(client.patch(f"{AUDIENCES}/{draft['id']}", json={"status": "active"}))
    data(client.patch(f"{AUDIENCES}/{ids[1]}", json={"status": "active"}))  # already active: no new slot
    data(client.delete(f"{AUDIENCES}/{ids[2]}"))
    assert (_intent(client)["audienceSlotsUsed"], _intent(client)["audienceSlotsAvailable"]) == (2, 1)


def test_seeded_keys_list_the_audiences_their_used_slots_count(
    leadpipe_sandbox: LeadpipeSandbox, client_for: ClientFactory
) -> None:
    active = client_for("sk_test_active")
    assert _intent(active)["audienceSlotsUsed"] == 2
    assert len(data(active.get(AUDIENCES, params={"status": "active"}))) == 2

    leadpipe_sandbox.set_intent({"audienceSlots": 5, "audienceSlotsUsed": 1}, api_key="sk_test_active")
    assert len(data(active.get(AUDIENCES, params={"status": "active"}))) == 1
    assert len(data(active.get(AUDIENCES, params={"status": "paused"}))) == 1


def test_organisation_without_intent_cannot_activate(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    leadpipe_sandbox.set_intent(None)
    error(client.post(AUDIENCES, json={"name": "x", "status": "active", "config": CONFIG}), 403, "SLOTS_FULL")
    data(client.post(AUDIENCES, json={"name": "x", "config": CONFIG}), 201)


def test_control_create_audience_takes_a_slot(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    audience = leadpipe_sandbox.create_audience("Direct", people=12)
    assert (audience["status"], audience["audienceSize"]) == ("active", 12)
    assert data(client.get(f"{AUDIENCES}/{audience['id']}")) == audience
    assert _intent(client)["audienceSlotsUsed"] == 1
    leadpipe_sandbox.create_audience("Two")
    leadpipe_sandbox.create_audience("Three")
    with pytest.raises(SandboxError, match="403 All audience slots are in use"):
        leadpipe_sandbox.create_audience("Four")
    assert leadpipe_sandbox.create_audience("Draft", status="draft")["status"] == "draft"


def test_expired_and_unknown_keys_are_refused(client_for: ClientFactory) -> None:
    assert client_for("sk_test_expired").get(AUDIENCES).status_code == 403
    assert client_for("sk_nope").get(AUDIENCES).status_code == 401
    assert client_for(None).post(AUDIENCES, json={"name": "x", "config": CONFIG}).status_code == 401
