"""The `leadpipe` connection through a real Airflow API server: create, test, form metadata."""

from __future__ import annotations

import json

import httpx
import pytest

BAD_KEY = "sk_live_E2E_WRONG_KEY_0000"


def _hook_meta(api: httpx.Client) -> dict:
    response = api.get("/ui/connections/hook_meta")
    response.raise_for_status()
    (meta,) = [m for m in response.json() if m["connection_type"] == "leadpipe"]
    return meta


def test_connection_form_metadata_is_relabelled(api):
    """What the UI's connection form is built from: Leadpipe, "API key", "Base URL", the extras."""
    meta = _hook_meta(api)
    assert meta["hook_name"] == "Leadpipe"
    fields = meta["standard_fields"]
    assert fields["password"]["title"] == "API key" and not fields["password"]["hidden"]
    assert fields["password"]["placeholder"].startswith("sk_")
    assert fields["host"] == {"hidden": False, "title": "Base URL", "placeholder": "https://api.aws53.cloud"}
    assert fields["login"]["hidden"] and fields["port"]["hidden"] and fields["url_schema"]["hidden"]
    extras = meta["extra_fields"]
    assert extras["timeout"]["schema"]["title"] == "Request timeout (seconds)"
    assert extras["max_retries"]["schema"]["title"] == "Retries on transient errors"
    assert extras["max_retries"]["schema"]["maximum"] == 10


def _conn(conn_id: str, host: str, password: str, **fields) -> dict:
    return {"connection_id": conn_id, "conn_type": "leadpipe", "host": host, "password": password, **fields}


def _test(api: httpx.Client, body: dict) -> dict:
    """POST /api/v2/connections/test; the endpoint itself must answer 200 with status + message."""
    response = api.post("/api/v2/connections/test", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_create_connection_masks_the_key(api, sandbox):
    extra = json.dumps({"timeout": 10, "max_retries": 1})
    created = api.post(
        "/api/v2/connections", json=_conn("leadpipe_rest", sandbox.url, sandbox.api_key, extra=extra)
    )
    assert created.status_code == 201, created.text
    fetched = api.get("/api/v2/connections/leadpipe_rest")
    assert fetched.status_code == 200
    stored = fetched.json()
    assert stored["conn_type"] == "leadpipe" and stored["host"] == sandbox.url
    assert stored["password"] == "***" and json.loads(stored["extra"]) == json.loads(extra)
    assert sandbox.api_key not in created.text + fetched.text


def test_connection_test_succeeds_with_a_good_key(api, sandbox):
    before = sandbox.request_count("/v1/data/account", api_key=sandbox.api_key)
    result = _test(api, _conn("leadpipe_probe", sandbox.url, sandbox.api_key))
    assert result["status"] is True, result
    organization = sandbox.key_state()["config"]["organization"]["name"]
    assert result["message"].startswith(f"Connected to {organization}")
    assert "credits left" in result["message"]
    # The API server really called the account endpoint with that key (exactly once: no retries).
    assert sandbox.request_count("/v1/data/account", api_key=sandbox.api_key) == before + 1


def test_connection_test_reports_a_bad_key_readably(api, sandbox):
    result = _test(api, _conn("leadpipe_probe", sandbox.url, BAD_KEY))
    assert result["status"] is False
    message = result["message"]
    assert "HTTP 401" in message and "check the API key" in message, message
    assert BAD_KEY not in message


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://example.com", "plain http:// is only allowed for loopback hosts"),
        ("http://127.0.0.1:9", "Connection refused"),
    ],
    ids=["insecure-url", "nothing-listening"],
)
def test_connection_test_explains_unusable_base_urls(api, host, expected):
    result = _test(api, _conn("leadpipe_probe", host, BAD_KEY))
    assert result["status"] is False and expected in result["message"], result
    assert BAD_KEY not in result["message"]


def test_stored_connection_tests_with_its_own_key(api, sandbox):
    """Testing a saved connection by id: Airflow fills in the stored (masked) key server-side."""
    stored = _conn("leadpipe_stored", sandbox.url, sandbox.api_key)
    api.post("/api/v2/connections", json=stored).raise_for_status()
    result = _test(api, _conn("leadpipe_stored", sandbox.url, "***"))
    assert result["status"] is True, result
