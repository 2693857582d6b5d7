"""Orbit runs in the sandbox: idempotent creation, poll or seconds schedules, cancel, failures, daily runs."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox
from orbit_helpers import data, error, results, runs_path, start_run

RUN_FIELDS = {
    "id", "audienceId", "organizationId", "status", "runType", "configHash", "dataDate", "resultKey",
    "candidateCount", "resultCount", "attempts", "nextAttemptAt", "idempotencyKey", "errorCode",
    "errorMessage", "startedAt", "completedAt", "cancelledAt", "readyEmailSentAt", "readyEmailExportId",
    "readyEmailError", "createdAt", "updatedAt",
}  # fmt: skip


@pytest.fixture
def audience_id(leadpipe_sandbox: LeadpipeSandbox) -> str:
    return leadpipe_sandbox.create_audience("Runs", people=30)["id"]


def _statuses(client: httpx.Client, audience_id: str, run_id: str, polls: int) -> list[str]:
    seen = []
    for _ in range(polls):
        body = results(client, audience_id, run_id, limit=1).json()
        seen.append(body["data"]["run"]["status"])
    return seen


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sleep_until(moment: datetime) -> None:
    time.sleep(max((moment - datetime.now(timezone.utc)).total_seconds(), 0))


def _yesterday() -> str:
    return (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()


def test_a_new_run_is_queued_with_the_documented_fields(client: httpx.Client, audience_id: str) -> None:
    run = data(client.post(runs_path(audience_id), json={"runType": "manual"}), 201)
    assert set(run) == RUN_FIELDS
    assert uuid.UUID(run["id"])
    assert (run["status"], run["runType"], run["audienceId"]) == ("queued", "manual", audience_id)
    assert (run["candidateCount"], run["resultCount"], run["attempts"]) == (0, 0, 0)
    assert run["dataDate"] == _yesterday()
    assert run["startedAt"] is None and run["completedAt"] is None


def test_default_schedule_is_one_queued_and_one_running_poll(
    client: httpx.Client, audience_id: str, leadpipe_sandbox: LeadpipeSandbox
) -> None:
    run = start_run(client, audience_id)
    assert _statuses(client, audience_id, run["id"], 4) == ["queued", "running", "completed", "completed"]
    assert leadpipe_sandbox.audience_runs_created(audience_id) == 1


def test_schedule_in_polls(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str) -> None:
    leadpipe_sandbox.set_run_schedule(queued_polls=2, running_polls=3)
    run = start_run(client, audience_id)
    assert _statuses(client, audience_id, run["id"], 6) == ["queued"] * 2 + ["running"] * 3 + ["completed"]
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_polls=0)
    assert _statuses(client, audience_id, start_run(client, audience_id)["id"], 1) == ["completed"]


def test_the_runs_list_counts_as_a_poll(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    run = start_run(client, audience_id)
    assert [r["status"] for r in data(client.get(runs_path(audience_id)))] == ["queued"]
    assert [r["status"] for r in data(client.get(runs_path(audience_id)))] == ["running"]
    assert [r["status"] for r in data(client.get(runs_path(audience_id)))] == ["completed"]
    # Looking through the control API does not count.
    other = start_run(client, audience_id)
    for _ in range(3):
        state = leadpipe_sandbox.orbit_state()
    statuses = {r["id"]: r["status"] for a in state["audiences"] for r in a["runs"]}
    assert statuses == {run["id"]: "completed", other["id"]: "queued"}


def test_schedule_in_seconds(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    leadpipe_sandbox.set_run_schedule(queued_seconds=1.0, running_seconds=1.5)
    run = start_run(client, audience_id)
    created = _moment(run["createdAt"])
    assert _statuses(client, audience_id, run["id"], 3) == ["queued"] * 3  # polls do not move it
    _sleep_until(created + timedelta(seconds=1.05))
    assert _statuses(client, audience_id, run["id"], 1) == ["running"]
    _sleep_until(created + timedelta(seconds=2.55))
    assert _statuses(client, audience_id, run["id"], 1) == ["completed"]
    final = data(client.get(runs_path(audience_id)))[0]
    started, completed = _moment(final["startedAt"]), _moment(final["completedAt"])
    assert (started - created, completed - started) == (timedelta(seconds=1.0), timedelta(seconds=1.5))
    assert (final["resultCount"], final["candidateCount"] > final["resultCount"]) == (30, True)


def test_idempotency_key_returns_the_same_run(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    first = data(
        client.post(
            runs_path(audience_id), json={"runType": "manual"}, headers={"Idempotency-Key": "k" * 120}
        ),
        201,
    )
    again = data(
        client.post(
            runs_path(audience_id), json={"runType": "manual"}, headers={"Idempotency-Key": "k" * 120}
        ),
        200,
    )
    assert (again["id"], again["idempotencyKey"]) == (first["id"], "k" * 120)
    assert leadpipe_sandbox.audience_runs_created(audience_id) == 1
    assert start_run(client, audience_id, "other")["id"] != first["id"]
    assert start_run(client, audience_id)["id"] != start_run(client, audience_id)["id"]  # no key: always new
    assert leadpipe_sandbox.audience_runs_created(audience_id) == 4
    assert len(data(client.get(runs_path(audience_id)))) == 4

    # The key is scoped to the audience.
    second = leadpipe_sandbox.create_audience("Second")["id"]
    assert start_run(client, second, "k" * 120)["id"] != first["id"]
    assert leadpipe_sandbox.audience_runs_created() == 5


def test_bad_run_requests(client: httpx.Client, audience_id: str) -> None:
    too_long = client.post(runs_path(audience_id), json={}, headers={"Idempotency-Key": "k" * 121})
    assert "120" in error(too_long, 400, "VALIDATION_ERROR")["error"]["message"]
    error(client.post(runs_path(audience_id), json={"runType": "daily"}), 400, "VALIDATION_ERROR")
    error(client.post(runs_path(str(uuid.uuid4())), json={"runType": "manual"}), 404, "NOT_FOUND")
    assert client.post(runs_path(audience_id)).status_code == 201  # an empty body means a manual run
    error(client.get(runs_path(audience_id), params={"limit": 101}), 400, "VALIDATION_ERROR")
    unknown_run = str(uuid.uuid4())
    assert (
        unknown_run in error(results(client, audience_id, unknown_run), 404, "NOT_FOUND")["error"]["message"]
    )


def test_runs_list_is_newest_first_and_limited(client: httpx.Client, audience_id: str) -> None:
    created = [start_run(client, audience_id)["id"] for _ in range(30)]
    assert [r["id"] for r in data(client.get(runs_path(audience_id)))] == created[::-1][:25]
    assert [r["id"] for r in data(client.get(runs_path(audience_id), params={"limit": 3}))] == created[:-4:-1]
    tail = data(client.get(runs_path(audience_id), params={"limit": 25, "offset": 25}))
    assert [r["id"] for r in tail] == created[::-1][25:]


def test_only_queued_runs_can_be_cancelled(client: httpx.Client, audience_id: str) -> None:
    run = start_run(client, audience_id)
    cancelled = data(client.delete(runs_path(audience_id, run["id"])))
    assert (cancelled["status"], cancelled["errorCode"]) == ("cancelled", "CANCELLED")
    assert cancelled["cancelledAt"] is not None
    refused = error(client.delete(runs_path(audience_id, run["id"])), 409, "RUN_NOT_CANCELLABLE")
    assert refused["data"]["run"]["status"] == "cancelled"
    gone = error(results(client, audience_id, run["id"]), 409, "RUN_NOT_COMPLETED")
    assert gone["data"]["run"]["errorCode"] == "CANCELLED"

    running = start_run(client, audience_id)
    assert _statuses(client, audience_id, running["id"], 2)[-1] == "running"
    error(client.delete(runs_path(audience_id, running["id"])), 409, "RUN_NOT_CANCELLABLE")
    assert _statuses(client, audience_id, running["id"], 1) == ["completed"]


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_fail_next_run(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str, status: str
) -> None:
    leadpipe_sandbox.fail_next_run(audience_id, error_code="QUOTA", error_message="Too big", status=status)
    run = start_run(client, audience_id)
    expected = ["queued", "running", status] if status == "failed" else ["queued", status]
    assert _statuses(client, audience_id, run["id"], len(expected)) == expected
    body = error(results(client, audience_id, run["id"]), 409, "RUN_NOT_COMPLETED")
    assert "QUOTA" in body["error"]["message"]
    assert body["data"]["run"] == {
        "id": run["id"],
        "status": status,
        "runType": "manual",
        "candidateCount": 0,
        "resultCount": 0,
        "errorCode": "QUOTA",
        "errorMessage": "Too big",
    }
    listed = data(client.get(runs_path(audience_id)))[0]
    assert (listed["status"], listed["errorCode"], listed["errorMessage"]) == (status, "QUOTA", "Too big")
    assert listed["completedAt"] is None
    error(client.get(runs_path(audience_id, run["id"], "/stats")), 409, "RUN_NOT_COMPLETED")
    error(client.get(runs_path(audience_id, run["id"], "/export.csv")), 409, "RUN_NOT_COMPLETED")
    # Only the next run fails.
    assert _statuses(client, audience_id, start_run(client, audience_id)["id"], 3)[-1] == "completed"


def test_daily_runs_appear_when_a_test_adds_them(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    daily = leadpipe_sandbox.add_daily_run(audience_id)
    assert (daily["runType"], daily["status"], daily["dataDate"]) == ("daily", "completed", _yesterday())
    assert daily["resultCount"] == 30 and daily["completedAt"] is not None
    older = leadpipe_sandbox.add_daily_run(audience_id, data_date="2026-05-04", status="failed")
    queued = leadpipe_sandbox.add_daily_run(audience_id, status="queued")
    listed = data(client.get(runs_path(audience_id)))
    assert [(r["id"], r["runType"]) for r in listed] == [
        (queued["id"], "daily"),
        (older["id"], "daily"),
        (daily["id"], "daily"),
    ]
    assert (listed[1]["dataDate"], listed[1]["errorCode"]) == ("2026-05-04", "MATERIALIZATION_FAILED")
    assert listed[0]["status"] == "queued"  # this list was its first poll
    assert data(results(client, audience_id, daily["id"]))["total"] == 30
    assert leadpipe_sandbox.audience_runs_created(audience_id) == 0  # POSTs only
    audience = client.get(f"/v1/intent/audiences/{audience_id}").json()["data"]
    assert audience["lastRefreshedAt"] == daily["completedAt"]


def test_deleting_an_audience_removes_its_runs(client: httpx.Client, audience_id: str) -> None:
    run = start_run(client, audience_id)
    data(client.delete(f"/v1/intent/audiences/{audience_id}"))
    error(results(client, audience_id, run["id"]), 404, "NOT_FOUND")
