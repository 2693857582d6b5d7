"""LeadpipeHook against a mocked transport (respx): every response path, sync and async."""

from __future__ import annotations

import logging

import httpx
import pendulum
import pytest
import respx

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeConnectionError,
    LeadpipeNotFoundError,
    LeadpipeRateLimitError,
    LeadpipeResponseError,
    LeadpipeServerError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.models import AccountStatus
from tests.unit.conftest import API_KEY, BASE_URL, account_data

ACCOUNT_URL = f"{BASE_URL}/v1/data/account"


@pytest.fixture(params=["sync", "async"])
def get_status(request, leadpipe_conn):
    """Call get_account_status through the sync or the async path; same contract."""

    def call(hook: LeadpipeHook) -> AccountStatus:
        if request.param == "sync":
            return hook.get_account_status()
        import asyncio

        async def run():
            async with hook:
                return await hook.aget_account_status()

        return asyncio.run(run())

    return call


def fast_hook(**kwargs) -> LeadpipeHook:
    return LeadpipeHook(retry_backoff=0.001, **kwargs)


def test_200_parses_documented_shape(get_status):
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(ACCOUNT_URL).respond(200, json={"data": account_data()})
        status = get_status(fast_hook())
    assert status.healthy is True
    assert status.organization.name == "Acme"
    assert status.credits.remaining == 480
    assert status.credits.resets_at == pendulum.datetime(2026, 12, 1, tz="UTC")
    assert status.intent.audience_slots_available == 2
    sent = route.calls.last.request
    assert sent.headers["X-API-Key"] == API_KEY
    assert sent.headers["User-Agent"].startswith("airflow-provider-leadpipe/")


def test_null_credits_mean_no_cap_and_null_intent(get_status):
    data = account_data(
        credits={"used": 7, "limit": None, "remaining": None, "percentUsed": None, "resetsAt": None},
        intent=None,
    )
    with respx.mock() as mock:
        mock.get(ACCOUNT_URL).respond(200, json={"data": data})
        status = get_status(fast_hook())
    assert status.credits.unlimited
    assert status.credits.remaining is None and status.credits.resets_at is None
    assert status.intent is None
    assert status.to_dict() == data


def test_to_dict_round_trips_api_names_and_keeps_unknown_fields(get_status):
    data = account_data(newField={"x": 1})
    with respx.mock() as mock:
        mock.get(ACCOUNT_URL).respond(200, json={"data": data})
        status = get_status(fast_hook())
    assert status.to_dict() == data
    assert AccountStatus.from_data(status.to_dict()) == status


@pytest.mark.parametrize(
    ("status_code", "body", "error", "text"),
    [
        (
            401,
            {"error": {"code": "HTTP_ERROR", "message": "Invalid API key"}},
            LeadpipeAuthError,
            "Invalid API key",
        ),
        (
            403,
            {"error": {"code": "HTTP_ERROR", "message": "Organization is expired"}},
            LeadpipeAuthError,
            "Organization is expired",
        ),
        (404, {"message": "Not here"}, LeadpipeNotFoundError, "Not here"),
    ],
)
def test_client_errors_fail_at_once_with_the_api_message(get_status, status_code, body, error, text):
    with respx.mock() as mock:
        route = mock.get(ACCOUNT_URL).respond(status_code, json=body)
        with pytest.raises(error, match=text) as info:
            get_status(fast_hook())
    assert route.call_count == 1, "4xx must never be retried"
    assert info.value.http_status == status_code


@pytest.mark.parametrize("status_code", [500, 502, 503])
def test_5xx_is_retried_then_succeeds(get_status, status_code):
    with respx.mock() as mock:
        route = mock.get(ACCOUNT_URL)
        route.side_effect = [
            httpx.Response(status_code),
            httpx.Response(status_code),
            httpx.Response(200, json={"data": account_data()}),
        ]
        status = get_status(fast_hook())
    assert status == AccountStatus.from_data(account_data())
    assert route.call_count == 3


