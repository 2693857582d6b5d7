"""Ids that go into a URL path, over real loopback HTTP: refused before anything is sent, or sent
as exactly one path segment (``PATCH /v1/data/pixels/{id}`` never becomes another endpoint)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import PIXELS_PATH, LeadpipeHook
from tests.hardening.figures import record, tally
from tests.hardening.loopback import Reply, ScriptedServer

pytestmark = pytest.mark.timeout(120)

PIXEL = {
    "id": "p",
    "domain": "acme.com",
    "name": "Acme",
    "status": "paused",
    "createdAt": "2026-08-01T10:00:00Z",
}
#: Dot segments, slashes, encoded slashes and dots, other URL syntax, and what is not an id at all.
BAD_IDS = [
    ".",
    "..",
    " .. ",
    "...",
    "a/b",
    "../account",
    "/",
    "%2e%2e",
    "..%2f",
    "a%2Fb",
    "a\\b",
    "a?b",
    "a#b",
    "a b",
    "é",
    "\x00",
    "a" * 129,
    "",
    None,
    7,
]
CASE = "random ids in URL paths: refused before sending, or sent as one segment"


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(default=Reply(200, {"data": PIXEL})) as running:
        yield running


@given(pixel_id=st.sampled_from(BAD_IDS) | st.text(max_size=10) | st.text("./%2fFe\\a-_~ ", max_size=8))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_id_is_refused_before_sending_or_sent_as_one_segment(server, conn_to, pixel_id):
    hook = LeadpipeHook(conn_to(server.url), max_retries=0)
    before = len(server.requests)
    try:
        with hook:
            hook.update_pixel(pixel_id, status="paused")
    except LeadpipeConfigError as exc:
        assert "pixel_id must be" in str(exc)
        assert len(server.requests) == before  # nothing sent
        tally("bad input", CASE, "refused", requests=0)
        return
    assert len(server.requests) == before + 1
    seen = server.requests[-1]
    assert (seen.method, seen.path) == ("PATCH", f"{PIXELS_PATH}/{pixel_id.strip()}")
    assert pixel_id.strip().strip(".")  # never a dot segment
    tally("bad input", CASE, "sent as one segment")


def test_every_listed_bad_id_is_refused(server, conn_to):
    hook = LeadpipeHook(conn_to(server.url), max_retries=0)
    before = len(server.requests)
    for pixel_id in BAD_IDS:
        with pytest.raises(LeadpipeConfigError, match="pixel_id must be"):
            hook.update_pixel(pixel_id, status="paused")
    assert len(server.requests) == before
    record("bad input", f"ids in URL paths: {len(BAD_IDS)} listed bad ids refused", requests=0)
