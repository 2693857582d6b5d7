"""Scripted faults on the Orbit paths, including a response lost after the server acted."""

from __future__ import annotations

import time

import httpx
import pytest

from leadpipe_sandbox import Fault, LeadpipeSandbox
from orbit_helpers import completed_run, data, results, runs_path, start_run

RUNS_GLOB = "/v1/intent/audiences/*/runs"


@pytest.fixture
def audience_id(leadpipe_sandbox: LeadpipeSandbox) -> str:
    return leadpipe_sandbox.create_audience("Faults", people=2000)["id"]


def test_lost_response_after_the_run_was_created(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    leadpipe_sandbox.queue_faults(Fault.lost_response(method="POST", path=RUNS_GLOB))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.post(runs_path(audience_id), json={"runType": "manual"}, headers={"Idempotency-Key": "task-1"})
    assert leadpipe_sandbox.audience_runs_created(audience_id) == 1  # the server did act

    retried = data(
        client.post(runs_path(audience_id), json={"runType": "manual"}, headers={"Idempotency-Key": "task-1"})
    )
    assert leadpipe_sandbox.audience_runs_created(audience_id) == 1
    assert [run["id"] for run in data(client.get(runs_path(audience_id)))] == [retried["id"]]
    assert leadpipe_sandbox.request_count(runs_path("{audienceId}"), method="POST") == 2


def test_lost_response_without_a_key_makes_the_retry_a_second_run(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    leadpipe_sandbox.queue_faults(Fault.lost_response(method="POST", path=RUNS_GLOB))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(runs_path(audience_id), json={"runType": "manual"})
    start_run(client, audience_id)
    assert leadpipe_sandbox.audience_runs_created(audience_id) == 2


def test_lost_response_on_a_read_and_the_connection_recovers(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    run = start_run(client, audience_id)
    leadpipe_sandbox.queue_faults(Fault.lost_response(path="*/results"))
    with pytest.raises(httpx.RemoteProtocolError):
        results(client, audience_id, run["id"])
    # The lost poll still counted: the next one sees the run running.
    assert data(results(client, audience_id, run["id"]), 202)["state"] == "running"


def test_rate_limit_and_503_on_orbit_paths(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    run = completed_run(client, audience_id)
    leadpipe_sandbox.queue_faults(
        Fault.rate_limit(count=2, retry_after=3, path="*/results"),
        Fault.unavailable(method="POST", path=RUNS_GLOB),
    )
    first, second, third = (results(client, audience_id, run["id"]) for _ in range(3))
    assert [r.status_code for r in (first, second, third)] == [429, 429, 200]
    assert first.headers["retry-after"] == "3"
    assert client.post(runs_path(audience_id), json={"runType": "manual"}).status_code == 503
    assert leadpipe_sandbox.audience_runs_created(audience_id) == 1  # a 503 did nothing
    assert client.post(runs_path(audience_id), json={"runType": "manual"}).status_code == 201


def test_truncated_results_and_export(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    run = completed_run(client, audience_id)
    leadpipe_sandbox.queue_faults(Fault.truncated(path="*/results"), Fault.truncated(path="*/export.csv"))
    with pytest.raises(httpx.RemoteProtocolError):
        results(client, audience_id, run["id"], limit=500)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(runs_path(audience_id, run["id"], "/export.csv"))
    assert results(client, audience_id, run["id"]).status_code == 200


def test_faults_on_the_download_host(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    run = completed_run(client, audience_id)
    url = data(client.post(runs_path(audience_id, run["id"], "/exports")), 201)["downloadUrl"]
    leadpipe_sandbox.queue_faults(Fault.truncated(path="/file/*"), Fault.unavailable(path="/file/*"))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url, trust_env=False)
    assert httpx.get(url, trust_env=False).status_code == 503
    assert httpx.get(url, trust_env=False).status_code == 200


def test_slow_orbit_answer(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str) -> None:
    leadpipe_sandbox.queue_faults(Fault.slow(0.5, path="/v1/intent/audiences"))
    started = time.monotonic()
    assert client.get("/v1/intent/audiences").status_code == 200
    assert time.monotonic() - started >= 0.5
    with pytest.raises(httpx.ReadTimeout):
        leadpipe_sandbox.queue_faults(Fault.slow(2, path="/v1/intent/audiences"))
        client.get("/v1/intent/audiences", timeout=0.3)