def test_5xx_exhausts_retries_into_a_typed_error(get_status):
    with respx.mock() as mock:
        route = mock.get(ACCOUNT_URL).respond(
            503, text="<html><body>Service Unavailable</body></html>", headers={"content-type": "text/html"}
        )
        with pytest.raises(LeadpipeServerError, match=r"HTTP 503: text/html body") as info:
            get_status(fast_hook(max_retries=2))
    assert route.call_count == 3
    assert "<html>" not in str(info.value)


@pytest.mark.parametrize("retry_after", ["1", "http-date"])
def test_429_honours_retry_after_both_forms(get_status, retry_after):
    import email.utils
    import time

    if retry_after == "http-date":
        # An HTTP-date has whole-second resolution: aim 1.5 s ahead so at least ~1 s remains.
        retry_after = email.utils.formatdate(time.time() + 1.5, usegmt=True)
    with respx.mock() as mock:
        route = mock.get(ACCOUNT_URL)
        route.side_effect = [
            httpx.Response(429, headers={"Retry-After": retry_after}),
            httpx.Response(200, json={"data": account_data()}),
        ]
        started = time.monotonic()
        get_status(fast_hook())
        waited = time.monotonic() - started
    assert route.call_count == 2
    assert 0.45 <= waited < 2.0, waited


def test_429_exhausted_is_a_rate_limit_error(get_status):
    with respx.mock() as mock:
        mock.get(ACCOUNT_URL).respond(
            429, headers={"Retry-After": "0"}, json={"error": {"message": "Slow down"}}
        )
        with pytest.raises(LeadpipeRateLimitError, match="Slow down") as info:
            get_status(fast_hook(max_retries=1))
    assert info.value.retry_after == 0


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("timed out"), httpx.ConnectTimeout("slow")]
)
def test_network_errors_retry_then_raise_typed(get_status, exc):
    with respx.mock() as mock:
        route = mock.get(ACCOUNT_URL).mock(side_effect=exc)
        with pytest.raises(LeadpipeConnectionError, match=type(exc).__name__):
            get_status(fast_hook(max_retries=2))
    assert route.call_count == 3


def test_network_error_then_success(get_status):
    with respx.mock() as mock:
        route = mock.get(ACCOUNT_URL)
        route.side_effect = [
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"data": account_data()}),
        ]
        status = get_status(fast_hook())
    assert status == AccountStatus.from_data(account_data())
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        (b"not json", "text/plain", "not JSON"),
        (b"<html>oops</html>", "text/html", r"not JSON \(text/html"),
        (b'{"nodata": 1}', "application/json", "'data' envelope"),
        (b"[1, 2]", "application/json", "'data' envelope"),
    ],
)
def test_bad_bodies_are_response_errors(get_status, body, content_type, match):
    with respx.mock() as mock:
        route = mock.get(ACCOUNT_URL).respond(200, content=body, headers={"content-type": content_type})
        with pytest.raises(LeadpipeResponseError, match=match):
            get_status(fast_hook())
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("healthy"), "data.healthy': missing"),
        (lambda d: d["credits"].pop("remaining"), "data.credits.remaining': missing"),
        (lambda d: d["credits"].update(remaining="480"), "data.credits.remaining': expected a number"),
        (lambda d: d["credits"].update(used=True), "data.credits.used': expected a number"),
        (lambda d: d.update(healthy="yes"), "data.healthy': expected a boolean"),
        (lambda d: d["organization"].update(name=5), "data.organization.name': expected a string"),
        (lambda d: d["credits"].update(resetsAt="soon"), "data.credits.resetsAt': expected an ISO 8601"),
        (lambda d: d.update(pixels=[]), "data.pixels': expected an object"),
        (lambda d: d["intent"].pop("status"), "data.intent.status': missing"),
    ],
)
def test_wrong_shape_names_the_field(get_status, mutate, field):
    data = account_data()
    mutate(data)
    with respx.mock() as mock:
        mock.get(ACCOUNT_URL).respond(200, json={"data": data})
        with pytest.raises(LeadpipeResponseError, match=field):
            get_status(fast_hook())


