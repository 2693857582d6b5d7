"""Coalesced account polling over real HTTP, against the API sandbox: one request per interval
and connection, each trigger judging the shared answer by its own conditions."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.unit.triggers.account_api import eventually, make_trigger

pytestmark = pytest.mark.integration

ACCOUNT = "/v1/data/account"


@pytest.fixture
def connect(leadpipe_sandbox, monkeypatch):
    """Define connection ``conn_id`` to the sandbox with ``api_key`` (no hook retries)."""

    def connect(conn_id: str, api_key: str) -> str:
        conn = {
            "conn_type": "leadpipe",
            "host": leadpipe_sandbox.url,
            "password": api_key,
            "extra": json.dumps({"max_retries": 0}),
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return connect


async def test_hundreds_of_triggers_share_one_request_per_interval(leadpipe_sandbox, connect):
    conn_id = connect("lp_shared", leadpipe_sandbox.api_key)
    leadpipe_sandbox.exhaust_credits(recover_after_account_calls=3)
    triggers = [make_trigger(conn_id=conn_id, interval=0.2) for _ in range(500)]

    events = await asyncio.gather(*(t.run().__anext__() for t in triggers))

    assert {e.payload["status"] for e in events} == {"success"}
    assert {e.payload["account"]["credits"]["remaining"] for e in events} == {500}
    # 3 exhausted answers, then the recovered one reached all 500 triggers at once.
    assert leadpipe_sandbox.request_count(ACCOUNT) == 4


async def test_connections_are_isolated(leadpipe_sandbox, connect):
    from leadpipe_sandbox import Fault

    healthy = connect("lp_healthy", leadpipe_sandbox.api_key)
    revoked = connect("lp_revoked", "sk_test_revoked")
    expired = connect("lp_expired", "sk_test_expired")
    leadpipe_sandbox.configure_key("sk_test_outage")
    outage = connect("lp_outage", "sk_test_outage")
    leadpipe_sandbox.queue_faults(Fault.unavailable(count=1000), api_key="sk_test_outage")
    leadpipe_sandbox.exhaust_credits(recover_after_account_calls=2)

    waiting_on_outage = asyncio.create_task(make_trigger(conn_id=outage).run().__anext__())
    done = await asyncio.gather(
        *(make_trigger(conn_id=conn).run().__anext__() for conn in (healthy, revoked, expired))
    )

    assert [e.payload["status"] for e in done] == ["success", "failure", "failure"]
    assert done[1].payload["error"] == "LeadpipeAuthError"
    assert done[2].payload["error"] == "LeadpipeAccountError"
    await eventually(
        lambda: leadpipe_sandbox.request_count(ACCOUNT, api_key="sk_test_outage", status=503) >= 2,
        interval=0.05,
    )
    assert not waiting_on_outage.done()  # a 503 storm is waited out, not fatal
    assert leadpipe_sandbox.request_count(ACCOUNT, api_key=leadpipe_sandbox.api_key) == 3
    waiting_on_outage.cancel()


async def test_two_connection_ids_with_one_key_share_one_poll(leadpipe_sandbox, connect):
    """Sharing follows what a connection resolves to (base URL + key), not its id."""
    first = connect("lp_first", leadpipe_sandbox.api_key)
    second = connect("lp_second", leadpipe_sandbox.api_key)
    leadpipe_sandbox.exhaust_credits(recover_after_account_calls=3)
    triggers = [make_trigger(conn_id=(first, second)[i % 2], interval=0.2) for i in range(200)]

    events = await asyncio.gather(*(t.run().__anext__() for t in triggers))

    assert {e.payload["status"] for e in events} == {"success"}
    # One poll for both ids: 3 exhausted answers, then the recovered one, as for a single id.
    assert leadpipe_sandbox.request_count(ACCOUNT) == 4


async def test_a_rotated_key_never_serves_the_old_accounts_answer_to_a_new_subscriber(
    leadpipe_sandbox, connect
):
    old_key, new_key = leadpipe_sandbox.api_key, "sk_test_rotated"
    leadpipe_sandbox.set_organization(name="Old Account", api_key=old_key)
    leadpipe_sandbox.exhaust_credits(api_key=old_key)  # the old account: nothing left, keeps waiting
    leadpipe_sandbox.configure_key(new_key)
    leadpipe_sandbox.set_organization(name="New Account", api_key=new_key)
    conn_id = connect("lp_rotating", old_key)
    # A 30 s interval: the old account's answer stays fresh, and would be handed to any newcomer
    # sharing its poll, for 30 s.
    waiting = asyncio.create_task(make_trigger(conn_id=conn_id, min_credits=1, interval=30).run().__anext__())
    while leadpipe_sandbox.request_count(ACCOUNT, api_key=old_key) < 1:
        await asyncio.sleep(0.01)

    connect(conn_id, new_key)  # the same id now resolves to another account
    newcomer = make_trigger(conn_id=conn_id, min_credits=1, interval=30)
    # 20 s: a safety net below the 30 s interval for which the old answer would stay fresh.
    event = await asyncio.wait_for(newcomer.run().__anext__(), timeout=20)

    assert event.payload["status"] == "success"
    assert event.payload["account"]["organization"]["name"] == "New Account"
    assert leadpipe_sandbox.request_count(ACCOUNT, api_key=new_key) == 1
    assert leadpipe_sandbox.request_count(ACCOUNT, api_key=old_key) == 1  # the old poll goes on alone
    assert not waiting.done()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
