"""LeadpipePlugin registers the page on Airflow >= 3.1 only, and its app refuses strangers."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_leadpipe import get_provider_info
from airflow_provider_leadpipe.plugins.leadpipe import LeadpipePlugin


def test_plugin_is_listed_in_provider_info_and_entry_point():
    from importlib.metadata import entry_points

    listed = get_provider_info()["plugins"]
    assert listed == [
        {"name": "leadpipe", "plugin-class": "airflow_provider_leadpipe.plugins.leadpipe.LeadpipePlugin"}
    ]
    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.name == "leadpipe"]
    assert entry.load() is LeadpipePlugin


@pytest.mark.skipif(AIRFLOW_V_3_1_PLUS, reason="Airflow >= 3.1 has external views")
def test_below_3_1_the_plugin_registers_nothing():
    assert not getattr(LeadpipePlugin, "fastapi_apps", [])
    assert not getattr(LeadpipePlugin, "external_views", [])


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="external views arrived in Airflow 3.1")
def test_nav_entry_and_task_instance_view():
    (app,) = LeadpipePlugin.fastapi_apps
    assert app["url_prefix"] == "/leadpipe"
    views = {view["destination"]: view for view in LeadpipePlugin.external_views}
    assert views["nav"]["name"] == "Leadpipe" and views["nav"]["href"].endswith("/leadpipe/credits")
    assert views["nav"]["url_route"]  # shown inside Airflow (iframe), not in a new tab
    ti = views["task_instance"]["href"]
    assert all(f"{{{name}}}" in ti for name in ("DAG_ID", "RUN_ID", "TASK_ID", "MAP_INDEX"))


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="external views arrived in Airflow 3.1")
@pytest.mark.parametrize("path", ["/credits", "/credits/report?dag_id=d&run_id=r&task_id=t"])
def test_routes_refuse_unauthenticated_requests(path):
    from fastapi.testclient import TestClient

    from airflow_provider_leadpipe.plugins.app import create_app

    client = TestClient(create_app())
    response = client.get(path)
    assert response.status_code in (401, 403)
    assert "credits left" not in response.text
    assert client.post("/credits").status_code in (401, 403, 405)


@pytest.fixture
def listed(airflow_db, monkeypatch):
    """The page's data layer: three listed connections, each failing with a connection error; no reports."""
    from airflow_provider_leadpipe.plugins import data

    async def statuses(conn_ids):
        return {c: data.Status(error=f"down: {c}", error_type="LeadpipeConnectionError") for c in conn_ids}

    fetched: list[list[str]] = []

    async def recording(conn_ids):
        fetched.append(list(conn_ids))
        return await statuses(conn_ids)

    ids = ["leadpipe_default", "team a/b&c", "<odd>"]
    monkeypatch.setattr(data, "leadpipe_conn_ids", lambda: ids)
    monkeypatch.setattr(data, "fetch_statuses", recording)
    monkeypatch.setattr(data, "report_dag_ids", lambda: [])
    monkeypatch.setattr(data, "credit_reports", lambda dag_ids: {})
    return fetched


def _card_ids(html: str) -> list[str]:
    import re

    return re.findall(r'<section class="card[^"]*" data-conn-id="([^"]+)">', html)


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="external views arrived in Airflow 3.1")
def test_conn_id_shows_that_connection_alone(listed):
    """What the tasks' "Leadpipe connection" link opens: that card only, its account alone fetched."""
    from airflow_provider_leadpipe.utils.links import credits_url
    from tests.plugin_client import signed_in_client

    client = signed_in_client("admin")
    assert _card_ids(client.get("/credits").text) == ["leadpipe_default", "team a/b&amp;c", "&lt;odd&gt;"]
    path = credits_url("team a/b&c").removeprefix("/leadpipe")  # the app is mounted under /leadpipe
    response = client.get(path)
    assert response.status_code == 200
    assert _card_ids(response.text) == ["team a/b&amp;c"]
    assert listed[-1] == ["team a/b&c"]
    assert "<odd>" not in client.get("/credits", params={"conn_id": "<odd>"}).text  # escaped


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="external views arrived in Airflow 3.1")
@pytest.mark.parametrize("asked", ["leadpipe_missing", "leadpipe_default"])
def test_conn_id_not_listed_or_not_readable_says_the_same(listed, asked, monkeypatch):
    """An unknown connection and one the user may not read get the same answer: no card, no fetch."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    from tests.plugin_client import signed_in_client

    def may_read(self, *, method, user, details=None):
        return details is None or details.conn_id != "leadpipe_default"

    # The auth manager refuses this user leadpipe_default (listed), as a team rule would.
    monkeypatch.setattr(SimpleAuthManager, "is_authorized_connection", may_read)
    client = signed_in_client("admin")
    response = client.get("/credits", params={"conn_id": asked})
    assert response.status_code == 200
    assert _card_ids(response.text) == []
    assert f"No <code>leadpipe</code> connection <code>{asked}</code> that you may read" in response.text
    assert 'href="/leadpipe/credits"' in response.text
    assert listed[-1] == []
