"""No piece of the API key that an error answer quotes reaches anything a user can see.

A server (or a proxy in front of it) may echo the key anywhere in an error answer: the message, the
code, ``detail``, ``title``, a nested object, a header, the status line's reason phrase, even a
malformed header line that httpx then quotes. The provider shortens such text for its messages,
and so do servers, log formatters and traceback printers; a cut through the key leaves a prefix
that a whole-key match (Airflow's masker) no longer finds. So the rule checked here is stricter
than "the key is not in the message": **no run of 8 or more characters of the key** (ignoring
case) appears in

- the exception's text, ``repr``, arguments and attributes (``api_code``...), along its whole
  ``__cause__`` / ``__context__`` chain;
- the ``repr`` of every local variable of every frame of its traceback (Airflow 3's rich
  tracebacks print them, cut to 80 characters);
- every log record (retry warnings, trigger lines), the trigger's event payload, and the message
  of the Connections form's Test button (``test_connection``),

for the key at every offset of every field, in every error path: sync and async, retried and not,
the deferred sensor's trigger and ``test_connection``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.conditions.account import AccountCondition
from airflow_provider_leadpipe.exceptions import LeadpipeError
from airflow_provider_leadpipe.hooks import redaction, responses
from airflow_provider_leadpipe.hooks import settings as api_settings
from airflow_provider_leadpipe.hooks.leadpipe import ACCOUNT_PATH, LeadpipeHook
from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger
from tests.hardening.figures import record, tally
from tests.hardening.loopback import Raw, Reply, ScriptedServer
from tests.unit.conftest import API_KEY

pytestmark = pytest.mark.timeout(300)

TESTS = str(Path(__file__).resolve().parents[1])
FRAGMENT = 8
STATUSES = [400, 401, 403, 404, 409, 422, 429, 500, 503]
#: One status per error class.
CLASS_STATUSES = [400, 401, 404, 409, 429, 500]


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def pieces_of(key: str, text: str) -> list[str]:
    """Every 8-character piece of ``key`` in ``text``, ignoring ASCII case (the oracle, written
    independently of the code under test)."""
    folded, key_folded = text.translate(_ASCII_LOWER), key.translate(_ASCII_LOWER)
    windows = (key_folded[i : i + FRAGMENT] for i in range(len(key) - FRAGMENT + 1))
    return [window for window in windows if window in folded]


def _repr(value: Any) -> str:
    try:
        return value if isinstance(value, str) else repr(value)
    except Exception as exc:  # a repr that fails is not shown either
        return f"<repr failed: {type(exc).__name__}>"


def visible(exc: BaseException) -> Iterator[str]:
    """Everything a traceback printer or a caller can read from an exception."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield from (_repr(arg) for arg in current.args)
        yield from (f"{name}={_repr(value)}" for name, value in vars(current).items())
        tb = current.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if not frame.f_code.co_filename.startswith(TESTS):  # the test's own variables hold the key
                yield from (
                    f"{frame.f_code.co_name}: {name}={_repr(v)}" for name, v in frame.f_locals.items()
                )
            tb = tb.tb_next
        current = current.__cause__ or current.__context__


#: httpx's INFO line quotes the server's status line (reason phrase) and httpcore's DEBUG trace every
#: response header, as received, before the provider sees the answer. That is their logging, not
#: the provider's (docs/security.md says so; Airflow sets both loggers to WARNING by default).
NOT_OURS = ("httpx", "httpcore")


def log_texts(records: list[logging.LogRecord]) -> Iterator[str]:
    formatter = logging.Formatter()
    for rec in records:
        if rec.name.startswith(NOT_OURS):
            continue
        yield f"{rec.getMessage()} {rec.args!r}"
        if rec.exc_info:
            yield formatter.formatException(rec.exc_info)


# -- where the key is placed --------------------------------------------------------------------

#: Each field builds an answer with ``text`` (which contains the key) in one place.
FIELDS: dict[str, Callable[[int, str], Reply | Raw]] = {
    "error.message": lambda status, text: Reply(status, {"error": {"code": "HTTP_ERROR", "message": text}}),
    "error.code": lambda status, text: Reply(status, {"error": {"code": text, "message": "failed"}}),
    "error (a string)": lambda status, text: Reply(status, {"error": text}),
    "message": lambda status, text: Reply(status, {"message": text}),
    "detail": lambda status, text: Reply(status, {"detail": text, "status": status}),
    "title": lambda status, text: Reply(status, {"title": text, "type": "about:blank"}),
    "nested objects": lambda status, text: Reply(
        status, {"error": {"message": {"reason": [{"text": text}], "n": 1}, "code": {"raw": text}}}
    ),
    "content-type header": lambda status, text: Reply(status, b"<html>oops</html>", {"Content-Type": text}),
    "reason phrase": lambda status, text: Reply(status, {"error": {"message": "failed"}}, reason=text),
    "illegal header line": lambda status, text: Raw(
        f"HTTP/1.1 {status} X\r\n{text}\r\nContent-Length: 0\r\n\r\n".encode()
    ),
}
#: Fields :func:`responses.handle_response` sees in an ``httpx.Response`` built in memory.
BODY_FIELDS = [name for name in FIELDS if name not in ("reason phrase", "illegal header line")]


def in_memory(answer: Reply, key: str) -> httpx.Response:
    headers = {"content-type": "application/json", **{k.lower(): v for k, v in answer.headers.items()}}
    body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
    request = httpx.Request("GET", f"https://api.aws53.cloud{ACCOUNT_PATH}")
    return httpx.Response(answer.status, content=body, headers=headers, request=request)


