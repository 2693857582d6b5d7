"""Scripting Orbit from the control API, ``LeadpipeSandbox`` arguments and the command line."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox, SandboxError
from leadpipe_sandbox.cli import _parser, main, options_from
from leadpipe_sandbox.orbit import RunSchedule
from orbit_helpers import AUDIENCES, data, results, runs_path, start_run


def test_orbit_state_shows_audiences_runs_and_settings(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    audience = leadpipe_sandbox.create_audience("Seen", people=5, config={"topicIds": [7]})
    run = start_run(client, audience["id"], "key-1")
    leadpipe_sandbox.set_export_row_cap(99)
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_seconds=2.5)
    state = leadpipe_sandbox.orbit_state()
    [seen] = state["audiences"]
    assert (seen["id"], seen["people"], seen["runsCreated"], seen["config"]) == (
        audience["id"],
        5,
        1,
        {"topicIds": [7]},
    )
    assert [(r["id"], r["idempotencyKey"]) for r in seen["runs"]] == [(run["id"], "key-1")]
    assert state["exportRowCap"] == 99
    assert state["schedule"] == {
        "queuedPolls": 0,
        "runningPolls": 1,
        "queuedSeconds": None,
        "runningSeconds": 2.5,
    }

    leadpipe_sandbox.reset()
    assert leadpipe_sandbox.orbit_state()["audiences"] == []
    assert leadpipe_sandbox.orbit_state()["exportRowCap"] == 300_000


def test_schedule_is_per_key_and_applies_to_new_runs(
    leadpipe_sandbox: LeadpipeSandbox, client_for: Callable[..., httpx.Client]
) -> None:
    mine = leadpipe_sandbox.create_audience("Mine")["id"]
    theirs = leadpipe_sandbox.create_audience("Theirs", api_key="sk_test_active")["id"]
    client, active = client_for(), client_for("sk_test_active")
    old = start_run(client, mine)
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_polls=0)
    new = start_run(client, mine)
    assert results(client, mine, new["id"]).status_code == 200
    assert results(client, mine, old["id"]).status_code == 202  # created on the old schedule
    assert results(active, theirs, start_run(active, theirs)["id"]).status_code == 202


def test_audience_people_can_change_for_later_runs(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    leadpipe_sandbox.set_run_schedule(queued_polls=0, running_polls=0)
    audience_id = leadpipe_sandbox.create_audience("Growing", people=3)["id"]
    first = start_run(client, audience_id)
    leadpipe_sandbox.set_audience_people(audience_id, 8)
    second = start_run(client, audience_id)
    assert data(results(client, audience_id, first["id"]))["total"] == 3
    assert data(results(client, audience_id, second["id"]))["total"] == 8
    assert data(client.get(f"{AUDIENCES}/{audience_id}"))["audienceSize"] == 8


def test_control_errors_name_the_problem(leadpipe_sandbox: LeadpipeSandbox) -> None:
    with pytest.raises(SandboxError, match="404 Unknown audience 'nope'"):
        leadpipe_sandbox.add_daily_run("nope")
    audience_id = leadpipe_sandbox.create_audience("x")["id"]
    with pytest.raises(SandboxError, match="400"):
        leadpipe_sandbox.add_daily_run(audience_id, status="exploded")
    with pytest.raises(SandboxError, match="400"):
        leadpipe_sandbox.fail_next_run(audience_id, status="completed")
    with pytest.raises(SandboxError, match="400"):
        leadpipe_sandbox.set_run_schedule(queued_polls=-1)
    with pytest.raises(SandboxError, match="400"):
        leadpipe_sandbox.set_export_row_cap(-5)


def test_server_wide_orbit_options_reach_the_server() -> None:
    schedule = {"queued_polls": 0, "running_polls": 0}
    with LeadpipeSandbox(audience_people=7, export_row_cap=5, run_schedule=schedule) as sandbox:
        audience_id = sandbox.create_audience("Defaults", people=None)["id"]
        with httpx.Client(base_url=sandbox.url, headers={"x-api-key": sandbox.api_key}) as client:
            run = start_run(client, audience_id)
            page = data(results(client, audience_id, run["id"]))
            assert (page["total"], len(page["results"])) == (7, 7)
            export = client.get(runs_path(audience_id, run["id"], "/export.csv"))
            assert export.headers["x-export-row-cap"] == "5"
            assert len(export.content.splitlines()) == 1 + 5


def test_command_line_run_phases() -> None:
    args = _parser().parse_args(["--run-queued", "1.5s", "--run-running", "3", "--export-row-cap", "10"])
    options = options_from(args)
    assert options.run_schedule == RunSchedule(queued_polls=0, running_polls=3, queued_seconds=1.5)
    assert options.export_row_cap == 10
    for bad in ("soon", "-1", "-2s"):
        with pytest.raises(SystemExit):
            main(["--run-queued", bad])
