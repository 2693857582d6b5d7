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
