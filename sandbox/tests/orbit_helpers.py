"""Small helpers shared by the Orbit sandbox tests (plain httpx against the started sandbox)."""

from __future__ import annotations

from typing import Any

import httpx

AUDIENCES = "/v1/intent/audiences"
CONFIG = {"topicIds": [101, 102, 103], "minScore": 70}
PERSON_FIELDS = {
    "hashedEmail", "firstName", "lastName", "fullName", "businessEmail", "personalEmail", "email",
    "primaryContactEmail", "phone", "linkedinUrl", "headline", "jobTitle", "seniority", "department",
    "company", "intent",
}  # fmt: skip


def data(response: httpx.Response, status: int = 200) -> Any:
    """``data`` of a response after checking its status and the ``meta`` every Orbit answer carries."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["meta"]) == {"timestamp", "request_id"}
    return body["data"]


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The whole body of an error answer, after checking its status and ``error.code``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body


def runs_path(audience_id: str, run_id: str | None = None, tail: str = "") -> str:
    path = f"{AUDIENCES}/{audience_id}/runs"
    return f"{path}/{run_id}{tail}" if run_id else path


def start_run(client: httpx.Client, audience_id: str, key: str | None = None) -> dict[str, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post(runs_path(audience_id), json={"runType": "manual"}, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()["data"]


def results(client: httpx.Client, audience_id: str, run_id: str, **params: Any) -> httpx.Response:
    return client.get(runs_path(audience_id, run_id, "/results"), params=params)


def completed_run(client: httpx.Client, audience_id: str) -> dict[str, Any]:
    """Start a run and poll its results until it completed (the schedule decides how many polls)."""
    run = start_run(client, audience_id)
    for _ in range(20):
        response = results(client, audience_id, run["id"], limit=1)
        if response.status_code == 200:
            return run
        assert response.status_code == 202, response.text
    raise AssertionError("the run did not complete within 20 polls")


def all_rows(client: httpx.Client, audience_id: str, run_id: str, page: int = 1000) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        chunk = data(results(client, audience_id, run_id, limit=page, offset=len(rows)))["results"]
        rows.extend(chunk)
        if len(chunk) < page:
            return rows
