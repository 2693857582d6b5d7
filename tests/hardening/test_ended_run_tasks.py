"""Every way a deferred run task ends, in Airflow's own TriggerRunner: the run it queued is
cancelled while still queued when a user ends the task or its timeout passes, never otherwise.

A trigger ends in four ways. A user marks the deferred task failed or success, or
clears it: the trigger leaves the DB and the triggerer cancels it with its "user action" message,
and Airflow 3.3+ calls ``BaseTrigger.on_kill`` (marked failed through REST in real Airflow:
tests/e2e/test_ended_run_task.py). The triggerer shuts down (restart, deploy): the trigger is
cancelled without that message and runs on elsewhere. The deferral's own timeout passes: the
trigger leaves the DB too, but Airflow skips ``on_kill`` (the resumed task cancels the run in
the worker: tests/unit/operators/test_audiences.py). And the trigger's deadline (the task's
``timeout``) ends it with a timeout event. The sensor waits for a run someone else queued: its
trigger never cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.hardening.figures import tally
from tests.orbit import ORBIT, api_runs, context

try:  # Airflow 3.3+: the triggerer calls BaseTrigger.on_kill when a user ends a deferred task
    from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG, TriggerRunner
except ImportError:  # 2.11-3.2 never call it (docs/orbit.md says what happens there)
    _USER_ACTION_CANCEL_MSG = TriggerRunner = None

pytestmark = pytest.mark.skipif(TriggerRunner is None, reason="Airflow < 3.3 never calls BaseTrigger.on_kill")

#: How a deferred task's trigger ends, and whether the trigger then cancels the run operator's
#: queued run. After the deferral timeout the resumed task cancels it instead (the worker has the
#: run id in XCom: tests/unit/operators/test_audiences.py).
ENDINGS = {
    "marked failed, marked success or cleared": True,
    "deadline (the task's timeout)": True,
    "triggerer restart": False,
    "deferral timeout (Airflow's backstop)": False,
}
#: What the trigger GETs to check its run, and the cancel.
RESULTS = "/v1/intent/audiences/{audienceId}/runs/{runId}/results"
RUN = "/v1/intent/audiences/{audienceId}/runs/{runId}"


@pytest.fixture
def audience(leadpipe_sandbox):
    leadpipe_sandbox.set_run_schedule(queued_seconds=600, running_seconds=600)  # held queued
    return leadpipe_sandbox.create_audience("Ended in the triggerer", people=10)


def deferred_trigger(sandbox, audience_id: str, who: str, timeout: float):
    """The trigger a deferrable task hands over to, and its run id: the run operator queues its
    run; the sensor waits for a run queued by someone else."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_leadpipe.operators.audiences import LeadpipeRunAudienceOperator
    from airflow_provider_leadpipe.sensors.audiences import LeadpipeAudienceRunSensor

    if who == "run operator":
        task = LeadpipeRunAudienceOperator(
            task_id="run", audience_id=audience_id, deferrable=True, poll_interval=0.05, timeout=timeout
        )
    else:
        queued = httpx.post(
            f"{sandbox.url}{ORBIT}/{audience_id}/runs",
            json={"runType": "manual"},
            headers={"x-api-key": sandbox.api_key},
        )
        queued.raise_for_status()
        task = LeadpipeAudienceRunSensor(
            task_id="wait",
            audience_id=audience_id,
            audience_run_id=queued.json()["data"]["id"],
            deferrable=True,
            poke_interval=0.05,
            timeout=timeout,
        )
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())
    trigger = deferred.value.trigger
    return trigger, trigger.condition.audience_run_id


async def until(condition, safety_net: float = 30.0) -> None:
    """Wait (polling) until ``condition()`` holds; fail after a generous safety net."""
    give_up = time.monotonic() + safety_net
    while not condition():
        assert time.monotonic() < give_up, "condition not met in time"
        await asyncio.sleep(0.01)


async def end_in_triggerer(sandbox, trigger, ending: str) -> list[dict]:
    """Run ``trigger`` in Airflow's TriggerRunner until it has checked its run, end it as
    ``ending`` does (the triggerer's own code paths), and return the events it fired."""
    runner = TriggerRunner()
    timeout_after = None
    if ending.startswith("deferral timeout"):
        timeout_after = datetime.now(timezone.utc) + timedelta(seconds=0.2)
    checks = sandbox.request_count(RESULTS, method="GET")
    runner.triggers[1] = {"name": repr(trigger), "events": 0}
    task = asyncio.create_task(runner.run_trigger(1, trigger, timeout_after))
    runner.triggers[1]["task"] = task
    await until(lambda: sandbox.request_count(RESULTS, method="GET") > checks or task.done())
    if ending.startswith("deferral timeout"):  # passed by the time the scheduler removes it
        await until(lambda: datetime.now(timezone.utc) > timeout_after)
    if ending.startswith(("marked", "deferral timeout")):
        runner.to_cancel.append(1)  # the trigger left the DB: what the triggerer then does
        await runner.cancel_triggers()
    elif ending == "triggerer restart":
        task.cancel("EOF - shutting down")  # what the triggerer's shutdown does
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    return [entry.event.payload for entry in runner.events]


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("who", ["run operator", "sensor"])
async def test_a_queued_run_is_cancelled_only_when_a_user_or_the_timeout_ends_the_task_that_queued_it(
    leadpipe_sandbox, audience, ending, who
):
    timeout = 0.5 if ending.startswith("deadline") else 600
    trigger, run_id = deferred_trigger(leadpipe_sandbox, audience["id"], who, timeout)

    fired = await end_in_triggerer(leadpipe_sandbox, trigger, ending)

    cancelled = ENDINGS[ending] and who == "run operator"
    [run] = [run for run in api_runs(leadpipe_sandbox, audience["id"]) if run["id"] == run_id]
    assert run["status"] == ("cancelled" if cancelled else "queued")
    if ending.startswith("deadline"):
        [event] = fired
        assert event["status"] == "timeout" and "queued" in event["message"]
        assert ("the queued run was cancelled" in event["message"]) is cancelled
    else:
        assert fired == []
    assert leadpipe_sandbox.request_count(RUN, method="DELETE") == (
        1 if ENDINGS[ending] and who == "run operator" else 0
    )
    tally(
        "ended task",
        "deferred run operator / sensor ended each way in Airflow's TriggerRunner (user, deadline, restart, "
        "deferral timeout)",
        "queued run cancelled" if cancelled else "run left queued",
    )
