"""Orbit exports in the sandbox: ``export.csv`` streamed with its row cap, stored exports and their
signed download URL on another host name."""

from __future__ import annotations

import csv
import hashlib
import io
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox
from leadpipe_sandbox.people import CSV_COLUMNS
from orbit_helpers import all_rows, completed_run, data, error, runs_path, start_run

EXPORT_FIELDS = {
    "id", "organizationId", "audienceId", "runId", "exportType", "status", "storageProvider", "contentType",
    "byteSize", "rowCount", "bucketName", "fileId", "fileName", "contentSha1", "errorCode", "errorMessage",
    "requestedBy", "completedAt", "expiresAt", "createdAt", "updatedAt",
}  # fmt: skip


@pytest.fixture
def audience_id(leadpipe_sandbox: LeadpipeSandbox) -> str:
    return leadpipe_sandbox.create_audience("Exports", people=1200)["id"]


@pytest.fixture
def run_id(client: httpx.Client, audience_id: str) -> str:
    return completed_run(client, audience_id)["id"]


def _csv(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode())))


def test_export_csv_is_streamed_with_every_row(client: httpx.Client, audience_id: str, run_id: str) -> None:
    with client.stream("GET", runs_path(audience_id, run_id, "/export.csv")) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert response.headers["x-export-row-cap"] == "300000"
        assert response.headers["x-clickhouse-query-id"]
        assert response.headers["transfer-encoding"] == "chunked"  # not built whole: no Content-Length
        chunks = list(response.iter_raw())
    assert len(chunks) > 1
    content = b"".join(chunks)
    assert content.splitlines()[0].decode().split(",") == list(CSV_COLUMNS)
    rows = _csv(content)
    people = all_rows(client, audience_id, run_id)
    assert len(rows) == len(people) == 1200
    for row, person in zip(rows, people, strict=True):
        assert row["hashedEmail"] == person["hashedEmail"]
        assert row["company.domain"] == person["company"]["domain"]
        assert row["phone"] == (person["phone"] or "")
        assert int(row["intent.score"]) == person["intent"]["score"]


def test_the_row_cap_stops_the_export(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str, run_id: str
) -> None:
    leadpipe_sandbox.set_export_row_cap(1000)
    response = client.get(runs_path(audience_id, run_id, "/export.csv"))
    assert response.headers["x-export-row-cap"] == "1000"
    assert len(_csv(response.content)) == 1000
    leadpipe_sandbox.set_export_row_cap(0)
    assert _csv(client.get(runs_path(audience_id, run_id, "/export.csv")).content) == []


def test_export_csv_needs_a_completed_run(client: httpx.Client, audience_id: str) -> None:
    run = start_run(client, audience_id)
    body = error(client.get(runs_path(audience_id, run["id"], "/export.csv")), 409, "RUN_NOT_COMPLETED")
    assert body["data"]["run"]["status"] == "queued"
    error(client.post(runs_path(audience_id, run["id"], "/exports")), 409, "RUN_NOT_COMPLETED")


def test_stored_export_is_created_once_and_downloaded_without_the_key(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str, run_id: str
) -> None:
    created = data(client.post(runs_path(audience_id, run_id, "/exports")), 201)
    export = created["export"]
    assert set(export) == EXPORT_FIELDS
    assert (export["status"], export["runId"], export["rowCount"]) == ("completed", run_id, 1200)
    assert created["downloadUrlTtlSeconds"] == 3600
    reused = data(client.post(runs_path(audience_id, run_id, "/exports")), 200)
    assert reused["export"]["id"] == export["id"]

    api_host = urlsplit(leadpipe_sandbox.url)
    url = urlsplit(created["downloadUrl"])
    assert (url.hostname, url.port) == ("localhost", api_host.port)  # same port, another host name
    assert url.hostname != api_host.hostname

    download = httpx.get(created["downloadUrl"], trust_env=False)
    assert download.status_code == 200
    assert len(download.content) == export["byteSize"] == int(download.headers["content-length"])
    assert hashlib.sha1(download.content).hexdigest() == export["contentSha1"]
    assert download.content == client.get(runs_path(audience_id, run_id, "/export.csv")).content
    assert leadpipe_sandbox.export_downloads() == [
        {"path": url.path, "host": url.netloc, "apiKeySent": False, "status": 200}
    ]

    # A client that wrongly sends its key to the storage host is seen doing so.
    httpx.get(created["downloadUrl"], headers={"x-api-key": "sk_test_sandbox"}, trust_env=False)
    assert leadpipe_sandbox.export_downloads()[-1]["apiKeySent"] is True


def test_get_export_hands_out_a_fresh_url(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str, run_id: str
) -> None:
    leadpipe_sandbox.set_download_url_ttl(1)
    created = data(client.post(runs_path(audience_id, run_id, "/exports")), 201)
    export_path = runs_path(audience_id, run_id, f"/exports/{created['export']['id']}")
    expires_at = datetime.fromisoformat(created["downloadUrlExpiresAt"].replace("Z", "+00:00"))
    time.sleep((expires_at - datetime.now(timezone.utc)).total_seconds() + 0.05)
    expired = httpx.get(created["downloadUrl"], trust_env=False)
    assert (expired.status_code, expired.json()["code"]) == (401, "expired_auth_token")
    leadpipe_sandbox.set_download_url_ttl(60)
    fresh = data(client.get(export_path))
    assert fresh["export"] == created["export"]
    assert fresh["downloadUrlExpiresAt"] > created["downloadUrlExpiresAt"]
    assert httpx.get(fresh["downloadUrl"], trust_env=False).status_code == 200
    tampered = fresh["downloadUrl"].replace("Authorization=", "Authorization=0")
    assert httpx.get(tampered, trust_env=False).status_code == 401

    error(client.get(runs_path(audience_id, run_id, f"/exports/{uuid.uuid4()}")), 404, "NOT_FOUND")


def test_stored_export_respects_the_row_cap(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str, run_id: str
) -> None:
    leadpipe_sandbox.set_export_row_cap(10)
    created = data(client.post(runs_path(audience_id, run_id, "/exports")), 201)
    assert created["export"]["rowCount"] == 10
    assert len(_csv(httpx.get(created["downloadUrl"], trust_env=False).content)) == 10


def test_a_stored_export_can_be_processing_for_a_few_polls(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str, run_id: str
) -> None:
    leadpipe_sandbox.set_export_processing_polls(2)
    created = data(client.post(runs_path(audience_id, run_id, "/exports")), 201)
    assert created["export"]["status"] == "processing"
    assert (created["downloadUrl"], created["export"]["contentSha1"], created["export"]["byteSize"]) == (
        None,
        None,
        None,
    )
    export_path = runs_path(audience_id, run_id, f"/exports/{created['export']['id']}")
    polled = [data(client.get(export_path)) for _ in range(4)]
    assert [p["export"]["status"] for p in polled] == ["processing", "processing", "completed", "completed"]
    done = polled[-1]
    download = httpx.get(done["downloadUrl"], trust_env=False)
    assert hashlib.sha1(download.content).hexdigest() == done["export"]["contentSha1"]
    assert len(download.content) == done["export"]["byteSize"]
