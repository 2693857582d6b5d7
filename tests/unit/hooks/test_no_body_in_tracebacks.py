"""Nothing of an answer survives in a failure: not in the error, not in any traceback frame.

Airflow 3.0's console task logs and 3.3's with ``DEV`` set print every frame's local variables
(structlog's rich tracebacks). So for every hook method, sync and async, retried and not, an
answer that fails -- a 2xx body that is JSON but not the documented shape, or an error body --
must leave no copy of itself in

- the error's text, ``repr``, arguments and attributes, along its ``__cause__`` / ``__context__``
  chain (a pydantic ``ValidationError`` quotes its input: it must not be in that chain);
- the local variables of every frame of every traceback in that chain, looked into two levels
  deep (containers, and the attributes of objects such as an ``httpx.Response``);
- the Test button's message and the trigger events and log lines.

Each answer carries a canary in every field: a marker, the API key and a person's e-mail. Error
bodies carry the key in the fields whose text the provider deliberately summarizes (the API's own
error message, code, detail, title: shown with the key removed) and the marker and e-mail in all
the others.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import logging
import re
import string
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.exceptions import LeadpipeError, LeadpipeResponseError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from airflow_provider_leadpipe.triggers.audiences import LeadpipeAudienceRunTrigger
from tests.unit.conftest import API_KEY, BASE_URL, account_data
from tests.unit.models.test_audiences import (
    AUDIENCE,
    AUDIENCE_ID,
    DAILY_RUN,
    EXPORT,
    EXPORT_ID,
    QUEUED_RUN,
    RESULTS_200,
    RUN_ID,
    STATS,
)

TESTS = str(Path(__file__).resolve().parents[2])
MARKER = "zq7canary"
EMAIL = "jane.doe.canary@example.org"
#: Planted in every field of a 2xx body: the marker, the API key and personal data.
CANARY = f"{MARKER} {API_KEY} {EMAIL}"
FRAGMENT = 8
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def leaks(text: str, *, key: bool = True) -> list[str]:
    """The marker, the e-mail, and (with ``key``) every 8-character piece of the key in ``text``."""
    folded = text.translate(_FOLD)
    found = [token for token in (MARKER, EMAIL) if token in folded]
    if key:
        folded_key = API_KEY.translate(_FOLD)
        pieces = (folded_key[i : i + FRAGMENT] for i in range(len(API_KEY) - FRAGMENT + 1))
        found += [piece for piece in pieces if piece in folded]
    return found


def _repr(value: Any) -> str:
    try:
        return value if isinstance(value, str) else repr(value)
    except Exception as exc:
        return f"<repr failed: {type(exc).__name__}>"


def _inside(value: Any) -> list[Any]:
    """What a value holds one level down: a container's items, an object's attributes, a suspended
    generator's locals."""
    if isinstance(value, (str, bytes, bytearray, int, float, bool, type(None))):
        return []
    if isinstance(value, Mapping):
        return [item for pair in list(value.items())[:200] for item in pair]
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)[:200]
    if inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value):
        return []
    frame = (
        getattr(value, "gi_frame", None)
        or getattr(value, "cr_frame", None)
        or getattr(value, "ag_frame", None)
    )
    if frame is not None:  # a suspended generator or coroutine: its frame's locals
        return list(frame.f_locals.values())
    try:
        return list(vars(value).values())
    except TypeError:
        return []


def frame_locals(tb: Any) -> Iterator[tuple[str, Any, int]]:
    """(where, value, depth) for every local of every frame of a traceback, two levels down."""
    while tb is not None:
        frame = tb.tb_frame
        if not frame.f_code.co_filename.startswith(TESTS):  # the test's own locals hold the canary
            for name, value in frame.f_locals.items():
                where = f"{frame.f_code.co_name}:{name}"
                level = [value]
                for depth in range(3):
                    for item in level:
                        yield where, item, depth
                    level = [inner for item in level for inner in _inside(item)]
        tb = tb.tb_next


