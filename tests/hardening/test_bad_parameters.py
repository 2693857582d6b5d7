"""Bad operator, sensor, trigger and hook arguments: a LeadpipeConfigError naming the argument.

A bad literal fails when the DAG file is parsed (construction). A templated argument that renders
to a bad value fails at the start of ``execute`` (first use) -- and in both cases the sandbox
counts zero requests and no file is written. Connection problems (a base URL with a path, query or
credentials) can only show at first use; they name the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.operators.account import LeadpipeAccountStatusOperator
from airflow_provider_leadpipe.operators.credit_report import LeadpipeCreditReportOperator
from airflow_provider_leadpipe.operators.pixels import (
    LeadpipeCreatePixelOperator,
    LeadpipeUpdatePixelOperator,
)
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from tests.hardening.figures import record, tally

pytestmark = pytest.mark.timeout(60)

Sensor = LeadpipeAccountSensor
Status = LeadpipeAccountStatusOperator
Report = LeadpipeCreditReportOperator
Visitors = LeadpipeVisitorsToStorageOperator
CreatePixel = LeadpipeCreatePixelOperator
UpdatePixel = LeadpipeUpdatePixelOperator

FILE = "/tmp/leadpipe-hardening-never-written.jsonl"
TRIGGER = {"leadpipe_conn_id": "leadpipe_default", "poll_interval": 5.0, "deadline": 2e9}

# (operator class, keyword arguments, the argument the message must name)
BAD_ARGUMENTS: list[tuple[type, dict[str, Any], str]] = [
    (Sensor, {"min_credits": -5}, "min_credits"),
    (Sensor, {"min_credits": "lots"}, "min_credits"),
    (Sensor, {"min_credits": float("nan")}, "min_credits"),
    (Sensor, {"max_percent_used": 150}, "max_percent_used"),
    (Sensor, {"max_percent_used": -0.5}, "max_percent_used"),
    (Sensor, {"min_audience_slots": 1.5}, "min_audience_slots"),
    (Sensor, {"min_audience_slots": -1}, "min_audience_slots"),
    (Sensor, {"require_healthy": "maybe"}, "require_healthy"),
    (Sensor, {"fail_on_statuses": [3]}, "fail_on_statuses"),
    (Sensor, {"leadpipe_conn_id": ""}, "leadpipe_conn_id"),
    (Sensor, {"leadpipe_conn_id": None}, "leadpipe_conn_id"),
    (Status, {"min_credits": -1}, "min_credits"),
    (Status, {"min_credits": "ten"}, "min_credits"),
    (Status, {"require_healthy": "perhaps"}, "require_healthy"),
    (Status, {"leadpipe_conn_id": "  "}, "leadpipe_conn_id"),
    (Report, {"leadpipe_conn_id": ""}, "leadpipe_conn_id"),
    (Report, {"leadpipe_conn_id": 5}, "leadpipe_conn_id"),
    (Report, {"min_credits": -1}, "min_credits"),
    (Report, {"max_percent_used": 150}, "max_percent_used"),
    (Report, {"exhaustion_margin_hours": "soon"}, "exhaustion_margin_hours"),
    (Report, {"notifiers": "slack"}, "notifiers"),
    (Report, {"notifiers": [object()]}, "notifiers[0]"),
    (Visitors, {"path": FILE, "timeframe": "1y"}, "timeframe"),
    (Visitors, {"path": FILE, "timeframe": "7D"}, "timeframe"),
    (Visitors, {"path": FILE, "domain": "a" * 256}, "domain"),
    (Visitors, {"path": FILE, "visitor_email": "nobody"}, "visitor_email"),
    (Visitors, {"path": FILE, "compression": "zip"}, "compression"),
    (Visitors, {"path": FILE, "concurrency": 0}, "concurrency"),
    (Visitors, {"path": FILE, "concurrency": 17}, "concurrency"),
    (Visitors, {"path": FILE, "concurrency": "4"}, "concurrency"),
    (Visitors, {"path": FILE, "on_incomplete": "ignore"}, "on_incomplete"),
    (Visitors, {"path": FILE, "on_incomplete": False}, "on_incomplete"),
    (Visitors, {"path": ""}, "path"),
    (Visitors, {"path": "s3://bucket/leadpipe/"}, "path"),
    (Visitors, {"path": 42}, "path"),
    (Visitors, {"path": FILE, "leadpipe_conn_id": ""}, "leadpipe_conn_id"),
    (CreatePixel, {"domain": ""}, "domain"),
    (CreatePixel, {"domain": "x" * 256}, "domain"),
    (CreatePixel, {"domain": "acme.io", "name": "n" * 256}, "name"),
    (CreatePixel, {"domain": "acme.io", "included_paths": ["blog"]}, "included_paths[0]"),
    (CreatePixel, {"domain": "acme.io", "included_paths": "blog"}, "included_paths"),
    (CreatePixel, {"domain": "acme.io", "excluded_paths": ["/"]}, "excluded_paths[0]"),
    (CreatePixel, {"domain": "acme.io", "excluded_paths": ["/p"] * 51}, "excluded_paths"),
    (
        CreatePixel,
        {"domain": "acme.io", "included_paths": ["/a"], "excluded_paths": ["/b"]},
        "included_paths",
    ),
    (CreatePixel, {"domain": "acme.io", "if_exists": "maybe"}, "if_exists"),
    (CreatePixel, {"domain": "acme.io", "leadpipe_conn_id": ""}, "leadpipe_conn_id"),
    (UpdatePixel, {"pixel_id": "", "status": "paused"}, "pixel_id"),
    (UpdatePixel, {"pixel_id": "p1", "status": "deleted"}, "status"),
    (UpdatePixel, {"pixel_id": "p1"}, "nothing to update"),
    (UpdatePixel, {"pixel_id": "p1", "included_paths": ["no-slash"]}, "included_paths[0]"),
    (UpdatePixel, {"pixel_id": "p1", "status": "paused", "leadpipe_conn_id": ""}, "leadpipe_conn_id"),
    (LeadpipeAccountTrigger, {**TRIGGER, "min_credits": -1}, "min_credits"),
    (LeadpipeAccountTrigger, {**TRIGGER, "bogus": 1}, "bogus"),
    (LeadpipeAccountTrigger, {**TRIGGER, "poll_interval": -1}, "poll_interval"),
    (LeadpipeAccountTrigger, {**TRIGGER, "deadline": float("nan")}, "deadline"),
    (LeadpipeAccountTrigger, {**TRIGGER, "leadpipe_conn_id": ""}, "leadpipe_conn_id"),
]


def _build(cls: type, kwargs: dict[str, Any]) -> Any:
    return cls(**kwargs) if cls is LeadpipeAccountTrigger else cls(task_id="bad_input", **kwargs)


def _case_id(case: tuple[type, dict[str, Any], str]) -> str:
    cls, kwargs, name = case
    return f"{cls.__name__}-{name}-{next(iter(kwargs.values()))!r:.20}"


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=_case_id)
def test_bad_literal_fails_at_construction_naming_the_argument(case):
    cls, kwargs, name = case
    with pytest.raises(LeadpipeConfigError) as info:
        _build(cls, kwargs)
    assert name in str(info.value)
    tally("bad input", "bad literal arguments refused at construction", cls.__name__, requests=0)


# Templated arguments cannot be checked when the DAG is parsed; once rendered they must fail
# before the first request. (operator class, templated kwargs, rendered values, named argument)
RENDERED_BAD: list[tuple[type, dict[str, Any], dict[str, Any], str]] = [
    (Sensor, {"min_credits": "{{ params.c }}"}, {"min_credits": "-3"}, "min_credits"),
    (Sensor, {"max_percent_used": "{{ params.p }}"}, {"max_percent_used": "101"}, "max_percent_used"),
    (Status, {"min_credits": "{{ params.c }}"}, {"min_credits": "-3"}, "min_credits"),
    (
        Report,
        {"exhaustion_margin_hours": "{{ params.h }}"},
        {"exhaustion_margin_hours": "-1"},
        "exhaustion_margin_hours",
    ),
    (
        Status,
        {"require_healthy": "{{ params.f }}"},
        {"require_healthy": "sometimes"},
        "require_healthy",
    ),
    (Visitors, {"path": FILE, "timeframe": "{{ params.t }}"}, {"timeframe": "1y"}, "timeframe"),
    (Visitors, {"path": FILE, "visitor_email": "{{ params.e }}"}, {"visitor_email": "x"}, "visitor_email"),
    (Visitors, {"path": "{{ params.out }}"}, {"path": "  "}, "path"),
    (Visitors, {"path": "{{ params.out }}"}, {"path": "file:///tmp/"}, "path"),
    (CreatePixel, {"domain": "{{ params.d }}"}, {"domain": ""}, "domain"),
    (
        CreatePixel,
        {"domain": "acme.io", "included_paths": ["{{ params.p }}"]},
        {"included_paths": ["p"]},
        "included_paths[0]",
    ),
    (UpdatePixel, {"pixel_id": "{{ params.id }}", "status": "paused"}, {"pixel_id": " "}, "pixel_id"),
    (UpdatePixel, {"pixel_id": "p1", "status": "{{ params.s }}"}, {"status": "on"}, "status"),
]


@pytest.mark.parametrize("case", RENDERED_BAD, ids=lambda case: f"{case[0].__name__}-{case[3]}")
def test_rendered_bad_value_fails_at_first_use_before_any_request(leadpipe_sandbox, case):
    cls, templated, rendered, name = case
    op = _build(cls, templated)  # a template is accepted at parse time ...
    for field, value in rendered.items():
        setattr(op, field, value)  # ... and rendered before execute
    with pytest.raises(LeadpipeConfigError) as info:
        op.execute({})
    assert name in str(info.value)
    assert leadpipe_sandbox.request_count() == 0
    tally("bad input", "templated arguments rendering bad: at execute", requests=0)


# A connection whose base URL carries a path, query, fragment or credentials: each operator and the
# sensor refuse it at first use, naming the connection, before sending anything.
BAD_URL_SUFFIXES = ["/v1", "/v1/data/account", "?debug=1", "#frag"]


def _with_userinfo(url: str) -> str:
    return url.replace("://", "://admin:hunter2@")


def _operators(path: str) -> list[Callable[[], Any]]:
    return [
        lambda: Sensor(task_id="s", leadpipe_conn_id="leadpipe_bad_url", poke_interval=1, timeout=5),
        lambda: Status(task_id="a", leadpipe_conn_id="leadpipe_bad_url"),
        lambda: Report(task_id="r", leadpipe_conn_id="leadpipe_bad_url"),
        lambda: Visitors(task_id="v", leadpipe_conn_id="leadpipe_bad_url", path=path),
        lambda: CreatePixel(task_id="c", leadpipe_conn_id="leadpipe_bad_url", domain="acme.io"),
        lambda: UpdatePixel(task_id="u", leadpipe_conn_id="leadpipe_bad_url", pixel_id="p1", status="paused"),
    ]


def test_bad_base_url_fails_every_operator_at_first_use(leadpipe_sandbox, conn_to, tmp_path):
    urls = [leadpipe_sandbox.url + suffix for suffix in BAD_URL_SUFFIXES] + [
        _with_userinfo(leadpipe_sandbox.url)
    ]
    out = tmp_path / "out" / "visitors.jsonl"
    failures = 0
    for url in urls:
        conn_to(url, conn_id="leadpipe_bad_url", password=leadpipe_sandbox.api_key)
        for make in _operators(str(out)):
            op = make()
            with pytest.raises(LeadpipeConfigError) as info:
                op.execute({})
            message = str(info.value)
            assert "'leadpipe_bad_url'" in message and "base URL refused" in message, message
            assert "hunter2" not in message
            failures += 1
    assert leadpipe_sandbox.request_count() == 0
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    record(
        "bad input",
        f"{len(urls)} bad base URLs x 6 operators/sensor: {failures} refusals at first use",
        requests=0,
    )


def test_hook_methods_check_arguments_before_any_request(leadpipe_sandbox):
    hook = LeadpipeHook()
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("timeframe", lambda: hook.iter_visitors(timeframe="1y")),
        ("email", lambda: hook.iter_visitors(email="nobody")),
        ("domain", lambda: hook.iter_visitor_pages(domain="d" * 256)),
        ("concurrency", lambda: hook.aiter_visitors(concurrency=0)),
        ("timeframe", lambda: hook.aiter_visitor_pages(timeframe=7)),
        ("domain", lambda: hook.create_pixel("")),
        ("included_paths[0]", lambda: hook.create_pixel("acme.io", included_paths=["x"])),
        ("if_exists", lambda: hook.create_pixel("acme.io", if_exists="ignore")),
        ("pixel_id", lambda: hook.update_pixel("", status="paused")),
        ("status", lambda: hook.update_pixel("p1", status="gone")),
        ("nothing to update", lambda: hook.update_pixel("p1")),
    ]
    for name, call in calls:
        with pytest.raises(LeadpipeConfigError) as info:
            call()  # the iterators check when created, not when first iterated
        assert name in str(info.value)
    assert leadpipe_sandbox.request_count() == 0
    record("bad input", f"{len(calls)} bad hook arguments (visitors, pixels)", requests=0)


def test_bad_hook_settings_fail_in_the_trigger_as_an_error_event(leadpipe_sandbox, conn_to):
    """A trigger on a connection with a bad base URL ends with one ``error`` event, never a hang."""
    conn_to(leadpipe_sandbox.url + "/v1", conn_id="leadpipe_bad_url", password=leadpipe_sandbox.api_key)
    trigger = LeadpipeAccountTrigger(**{**TRIGGER, "leadpipe_conn_id": "leadpipe_bad_url"})

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(collect(), 30))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] in ("error", "failure"), payload
    assert "base URL refused" in payload["message"] and "leadpipe_bad_url" in payload["message"]
    assert leadpipe_sandbox.request_count() == 0