def test_timeout_and_retries_come_from_extra_and_arguments(leadpipe_conn):
    leadpipe_conn(extra={"timeout": 12, "max_retries": 5})
    assert LeadpipeHook().settings.timeout == 12
    assert LeadpipeHook().settings.max_retries == 5
    assert LeadpipeHook(timeout=3, max_retries=0).settings.max_retries == 0
    assert LeadpipeHook(timeout=3).settings.timeout == 3


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"password": ""}, "has no API key"),
        ({"host": "http://api.aws53.cloud"}, "plain http:// is only allowed for loopback"),
        ({"host": "https://api.aws53.cloud/v1"}, "has a path"),
        ({"host": "https://api.aws53.cloud?x=1"}, "query or fragment"),
        ({"host": "https://user:pw@api.aws53.cloud"}, "contains credentials"),
        ({"host": "ftp://api.aws53.cloud"}, "is not http or https"),
        ({"extra": {"timeout": -1}}, "timeout must be a number of seconds"),
        ({"extra": {"max_retries": 99}}, "max_retries must be a whole number"),
    ],
)
def test_bad_connections_are_clear_config_errors(leadpipe_conn, fields, match):
    leadpipe_conn(conn_id="bad_conn", **fields)
    with pytest.raises(LeadpipeConfigError, match=match) as info:
        LeadpipeHook("bad_conn").get_account_status()
    assert "'bad_conn'" in str(info.value)


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        (None, None, "https://api.aws53.cloud"),
        ("api.aws53.cloud", None, "https://api.aws53.cloud"),
        ("https://api.aws53.cloud/", None, "https://api.aws53.cloud"),
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("http://localhost:9000", 0, "http://localhost:9000"),
        ("http://[::1]:9000", None, "http://[::1]:9000"),
        ("api.aws53.cloud", 0, "https://api.aws53.cloud"),
    ],
)
def test_base_url_normalisation(host, port, url):
    from airflow_provider_leadpipe.hooks.settings import normalize_base_url

    assert normalize_base_url(host, port) == url


def test_test_connection_reports_org_and_credits(leadpipe_conn):
    with respx.mock() as mock:
        mock.get(ACCOUNT_URL).respond(200, json={"data": account_data()})
        assert LeadpipeHook().test_connection() == (True, "Connected to Acme (trial): 480 credits left")


def test_test_connection_never_raises_and_does_not_retry(leadpipe_conn):
    with respx.mock() as mock:
        route = mock.get(ACCOUNT_URL).respond(503)
        ok, message = LeadpipeHook().test_connection()
        assert (ok, route.call_count) == (False, 1)
        assert "HTTP 503" in message
        route.respond(401, json={"error": {"message": "Invalid API key"}})
        ok, message = LeadpipeHook().test_connection()
        assert (ok, route.call_count) == (False, 2)
        for part in ("HTTP 401", "Invalid API key", "'leadpipe_default'", "check the API key"):
            assert part in message, message
    leadpipe_conn(conn_id="nokey", password="")
    ok, message = LeadpipeHook("nokey").test_connection()
    assert not ok and "has no API key" in message


def test_key_never_in_logs_errors_or_reprs(leadpipe_conn, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    hook = fast_hook()
    texts = []
    with respx.mock() as mock:
        mock.get(ACCOUNT_URL).respond(
            401, json={"error": {"code": "HTTP_ERROR", "message": f"Invalid API key {API_KEY}"}}
        )
        with pytest.raises(LeadpipeAuthError) as info:
            hook.get_account_status()
        texts += [str(info.value), repr(info.value)]
        mock.get(ACCOUNT_URL).respond(503)
        with pytest.raises(LeadpipeServerError) as info:
            hook.get_account_status()
        texts.append(str(info.value))
        texts.append(LeadpipeHook().test_connection()[1])
    texts += [repr(hook), repr(hook.settings), repr(hook.get_conn())]
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    assert "***" in texts[0]
    assert not [t for t in texts if API_KEY in t]