def exposures(exc: BaseException) -> list[str]:
    """Where the canary shows, from ``exc``: its chain, texts, attributes and every frame's locals.

    The key is looked for in what a printer shows (texts, each local's ``repr``); one level down
    an object legitimately holds it (the hook's settings, the client's headers), so below the
    first level only the marker and the e-mail, which exist nowhere but in the answer, count."""
    found, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if "ValidationError" in name:
            found.append(f"{name} in the chain")
        texts = [str(current), repr(current), *map(_repr, current.args)]
        texts += [f"{attr}={_repr(value)}" for attr, value in vars(current).items()]
        found += [f"{name}: {leak}" for text in texts for leak in leaks(text)]
        for where, value, depth in frame_locals(current.__traceback__):
            found += [f"{where} (depth {depth}): {leak}" for leak in leaks(_repr(value), key=depth == 0)]
        current = current.__cause__ or current.__context__
    return found


# -- the answers ----------------------------------------------------------------------------------


def poisoned(body: Any) -> Any:
    """``body`` with the canary in every field and an extra one in every object, and every ``id``
    a list: JSON the models must refuse."""
    if isinstance(body, dict):
        out = {key: poisoned(value) for key, value in body.items()}
        if "id" in out:
            out["id"] = [CANARY]
        return {**out, "canaryField": CANARY}
    if isinstance(body, list):
        return [poisoned(value) for value in body] or [CANARY]
    return CANARY


KEY_TEXT = f"refused {API_KEY} for good"
#: The key where the provider summarizes the API's text; the marker and e-mail everywhere else.
ERROR_BODY = {
    "error": {"code": KEY_TEXT, "message": KEY_TEXT, "details": CANARY, "person": {"email": EMAIL}},
    "detail": KEY_TEXT,
    "title": KEY_TEXT,
    "data": {"note": CANARY, "rows": [{"email": EMAIL, "comment": CANARY}]},
    "trace": [CANARY],
}

PIXEL = {"id": "px_1", "domain": "acme.com", "name": "Acme", "status": "active"}
VISITORS = {"data": [{"email": "v@acme.com", "page": "/pricing"}], "meta": {"total": 1}}

#: (method, arguments, a valid body of its answer; None: the answer is not parsed).
METHODS: list[tuple[str, tuple[Any, ...], Any]] = [
    ("get_account_status", (), {"data": account_data()}),
    ("iter_visitors", ("7d",), VISITORS),
    ("iter_visitor_pages", (), VISITORS),
    ("list_pixels", (), {"data": [PIXEL]}),
    ("create_pixel", ("acme.com",), {"data": PIXEL}),
    ("update_pixel", ("px_1", "paused"), {"data": PIXEL}),
    ("list_audiences", (), {"data": [AUDIENCE]}),
    ("get_audience", (AUDIENCE_ID,), {"data": AUDIENCE}),
    ("create_audience", ("n", {"topicIds": [1]}), {"data": AUDIENCE}),
    ("update_audience", (AUDIENCE_ID,), {"data": AUDIENCE}),
    ("delete_audience", (AUDIENCE_ID,), None),
    ("create_audience_run", (AUDIENCE_ID,), {"data": QUEUED_RUN}),
    ("list_audience_runs", (AUDIENCE_ID,), {"data": [DAILY_RUN]}),
    ("get_audience_run", (AUDIENCE_ID, RUN_ID), RESULTS_200),
    ("cancel_audience_run", (AUDIENCE_ID, RUN_ID), None),
    ("get_audience_results_page", (AUDIENCE_ID, RUN_ID), RESULTS_200),
    ("iter_audience_results", (AUDIENCE_ID, RUN_ID), RESULTS_200),
    ("get_audience_run_stats", (AUDIENCE_ID, RUN_ID), STATS),
    ("create_audience_export", (AUDIENCE_ID, RUN_ID), EXPORT),
    ("get_audience_export", (AUDIENCE_ID, RUN_ID, EXPORT_ID), EXPORT),
    ("stream_audience_export_csv", (AUDIENCE_ID, RUN_ID), None),
]
#: Methods without an async twin.
SYNC_ONLY = {"list_pixels", "create_pixel", "update_pixel"}
KWARGS = {"update_audience": {"name": "renamed"}}


