"""events.outcome: the one event of the account and audience run triggers, whatever happens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeAuthError, LeadpipeResponseError
from airflow_provider_leadpipe.triggers import events
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from airflow_provider_leadpipe.triggers.audiences import LeadpipeAudienceRunTrigger
from tests.unit.models.test_audiences import AUDIENCE_ID

TRIGGERS = {
    "account": lambda: LeadpipeAccountTrigger(leadpipe_conn_id="c", poll_interval=1, deadline=2e9),
    "audience run": lambda: LeadpipeAudienceRunTrigger(
        leadpipe_conn_id="c", audience_id=AUDIENCE_ID, poll_interval=1, deadline=2e9
    ),
}


def first_event(trigger: Any, wait: Any) -> dict[str, Any]:
    trigger._wait = wait

    async def run() -> dict[str, Any]:
        payloads = [event.payload async for event in trigger.run()]
        assert len(payloads) == 1, payloads
        return payloads[0]

    return asyncio.run(run())


@pytest.mark.parametrize("kind", sorted(TRIGGERS))
def test_what_wait_returns_is_the_event(kind):
    async def wait() -> dict[str, Any]:
        return events.timeout("late")

    assert first_event(TRIGGERS[kind](), wait) == {"status": "timeout", "message": "late"}


@pytest.mark.parametrize("kind", sorted(TRIGGERS))
@pytest.mark.parametrize(
    ("error", "status"),
    [(LeadpipeAuthError("refused", http_status=401), "failure"), (LeadpipeResponseError("bad"), "error")],
)
def test_a_leadpipe_error_is_an_event_without_a_traceback_in_the_log(kind, error, status, task_log):
    async def wait() -> dict[str, Any]:
        raise error

    event = first_event(TRIGGERS[kind](), wait)
    assert (event["status"], event["error"], event["message"]) == (status, type(error).__name__, str(error))
    assert "failed unexpectedly" not in str(task_log)


@pytest.mark.parametrize("kind", sorted(TRIGGERS))
def test_a_bug_is_an_error_event_logged_with_its_traceback_but_no_locals(kind, task_log):
    raised: list[BaseException] = []

    async def wait() -> dict[str, Any]:
        return broken({"email": "jane.doe@example.org"})

    def broken(row: dict[str, Any]) -> dict[str, Any]:
        try:
            return row["missing"]
        except KeyError as exc:
            raised.append(exc)
            raise

    event = first_event(TRIGGERS[kind](), wait)
    assert (event["status"], event["error"]) == ("error", "KeyError")
    trigger = TRIGGERS[kind]()
    assert f"{type(trigger).__name__} failed unexpectedly" in task_log.messages
    tb = raised[0].__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    assert frames[-1].f_code.co_name == "broken" and frames[-1].f_locals == {}  # the row is gone
