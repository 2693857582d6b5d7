"""What every Leadpipe operator and the sensor share: ``hook_params`` and a hook closed where opened.

Each task runs against a mocked API (respx); the clients it created are watched from outside.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from airflow_provider_leadpipe.exceptions import LeadpipeAuthError, LeadpipeConfigError, LeadpipeServerError
from airflow_provider_leadpipe.operators.account import LeadpipeAccountStatusOperator
from airflow_provider_leadpipe.operators.credit_report import LeadpipeCreditReportOperator
from airflow_provider_leadpipe.operators.pixels import (
    LeadpipeCreatePixelOperator,
    LeadpipeUpdatePixelOperator,
)
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor
from tests.unit.conftest import BASE_URL, account_data
from tests.unit.hooks.test_pixels import PIXEL_ID, PIXELS_URL, created
from tests.unit.hooks.test_visitors import VISITORS_URL, FakeVisitorsApi, visitors

ACCOUNT_URL = f"{BASE_URL}/v1/data/account"


class FakeTI:
    dag_id, run_id, task_id, map_index = "dag", "run", "task", -1

    def xcom_pull(self, **kwargs):
        return None


def account_status(**kw):
    return LeadpipeAccountStatusOperator(task_id="account", **kw), (
        "GET",
        ACCOUNT_URL,
        {"data": account_data()},
    )


def credit_report(**kw):
    return LeadpipeCreditReportOperator(task_id="report", **kw), (
        "GET",
        ACCOUNT_URL,
        {"data": account_data()},
    )


def create_pixel(**kw):
    return LeadpipeCreatePixelOperator(task_id="create", domain="acme.com", **kw), (
        "POST",
        PIXELS_URL,
        {"data": created()},
    )


def update_pixel(**kw):
    return LeadpipeUpdatePixelOperator(task_id="update", pixel_id=PIXEL_ID, status="paused", **kw), (
        "PATCH",
        f"{PIXELS_URL}/{PIXEL_ID}",
        {"data": created()},
    )


def sensor(**kw):
    return LeadpipeAccountSensor(task_id="gate", poke_interval=0.01, timeout=5, **kw), (
        "GET",
        ACCOUNT_URL,
        {"data": account_data()},
    )


def visitors_pull(**kw):
    return LeadpipeVisitorsToStorageOperator(task_id="pull", path="/tmp/v.jsonl", **kw), None


TASKS = [account_status, credit_report, create_pixel, update_pixel, sensor]
CONTEXT = {"ti": FakeTI()}


@pytest.fixture
def clients(monkeypatch):
    """Every httpx client (sync or async) created during the test."""
    made: list[httpx.Client | httpx.AsyncClient] = []
    for cls in (httpx.Client, httpx.AsyncClient):
        original = cls.__init__

        def init(self, *args, _original=original, **kwargs):
            _original(self, *args, **kwargs)
            made.append(self)

        monkeypatch.setattr(cls, "__init__", init)
    return made


@pytest.fixture(autouse=True)
def connection_with_retries(leadpipe_conn):
    leadpipe_conn(extra=json.dumps({"max_retries": 3, "timeout": 30}))


@pytest.mark.parametrize("make", TASKS)
def test_every_task_closes_the_client_it_opened(make, clients):
    task, (method, url, body) = make()
    with respx.mock() as router:
        router.route(method=method, url=url).respond(200, json=body)
        task.execute(CONTEXT)
    assert clients and all(client.is_closed for client in clients)


@pytest.mark.parametrize("make", TASKS)
def test_the_client_is_closed_when_the_task_fails(make, clients):
    task, (method, url, _body) = make()
    with respx.mock() as router:
        router.route(method=method, url=url).respond(401, json={"error": {"message": "bad key"}})
        with pytest.raises(LeadpipeAuthError):
            task.execute(CONTEXT)
    assert clients and all(client.is_closed for client in clients)


def test_the_visitor_pull_closes_its_client(clients, tmp_path):
    task = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(tmp_path / "v.jsonl"))
    with respx.mock() as router:
        router.get(VISITORS_URL).mock(side_effect=FakeVisitorsApi(visitors(3)))
        assert task.execute(CONTEXT)["records"] == 3
    assert clients and all(client.is_closed for client in clients)


@pytest.mark.parametrize("make", [m for m in TASKS if m is not sensor])
def test_hook_params_override_the_connection_extras(make):
    task, (method, url, _body) = make(hook_params={"max_retries": 0, "timeout": 7})
    with respx.mock() as router:
        route = router.route(method=method, url=url).respond(503)
        with pytest.raises(LeadpipeServerError):
            task.execute(CONTEXT)
    assert route.call_count == 1  # the connection says 3 retries; hook_params says none
    assert route.calls.last.request.extensions["timeout"]["read"] == 7


def test_the_sensor_uses_its_hook_params():
    task, (_method, url, body) = sensor(hook_params={"timeout": 7, "max_retries": 0})
    with respx.mock() as router:
        route = router.get(url).mock(side_effect=[httpx.Response(503), httpx.Response(200, json=body)])
        task.execute(CONTEXT)
    assert route.call_count == 2  # no hook retry: the 503 was one "not yet" poke
    assert route.calls.last.request.extensions["timeout"]["read"] == 7


@pytest.mark.parametrize(
    "make",
    [
        *TASKS,
        visitors_pull,
    ],
)
@pytest.mark.parametrize(
    ("hook_params", "message"),
    [
        ({"timeout": 0}, r"hook_params\['timeout'\] must be a number of seconds above 0 and up to 600"),
        ({"max_retries": 11}, r"hook_params\['max_retries'\] must be a whole number from 0 to 10"),
        (
            {"retry_backoff": "soon"},
            r"hook_params\['retry_backoff'\] must be a number of seconds above 0 and up to 30, got 'soon'",
        ),
        ({"retries": 1}, r"hook_params has unknown key\(s\) \['retries'\]"),
        (["timeout", 5], r"hook_params must be a mapping"),
    ],
)
def test_bad_hook_params_fail_when_the_dag_is_parsed(make, hook_params, message):
    with pytest.raises(LeadpipeConfigError, match=message):
        make(hook_params=hook_params)
