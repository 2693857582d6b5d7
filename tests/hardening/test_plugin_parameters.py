"""Every parameter of every route of the credits page's app, fuzzed: a bad value answers 4xx naming
the parameter, never 500.

The routes and their parameters are read from the app itself (``app.routes``), so a route or a
parameter added later is fuzzed too; a parameter whose declared type this test does not know fails
the test until it is classified here. Each parameter gets every bad value while the others keep a
good one, as a signed-in admin (so what answers is the parameter check, not the sign-in).
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from tests.hardening.figures import record
from tests.plugin_client import signed_in_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="the credits page exists from Airflow 3.1"),
]

#: Not a map index: unicode digits (superscript, fullwidth, Arabic-Indic), signs doubled, below -1,
#: past a database integer, empty or blank, fractions, exponents, hex, words, a NUL.
BAD_NUMBERS = [
    "²",
    "\uff11",  # fullwidth 1
    "٣",
    "--1",
    "+-1",
    "-2",
    "-10",
    str(2**31),
    str(2**63),
    "9" * 40,
    "",
    " ",
    "1.5",
    "1e3",
    "0x10",
    "abc",
    "nan",
    "-1\x00",
    "{MAP_INDEX}x",
]
#: Not an Airflow id (dag, run or task): empty, longer than Airflow's 250 characters, control characters.
BAD_IDS = ["", "x" * 251, "a\x00b", "a\nb", "\t", "\x7f"]
#: Must be accepted where the type allows them: the UI's unfilled placeholder, ids Airflow allows.
GOOD = {
    "number": ["-1", "0", "7", str(2**31 - 1), "{MAP_INDEX}"],
    "id": ["d", "manual__2026-01-01T00:00:00+00:00", "group.task", "dág-1", "x" * 250],
}
BAD = {"number": BAD_NUMBERS, "id": BAD_IDS}
#: Every parameter also gets every other bad value: whatever it declares, no value answers 500.
ANY_VALUE = sorted({*BAD_NUMBERS, *BAD_IDS, "😀", "' OR 1=1 --", "<script>", "%", "~", "{DAG_ID}"})


def _kind(annotation: Any) -> str:
    """``number`` for a parameter that holds an int (alone or in a union), ``id`` for plain text."""
    if annotation is int or int in typing.get_args(annotation):
        return "number"
    if typing.get_origin(annotation) is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    if any(_kind(arg) == "number" for arg in typing.get_args(annotation) if arg is not type(None)):
        return "number"
    if annotation is str or set(typing.get_args(annotation)) == {str, type(None)}:  # optional text too
        return "id"
    raise AssertionError(f"classify the parameter type {annotation!r} in this test")


def _routes() -> list[tuple[str, dict[str, str]]]:
    """Each GET route of the page's app with its query and path parameters and their kinds."""
    from fastapi.dependencies.utils import get_flat_dependant
    from fastapi.routing import APIRoute

    from airflow_provider_leadpipe.plugins.app import create_app

    routes = []
    for route in create_app().routes:
        if not isinstance(route, APIRoute):
            continue
        flat = get_flat_dependant(route.dependant)
        params = {field.alias: _kind(field.field_info.annotation) for field in flat.query_params}
        params.update({field.alias: _kind(field.field_info.annotation) for field in flat.path_params})
        routes.append((route.path, params))
    return routes


def _url(path: str, values: dict[str, str], kinds: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The route's path with its path parameters filled in, and the query parameters."""
    for name in kinds:
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", values.pop(name))
    return path, values


def test_every_route_answers_a_bad_parameter_with_4xx_never_500(airflow_db):
    client = signed_in_client("admin")
    routes = _routes()
    assert {path for path, _ in routes} >= {"/credits", "/credits/report"}
    refused: list[tuple[str, str, str, int]] = []  # what answered anything but 422 to a bad value
    failed: list[tuple[str, str, str, int]] = []  # what answered 5xx to any value
    rejected_good: list[tuple[str, str, str, int]] = []
    requests = 0

    def get(path: str, values: dict[str, str], kinds: dict[str, str]) -> Any:
        nonlocal requests
        requests += 1
        url, query = _url(path, dict(values), kinds)
        return client.get(url, params=query)

    for path, kinds in routes:
        good = {name: GOOD[kind][0] for name, kind in kinds.items()}
        assert get(path, good, kinds).status_code == 200, path
        for name, kind in kinds.items():
            for value in GOOD[kind]:
                response = get(path, {**good, name: value}, kinds)
                if response.status_code != 200:
                    rejected_good.append((path, name, value, response.status_code))
            for value in BAD[kind]:
                response = get(path, {**good, name: value}, kinds)
                named = response.status_code == 422 and any(
                    name in error["loc"] for error in response.json()["detail"]
                )
                if not named:
                    refused.append((path, name, value, response.status_code))
            for value in ANY_VALUE:
                response = get(path, {**good, name: value}, kinds)
                if response.status_code >= 500:
                    failed.append((path, name, value, response.status_code))

    assert failed == [], failed
    assert refused == [], refused
    assert rejected_good == [], rejected_good
    # The page's one filter (the tasks' "Leadpipe connection" link sets it).
    assert dict(routes)["/credits"] == {"conn_id": "id"}
    # What the task-instance view declares (the UI fills these four placeholders).
    assert dict(routes)["/credits/report"] == {
        "dag_id": "id",
        "run_id": "id",
        "task_id": "id",
        "map_index": "number",
    }
    parameters = sum(len(kinds) for _, kinds in routes)
    record(
        "plugin routes",
        f"{len(routes)} routes, {parameters} parameters x bad values (unicode digits, signs, huge, empty, "
        "non-numbers, control characters): 422 naming the parameter, no 5xx",
        requests=requests,
        events=requests - len(routes),
    )
