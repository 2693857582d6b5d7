"""Pixels: list, create (201 / 400 / 409), update (200 / 400 / 404)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox


def _error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["error"]["code"] == "HTTP_ERROR"
    return response.status_code, body["error"]["message"]


def test_create_answers_201_with_id_and_embed_code(client: httpx.Client) -> None:
    response = client.post("/v1/data/pixels", json={"domain": "new.example", "name": "New site"})
    assert response.status_code == 201
    data = response.json()["data"]
    assert set(data) == {"id", "domain", "name", "status", "code", "createdAt"}
    assert uuid.UUID(data["id"]).version == 4
    assert (data["domain"], data["name"], data["status"]) == ("new.example", "New site", "active")
    assert f"https://leadpipe.aws53.cloud/p/{data['id']}.js" in data["code"]
    assert data["code"].startswith("<script")


def test_created_pixels_are_listed_with_paths_and_paused_reason(client: httpx.Client) -> None:
    assert client.get("/v1/data/pixels").json() == {"data": []}
    created = client.post("/v1/data/pixels", json={"domain": "a.example", "excludedPaths": ["/admin"]}).json()
    rows = client.get("/v1/data/pixels").json()["data"]
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == created["data"]["id"]
    assert row["name"] == "a.example"  # defaults to the domain
    assert (row["status"], row["pausedReason"]) == ("active", None)
    assert (row["excludedPaths"], row["includedPaths"]) == (["/admin"], [])
    assert {"createdAt", "updatedAt"} <= row.keys()


def test_builtin_active_key_starts_with_two_pixels(client_for) -> None:
    rows = client_for("sk_test_active").get("/v1/data/pixels").json()["data"]
    assert sorted((r["domain"], r["status"], r["pausedReason"]) for r in rows) == [
        ("acme.io", "active", None),
        ("shop.acme.io", "paused", "manual"),
    ]


def test_duplicate_domain_is_409_without_the_existing_id(client: httpx.Client) -> None:
    first = client.post("/v1/data/pixels", json={"domain": "dup.example"})
    again = client.post("/v1/data/pixels", json={"domain": "DUP.example"})
    assert _error(again) == (409, "Pixel already exists for this domain")
    assert first.json()["data"]["id"] not in again.text
    assert len(client.get("/v1/data/pixels").json()["data"]) == 1


def test_pixels_belong_to_one_key(client_for) -> None:
    client_for().post("/v1/data/pixels", json={"domain": "mine.example"})
    assert client_for("sk_test_low_credits").get("/v1/data/pixels").json() == {"data": []}
    assert (
        client_for("sk_test_low_credits").post("/v1/data/pixels", json={"domain": "mine.example"}).status_code
        == 201
    )


TOO_MANY = [f"/p{i}" for i in range(51)]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "domain: Field required"),
        ({"domain": ""}, "domain: String should have at least 1 character"),
        ({"domain": "x" * 256}, "domain: String should have at most 255 characters"),
        ({"domain": 42}, "domain: Input should be a valid string"),
        ({"domain": "a.example", "name": ""}, "name: String should have at least 1 character"),
        ({"domain": "a.example", "includedPaths": ["/a"], "excludedPaths": ["/b"]}, "cannot be combined"),
        (
            {"domain": "a.example", "excludedPaths": TOO_MANY},
            "excludedPaths: List should have at most 50 items",
        ),
        ({"domain": "a.example", "includedPaths": ["/"]}, "includedPaths.0: String should have at least 2"),
        (
            {"domain": "a.example", "includedPaths": ["/" + "x" * 500]},
            "includedPaths.0: String should have at most 500",
        ),
        ({"domain": "a.example", "excludedPaths": ["admin"]}, "excludedPaths.0: String should match pattern"),
    ],
)
def test_invalid_create_bodies_are_400(client: httpx.Client, body: dict, fragment: str) -> None:
    status, message = _error(client.post("/v1/data/pixels", json=body))
    assert status == 400
    assert fragment in message
    assert client.get("/v1/data/pixels").json() == {"data": []}


def test_limits_themselves_are_accepted(client: httpx.Client) -> None:
    body = {
        "domain": "d" * 255,
        "name": "n" * 255,
        "includedPaths": ["/" + "x" * 499, *[f"/p{i}" for i in range(49)]],
    }
    assert client.post("/v1/data/pixels", json=body).status_code == 201


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]"])
def test_non_object_bodies_are_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/v1/data/pixels", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_patch_pauses_and_activates(client: httpx.Client) -> None:
    pixel_id = client.post("/v1/data/pixels", json={"domain": "p.example"}).json()["data"]["id"]
    paused = client.patch(f"/v1/data/pixels/{pixel_id}", json={"status": "paused"})
    assert paused.status_code == 200
    data = paused.json()["data"]
    assert set(data) == {"id", "domain", "name", "status", "excludedPaths", "includedPaths", "updatedAt"}
    assert data["status"] == "paused"
    assert client.get("/v1/data/pixels").json()["data"][0]["pausedReason"] == "manual"
    active = client.patch(f"/v1/data/pixels/{pixel_id}", json={"status": "active"}).json()["data"]
    assert active["status"] == "active"
    assert client.get("/v1/data/pixels").json()["data"][0]["pausedReason"] is None


def test_patch_sets_switches_and_clears_path_lists(client: httpx.Client) -> None:
    pixel_id = client.post("/v1/data/pixels", json={"domain": "p.example"}).json()["data"]["id"]
    url = f"/v1/data/pixels/{pixel_id}"
    assert client.patch(url, json={"includedPaths": ["/blog"]}).json()["data"]["includedPaths"] == ["/blog"]
    # Setting the other list while one is set is refused, unless the first is cleared in the same call.
    assert _error(client.patch(url, json={"excludedPaths": ["/admin"]}))[0] == 400
    switched = client.patch(url, json={"includedPaths": None, "excludedPaths": ["/admin"]}).json()["data"]
    assert (switched["includedPaths"], switched["excludedPaths"]) == ([], ["/admin"])
    untouched = client.patch(url, json={"status": "paused"}).json()["data"]
    assert untouched["excludedPaths"] == ["/admin"]
    cleared = client.patch(url, json={"excludedPaths": None}).json()["data"]
    assert (cleared["includedPaths"], cleared["excludedPaths"]) == ([], [])


@pytest.mark.parametrize(
    "body",
    [
        {"status": "deleted"},
        {"includedPaths": ["/a"], "excludedPaths": ["/b"]},
        {"excludedPaths": ["nope"]},
        {"includedPaths": [f"/p{i}" for i in range(51)]},
    ],
)
def test_invalid_patch_bodies_are_400(client: httpx.Client, body: dict) -> None:
    pixel_id = client.post("/v1/data/pixels", json={"domain": "p.example"}).json()["data"]["id"]
    assert _error(client.patch(f"/v1/data/pixels/{pixel_id}", json=body))[0] == 400
    assert client.get("/v1/data/pixels").json()["data"][0]["status"] == "active"


def test_patch_unknown_pixel_is_404(client: httpx.Client) -> None:
    assert _error(client.patch(f"/v1/data/pixels/{uuid.uuid4()}", json={"status": "paused"})) == (
        404,
        "Pixel not found",
    )


def test_pixels_last_until_reset(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    client.post("/v1/data/pixels", json={"domain": "keep.example"})
    leadpipe_sandbox.set_credits(used=10)  # reconfiguring a key keeps its pixels
    assert [r["domain"] for r in client.get("/v1/data/pixels").json()["data"]] == ["keep.example"]
    leadpipe_sandbox.reset()
    assert client.get("/v1/data/pixels").json() == {"data": []}


def test_pixel_ids_are_deterministic_after_reset(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    first = client.post("/v1/data/pixels", json={"domain": "x.example"}).json()["data"]["id"]
    leadpipe_sandbox.reset()
    assert client.post("/v1/data/pixels", json={"domain": "y.example"}).json()["data"]["id"] == first