def test_every_offset_of_every_body_field_and_status():
    """The request core, exhaustively: key at offsets 0-260 (past the 200-character summary) of
    every field, for every error status (and a 200 whose content type echoes it)."""
    settings_ = api_settings.ApiSettings(conn_id="c", base_url="https://api.aws53.cloud", api_key=API_KEY)
    cases = 0
    for field in BODY_FIELDS:
        for status in [200, *CLASS_STATUSES] if field == "content-type header" else CLASS_STATUSES:
            for offset in range(261):
                text = "~" * offset + API_KEY + " tail"
                with pytest.raises(LeadpipeError) as info:
                    responses.handle_response(in_memory(FIELDS[field](status, text), API_KEY), settings_)
                leaked = [piece for shown in visible(info.value) for piece in pieces_of(API_KEY, shown)]
                assert not leaked, (field, status, offset, leaked, str(info.value))
                cases += 1
    record(
        "secrets",
        f"key at every offset 0-260 of {len(BODY_FIELDS)} fields x statuses: {cases} answers",
        hits=0,
    )


# -- every path, over real loopback HTTP --------------------------------------------------------

#: Random keys. Their alphabet cannot spell the provider's own words ("provider", "leadpipe"...),
#: which would be found in its messages and reprs whatever the redaction; quotes and backslashes
#: are in it because JSON escapes them.
KEYS = st.text(string.digits + 'JQXZ"\\', min_size=12, max_size=32).map(lambda tail: f"sk_live_{tail}")
#: Filler around the key: characters the keys never contain, with whitespace runs that the
#: summary collapses (so offsets shift after normalisation).
FILLER = st.sampled_from(["~", "- ", "~ \n  -", "é~"])


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


def trigger_events(conn_id: str) -> list[dict[str, Any]]:
    trigger = LeadpipeAccountTrigger(
        leadpipe_conn_id=conn_id,
        **AccountCondition().to_dict(),
        poll_interval=0.05,
        deadline=time.time() + 0.2,
    )

    async def run() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(run())


def request(hook: LeadpipeHook, mode: str) -> BaseException:
    try:
        if mode == "sync":
            with hook:
                hook.get_account_status()
        else:

            async def run() -> None:
                async with hook:
                    await hook.aget_account_status()

            asyncio.run(run())
    except LeadpipeError as exc:
        return exc
    raise AssertionError("an error answer was accepted")


@given(
    key=KEYS,
    field=st.sampled_from(sorted(FIELDS)),
    status=st.sampled_from(STATUSES),
    offset=st.integers(0, 300),
    filler=FILLER,
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_piece_of_the_key_reaches_the_user_on_any_path(
    server, conn_to, caplog, key, field, status, offset, filler
):
    caplog.set_level(logging.DEBUG)
    for name in NOT_OURS:  # let them log, to show they are filtered out below and nothing else is
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.clear()
    text = (filler * offset)[:offset] + key + (filler * 3)
    server.default = FIELDS[field](status, text)
    conn_id = conn_to(server.url, password=key, extra={"max_retries": 0})
    before = len(server.requests)
    shown: dict[str, list[str]] = {}
    for mode in ("sync", "async"):
        for retries in (0, 1):
            error = request(LeadpipeHook(conn_id, max_retries=retries, retry_backoff=0.001), mode)
            shown[f"{mode}, max_retries={retries}"] = list(visible(error))
    ok, message = LeadpipeHook(conn_id).test_connection()
    assert not ok
    shown["test_connection"] = [message]
    events = trigger_events(conn_id)
    assert len(events) == 1 and events[0]["status"] in ("failure", "error", "timeout"), events
    shown["trigger event"] = [json.dumps(events[0])]
    shown["logs"] = list(log_texts(caplog.records))
    if status in (429, 500, 503) or field == "illegal header line":  # transient: retried, and logged
        assert any("retry 1 of 1" in text for text in shown["logs"]), shown["logs"]
    assert len(server.requests) > before  # the answers were really received
    leaks = {where: pieces for where, texts in shown.items() if (pieces := pieces_of(key, "\n".join(texts)))}
    assert not leaks, (field, status, offset, leaks)
    tally(
        "secrets",
        "random keys at offsets 0-300 of answer fields; sync, async, retried, test_connection, trigger",
        field,
        hits=0,
    )


# -- the redaction itself -----------------------------------------------------------------------


@given(
    key=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    text=st.text(max_size=120),
    cuts=st.lists(st.integers(0, 160), max_size=3),
)
@settings(max_examples=500, deadline=None)
def test_redaction_survives_any_later_cut(key, text, cuts):
    """Whatever the text and wherever it is later cut, no 8-character piece of the key (nor the
    whole of a shorter key) is left."""
    redacted = redaction.redact_secret(text, key)
    for cut in [len(redacted), *cuts]:
        shown = redacted[:cut]
        if len(key) >= FRAGMENT:
            assert not pieces_of(key, shown), (key, text, shown)
        elif "*" not in key:  # a key of a few "*" is hidden, but by more "*"
            assert key.translate(_ASCII_LOWER) not in shown.translate(_ASCII_LOWER), (key, text, shown)
    if not pieces_of(key, text) and key.translate(_ASCII_LOWER) not in text.translate(_ASCII_LOWER):
        assert redacted == text  # nothing to hide: unchanged
