"""The "Leadpipe connection" extra link: its URL, the tasks that carry it, and Airflow's view of it."""

from __future__ import annotations

import importlib
import inspect
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.providers.common.compat.sdk import DAG, BaseOperator, BaseOperatorLink
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_leadpipe import get_provider_info
from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor
from airflow_provider_leadpipe.utils.links import LeadpipeCreditsLink, credits_url
from tests.unit.conftest import API_KEY

CLASS_PATH = "airflow_provider_leadpipe.utils.links.LeadpipeCreditsLink"
ODD_IDS = ["a b", "x&conn_id=other", "team/prod#1", "100%", "q?x=1", "dág", "+plus", "a\\b"]


def _conn_id_of(url: str) -> str:
    (value,) = parse_qs(urlsplit(url).query, strict_parsing=True)["conn_id"]
    return value


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, "/leadpipe/credits?conn_id=leadpipe_default"),
        ("http://localhost:8080", "/leadpipe/credits?conn_id=leadpipe_default"),
        ("https://airflow.example.com/team-a/", "/team-a/leadpipe/credits?conn_id=leadpipe_default"),
        ("/sub", "/sub/leadpipe/credits?conn_id=leadpipe_default"),
    ],
)
def test_the_link_is_the_credits_page_of_the_connection_under_the_base_url(monkeypatch, base_url, expected):
    if base_url is None:
        monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", base_url)
    sensor = LeadpipeAccountSensor(task_id="wait", leadpipe_conn_id="leadpipe_default")
    assert LeadpipeCreditsLink().get_link(sensor, ti_key=None) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("conn_id", ODD_IDS)
def test_odd_connection_ids_are_percent_encoded_and_read_back_whole(conn_id):
    url = credits_url(conn_id)
    assert urlsplit(url).path == "/leadpipe/credits"
    assert _conn_id_of(url) == conn_id
    query = urlsplit(url).query
    assert query.count("=") == 1 and "&" not in query and " " not in url and "#" not in url


@pytest.mark.parametrize("conn_id", ["{{ params.conn }}", "{% if x %}a{% endif %}", "  "])
def test_an_id_never_rendered_gives_no_link(conn_id):
    """A task that failed before rendering keeps its template: no link, rather than a wrong one."""
    task = SimpleNamespace(leadpipe_conn_id=conn_id)  # all the link reads of the task
    assert LeadpipeCreditsLink().get_link(task, ti_key=None) == ""  # type: ignore[arg-type]
    assert LeadpipeCreditsLink().get_link(SimpleNamespace(), ti_key=None) == ""  # type: ignore[arg-type]


def test_the_link_holds_no_key(leadpipe_conn):
    """The URL is built from the connection id alone: the key of that connection is not in it."""
    conn_id = leadpipe_conn("leadpipe_keyed")
    sensor = LeadpipeAccountSensor(task_id="wait", leadpipe_conn_id=conn_id)
    url = LeadpipeCreditsLink().get_link(sensor, ti_key=None)  # type: ignore[arg-type]
    assert _conn_id_of(url) == conn_id
    assert API_KEY not in url and API_KEY[-8:] not in url


def _task_classes() -> list[type]:
    info = get_provider_info()
    found = {}
    for kind in ("operators", "sensors"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                for name, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
                    if issubclass(cls, BaseOperator) and name.startswith("Leadpipe") and "Base" not in name:
                        found[name] = cls
    return [found[name] for name in sorted(found)]


def test_every_operator_and_sensor_is_found():
    names = {cls.__name__ for cls in _task_classes()}
    assert {"LeadpipeAccountSensor", "LeadpipeAudienceRunSensor", "LeadpipeCreditReportOperator"} <= names
    assert len(names) >= 10


@pytest.mark.parametrize("cls", _task_classes(), ids=lambda cls: cls.__name__)
def test_every_operator_and_sensor_carries_the_link_from_3_1(cls):
    links = [type(link) for link in cls.operator_extra_links]
    # Airflow 3.1+ has the credits page; before it there is nothing to link to, so no link.
    assert links == ([LeadpipeCreditsLink] if AIRFLOW_V_3_1_PLUS else [])


def test_provider_info_registers_the_link_class():
    assert get_provider_info()["extra-links"] == [CLASS_PATH]
    module, _, name = CLASS_PATH.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls is LeadpipeCreditsLink and issubclass(cls, BaseOperatorLink)
    # The class path a serialized Airflow 2 DAG keeps for the link is the one registered.
    assert f"{cls.__module__}.{cls.__qualname__}" == CLASS_PATH


def test_providers_manager_loads_the_link_class():
    from airflow.providers_manager import ProvidersManager

    assert CLASS_PATH in ProvidersManager().extra_links_class_names


def test_the_link_survives_dag_serialization():
    """What the API server reads: the DAG as the dag-processor serialized it."""
    try:
        from airflow.serialization.serialized_objects import DagSerialization as Serializer
    except ImportError:  # Airflow < 3.3
        from airflow.serialization.serialized_objects import SerializedDAG as Serializer  # type: ignore[no-redef]

    with DAG("leadpipe_links", schedule=None) as dag:
        LeadpipeAccountSensor(task_id="wait", leadpipe_conn_id="team/prod#1", deferrable=True)
    task = Serializer.from_dict(Serializer.to_dict(dag)).get_task("wait")
    if not AIRFLOW_V_3_1_PLUS:
        assert "Leadpipe connection" not in task.extra_links
        return
    assert {link.name: link.xcom_key for link in task.operator_extra_links} == {
        "Leadpipe connection": "_link_LeadpipeCreditsLink"
    }