def invoke(hook: LeadpipeHook, name: str, args: tuple[Any, ...], mode: str) -> None:
    kwargs = KWARGS.get(name, {})
    if mode == "sync":
        with hook:
            result = getattr(hook, name)(*args, **kwargs)
            if name.startswith("stream_"):
                with result:
                    pass
            elif name.startswith("iter_"):
                list(result)
        return

    async def run() -> None:
        async with hook:
            method = getattr(hook, f"a{name}")
            result = method(*args, **kwargs)
            if name.startswith("stream_"):
                async with result:
                    pass
            elif hasattr(result, "__aiter__"):
                async for _ in result:
                    pass
            else:
                await result

    asyncio.run(run())


def failure_of(call: Callable[[], None]) -> LeadpipeError:
    try:
        call()
    except LeadpipeError as exc:
        return exc
    raise AssertionError("the answer was accepted")


CASES = [
    pytest.param(name, args, body, mode, id=f"{name}-{mode}")
    for name, args, body in METHODS
    for mode in ("sync", "async")
    if not (mode == "async" and name in SYNC_ONLY)
]


def answer_with(mock: respx.MockRouter, *responses: httpx.Response) -> None:
    mock.route().mock(side_effect=[*responses, *[responses[-1]] * 5])


#: Methods whose answer is parsed (delete and cancel return the API's ``data`` as sent).
PARSED = [case for case in CASES if case.values[2] is not None]


@pytest.mark.parametrize(("name", "args", "body", "mode"), PARSED)
@pytest.mark.parametrize("retried", [False, True], ids=["first answer", "after a 503"])
def test_a_2xx_body_the_models_refuse_leaves_no_copy(leadpipe_conn, name, args, body, mode, retried):
    status = 202 if name == "get_audience_run" else 200  # 202: the run inside the results is read
    answers = [httpx.Response(status, json=poisoned(body))]
    if retried:
        answers.insert(0, httpx.Response(503, json=ERROR_BODY))
    with respx.mock(base_url=BASE_URL) as mock:
        answer_with(mock, *answers)
        error = failure_of(lambda: invoke(LeadpipeHook(retry_backoff=0.001), name, args, mode))
        assert mock.calls.call_count == len(answers)
    assert isinstance(error, LeadpipeResponseError), repr(error)
    assert re.search(r"field '(data|meta)[\w.]*'|'data'", str(error)), str(error)  # names what
    assert exposures(error) == []


@pytest.mark.parametrize(("name", "args", "body", "mode"), CASES)
@pytest.mark.parametrize("status", [401, 404, 409, 500])
def test_an_error_body_leaves_no_copy(leadpipe_conn, name, args, body, mode, status):
    with respx.mock(base_url=BASE_URL) as mock:
        answer_with(mock, httpx.Response(status, json=ERROR_BODY))
        error = failure_of(lambda: invoke(LeadpipeHook(max_retries=1, retry_backoff=0.001), name, args, mode))
    assert exposures(error) == []


def test_the_test_button_and_the_triggers_show_no_copy(leadpipe_conn, caplog):
    caplog.set_level(logging.DEBUG)
    shown: dict[str, str] = {}
    with respx.mock(base_url=BASE_URL) as mock:
        for case, answer in {
            "2xx refused": httpx.Response(200, json=poisoned({"data": account_data()})),
            "error body": httpx.Response(500, json=ERROR_BODY),
        }.items():
            mock.routes.clear()
            answer_with(mock, answer)
            ok, message = LeadpipeHook(max_retries=0).test_connection()
            assert not ok
            shown[f"test_connection, {case}"] = message
            trigger = LeadpipeAccountTrigger(
                leadpipe_conn_id="leadpipe_default",
                **AccountCondition().to_dict(),
                poll_interval=0.01,
                deadline=time.time() + 0.5,
                hook_params={"max_retries": 0},
            )
            shown[f"account trigger, {case}"] = json.dumps(first_event(trigger))
        mock.routes.clear()
        answer_with(mock, httpx.Response(200, json=poisoned(RESULTS_200)))
        trigger = LeadpipeAudienceRunTrigger(
            leadpipe_conn_id="leadpipe_default",
            audience_id=AUDIENCE_ID,
            audience_run_id=RUN_ID,
            poll_interval=0.01,
            deadline=time.time() + 0.5,
            hook_params={"max_retries": 0},
        )
        event = first_event(trigger)
        assert event["status"] == "error" and event["error"] == "LeadpipeResponseError", event
        shown["audience run trigger, 2xx refused"] = json.dumps(event)
    formatter = logging.Formatter()
    shown["logs"] = "\n".join(
        f"{rec.getMessage()} {formatter.formatException(rec.exc_info) if rec.exc_info else ''}"
        for rec in caplog.records
        if not rec.name.startswith(("httpx", "httpcore"))
    )
    found = {where: hits for where, text in shown.items() if (hits := leaks(text))}
    assert found == {}


