"""The credits page's data: connections listed, statuses fetched side by side, reports read back."""

from __future__ import annotations

import json

import pytest

from airflow_provider_leadpipe.plugins import data
from leadpipe_sandbox import Fault

ACCOUNT = "/v1/data/account"
SLOW_KEY = "sk_test_plugin_slow_account"


@pytest.fixture(autouse=True)
def fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


async def test_twenty_connections_one_hanging_the_others_answer_and_it_times_out(
    leadpipe_sandbox, monkeypatch
):
    ids = [f"leadpipe_{n:02d}" for n in range(19)]
    for conn_id in ids:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", leadpipe_sandbox.connection_json())
    leadpipe_sandbox.configure_key(SLOW_KEY)
    leadpipe_sandbox.queue_faults(Fault.slow(seconds=8, count=5), api_key=SLOW_KEY)
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_HANGING", leadpipe_sandbox.connection_json(SLOW_KEY))

    statuses = await data.fetch_statuses([*ids, "leadpipe_hanging"])

    assert all(statuses[c].account and statuses[c].account["healthy"] is not None for c in ids)
    hanging = statuses["leadpipe_hanging"]
    assert hanging.account is None and hanging.error_type in {"Timeout", "LeadpipeConnectionError"}
    assert SLOW_KEY not in (hanging.error or "")


async def test_answers_are_cached_then_fetched_again(leadpipe_sandbox):
    await data.fetch_statuses(["leadpipe_default"], now=1000.0)
    calls = leadpipe_sandbox.request_count(ACCOUNT)
    cached = await data.fetch_statuses(["leadpipe_default"], now=1000.0 + data.CACHE_SECONDS - 1)
    assert leadpipe_sandbox.request_count(ACCOUNT) == calls
    assert cached["leadpipe_default"].account is not None
    await data.fetch_statuses(["leadpipe_default"], now=1000.0 + data.CACHE_SECONDS + 1)
    assert leadpipe_sandbox.request_count(ACCOUNT) == calls + 1


async def test_a_revoked_key_shows_the_typed_error_without_the_key(leadpipe_sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_REVOKED", leadpipe_sandbox.connection_json("sk_test_revoked"))
    status = (await data.fetch_statuses(["leadpipe_revoked"]))["leadpipe_revoked"]
    assert status.error_type == "LeadpipeAuthError"
    assert "sk_test_revoked" not in status.error


def test_environment_connections_of_type_leadpipe_are_listed():
    environ = {
        "AIRFLOW_CONN_LP_JSON": json.dumps({"conn_type": "leadpipe", "password": "sk_x"}),
        "AIRFLOW_CONN_LP_URI": "leadpipe://:sk_x@api.aws53.cloud",
        "AIRFLOW_CONN_PG": "postgresql://u:p@h/db",
        "AIRFLOW_CONN_BROKEN": "{not json",
        "HOME": "/root",
    }
    assert sorted(data._env_conn_ids(environ)) == ["lp_json", "lp_uri"]


def test_db_and_environment_connections_are_listed(airflow_db, monkeypatch):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(Connection(conn_id="leadpipe_in_db", conn_type="leadpipe", password="sk_db"))
        session.add(Connection(conn_id="not_leadpipe", conn_type="http", host="example.com"))
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_IN_ENV", "leadpipe://:sk_env@127.0.0.1:1")
    try:
        ids = data.leadpipe_conn_ids()
        assert {"leadpipe_in_db", "leadpipe_in_env"} <= set(ids)
        assert "not_leadpipe" not in ids
    finally:
        with create_session() as session:
            session.query(Connection).filter(
                Connection.conn_id.in_(["leadpipe_in_db", "not_leadpipe"])
            ).delete()