def first_event(trigger: Any) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return asyncio.run(run())


# -- a failure after pages already read: none of them stays in reach either ------------------------

PERSON = {"email": EMAIL, "note": CANARY}
VISITOR_PAGE = {"data": [PERSON], "meta": {"total": 3}}
RESULTS_PAGE = {"data": {**RESULTS_200["data"], "results": [PERSON], "total": 3, "offset": 0}}
#: (method, arguments, the first answer (valid, a person's row), the second (refused)).
PAGED = [
    ("iter_visitors", (), VISITOR_PAGE, poisoned(VISITORS)),
    ("iter_visitor_pages", (), VISITOR_PAGE, poisoned(VISITORS)),
    ("iter_visitors", (), VISITOR_PAGE, VISITOR_PAGE),  # the same page again: the pager stops
    ("iter_audience_results", (AUDIENCE_ID, RUN_ID), RESULTS_PAGE, poisoned(RESULTS_200)),
    (
        "iter_audience_results",
        (AUDIENCE_ID, RUN_ID),
        RESULTS_PAGE,
        {"data": {**RESULTS_PAGE["data"], "offset": 1, "total": 4}},  # inconsistent: the pager stops
    ),
    # A finished run: its results' first row, then the runs list (refused) for the full run.
    ("get_audience_run", (AUDIENCE_ID, RUN_ID), RESULTS_PAGE, poisoned({"data": [DAILY_RUN]})),
]


@pytest.mark.parametrize(("name", "args", "first", "second"), PAGED)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_failing_page_leaves_no_earlier_page_in_reach(leadpipe_conn, name, args, first, second, mode):
    with respx.mock(base_url=BASE_URL) as mock:
        answer_with(mock, httpx.Response(200, json=first), httpx.Response(200, json=second))
        error = failure_of(lambda: invoke(LeadpipeHook(max_retries=0), name, args, mode))
        assert mock.calls.call_count >= 2
    assert isinstance(error, LeadpipeResponseError), repr(error)
    assert exposures(error) == []


# -- what Airflow prints ---------------------------------------------------------------------------


#: Rendering costs about a second: a few paths (a model, a page, an audience plan; sync and async).
PRINTED = [
    case
    for case in PARSED
    if case.id in ("get_account_status-async", "iter_visitors-sync", "get_audience_run-sync")
]


@pytest.mark.parametrize(("name", "args", "body", "mode"), PRINTED)
def test_the_traceback_airflow_prints_with_locals_shows_no_copy(leadpipe_conn, name, args, body, mode):
    """Rendered as Airflow's console renders it with ``DEV`` set (3.3; 3.0 by default): structlog's
    rich traceback, every frame's locals shown (cut to 80 characters)."""
    structlog_dev = pytest.importorskip("structlog.dev")
    pytest.importorskip("rich")
    status = 202 if name == "get_audience_run" else 200
    with respx.mock(base_url=BASE_URL) as mock:
        answer_with(mock, httpx.Response(status, json=poisoned(body)))
        error = failure_of(lambda: invoke(LeadpipeHook(max_retries=0), name, args, mode))
    formatter = structlog_dev.RichTracebackFormatter(
        extra_lines=0, max_frames=30, indent_guides=False, width=200, suppress=(httpx,)
    )
    printed = io.StringIO()
    formatter(printed, (type(error), error, error.__traceback__))
    shown = re.sub(r"\x1b\[[0-9;]*m", "", printed.getvalue())  # no colours
    assert "─ locals ─" in shown and "= LeadpipeHook(leadpipe_conn_id=" in shown  # locals are printed
    assert leaks(shown) == []
