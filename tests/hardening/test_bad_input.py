"""Bad user input gives a clear, typed error at construction or first use — before any request.

Covers the connection (base URL, port, API key) and the hook's settings. Operator and sensor
parameters are covered in ``test_bad_parameters.py``.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks import core
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from tests.hardening.conftest import call
from tests.hardening.figures import tally
from tests.hardening.loopback import Reply, ScriptedServer
from tests.unit.conftest import API_KEY, account_data

pytestmark = pytest.mark.timeout(60)

BAD_BASE_URLS = [
    # (host field, port field, what the message must say)
    ("https://api.aws53.cloud/v1", None, "has a path"),
    ("https://api.aws53.cloud/v1/data/account", None, "has a path"),
    ("https://api.aws53.cloud?key=x", None, "query or fragment"),
    ("https://api.aws53.cloud/#top", None, "query or fragment"),
    ("https://user@api.aws53.cloud", None, "contains credentials"),
    ("https://user:secret@api.aws53.cloud", None, "contains credentials"),
    (f"https://{API_KEY}@api.aws53.cloud", None, "contains credentials"),
    (f"https://api.aws53.cloud/{API_KEY}", None, "has a path"),
    ("ftp://api.aws53.cloud", None, "not http or https"),
    ("http://api.aws53.cloud", None, "only allowed for loopback"),
    ("https://", None, "no host name"),
    ("https://:443", None, "no host name"),
    ("https://[::1", None, "not a valid URL"),
    ("api.aws53.cloud:99999", None, "not a valid URL"),
    ("api.aws53.cloud", 70000, "port"),
    ("api.aws53.cloud", -1, "port"),
    ("exa mple.com", None, "host name"),
    ("https://a..b", None, "host name"),
    ("https://xn--", None, "host name"),
    ("https://" + "a" * 64 + ".com", None, "host name"),
]


@pytest.mark.parametrize(("host", "port", "match"), BAD_BASE_URLS)
def test_bad_base_url_is_a_config_error_before_any_request(conn_to, network_guard, host, port, match):
    conn_id = conn_to(host, port=port) if port is not None else conn_to(host)
    hook = LeadpipeHook(conn_id)  # construction never touches the connection
    with pytest.raises(LeadpipeConfigError, match=match) as info:
        hook.get_account_status()
    message = str(info.value)
    assert f"'{conn_id}'" in message
    assert API_KEY not in message
    assert network_guard.refused == []  # refused before any lookup, let alone a request
    tally("bad input", "bad base URLs (path, query, userinfo, scheme, host, port)", requests=0)


@given(host=st.text(max_size=40), port=st.none() | st.integers(-5, 70_000))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_host_gives_a_usable_url_or_a_config_error(host, port):
    try:
        url = core.normalize_base_url(host, port)
    except LeadpipeConfigError:
        return
    # Whatever is accepted is a URL httpx can send to, and normalising it again changes nothing.
    request = httpx.Client(base_url=url).build_request("GET", "/v1/data/account")
    assert request.url.scheme in ("http", "https")
    assert request.url.path == "/v1/data/account"
    assert request.url.host
    assert core.normalize_base_url(url) == url


BAD_KEYS = [
    ("", "has no API key"),
    ("   ", "has no API key"),
    (API_KEY[:10] + "\n" + API_KEY[10:], "API key contains"),
    (API_KEY[:10] + "\x00" + API_KEY[10:], "API key contains"),
    (API_KEY[:10] + " " + API_KEY[10:], "API key contains"),
    (API_KEY[:10] + "\t" + API_KEY[10:], "API key contains"),
    (API_KEY + "é", "API key contains"),
]


@pytest.mark.parametrize(("password", "match"), BAD_KEYS, ids=repr)
def test_bad_api_key_is_a_config_error_that_never_echoes_it(mode, conn_to, network_guard, password, match):
    conn_id = conn_to("https://api.aws53.cloud", password=password)
    with pytest.raises(LeadpipeConfigError, match=match) as info:
        call(mode, LeadpipeHook(conn_id))
    for text in (str(info.value), repr(info.value)):
        assert API_KEY[:10] not in text and API_KEY[11:] not in text
    assert network_guard.refused == []
    tally("bad input", "unusable API keys (empty, control, space, non-ASCII)", mode=mode, requests=0, hits=0)


def test_padded_key_is_trimmed_and_sent_exactly(mode, conn_to):
    with ScriptedServer(default=Reply(200, {"data": account_data()})) as server:
        call(mode, LeadpipeHook(conn_to(server.url, password=f"  {API_KEY}\n")))
    assert server.requests[0].headers["x-api-key"] == API_KEY


BAD_SETTINGS = [
    ({"extra": {"timeout": 0}}, {}, "timeout must be a positive number"),
    ({"extra": {"timeout": -3}}, {}, "timeout must be a positive number"),
    ({"extra": {"timeout": "soon"}}, {}, "timeout must be a positive number"),
    ({"extra": {"timeout": True}}, {}, "timeout must be a positive number"),
    ({"extra": {"timeout": [5]}}, {}, "timeout must be a positive number"),
    ({}, {"timeout": float("nan")}, "timeout must be a positive number"),
    ({}, {"timeout": float("inf")}, "timeout must be a positive number"),
    ({"extra": {"max_retries": -1}}, {}, "max_retries must be a whole number"),
    ({"extra": {"max_retries": 11}}, {}, "max_retries must be a whole number"),
    ({"extra": {"max_retries": "many"}}, {}, "max_retries must be a whole number"),
    ({"extra": {"max_retries": False}}, {}, "max_retries must be a whole number"),
    ({}, {"max_retries": 2.5}, "max_retries must be a whole number"),
    ({}, {"retry_backoff": 0}, "retry_backoff must be a positive number"),
    ({}, {"retry_backoff": -1}, "retry_backoff must be a positive number"),
]


@pytest.mark.parametrize(("fields", "kwargs", "match"), BAD_SETTINGS)
def test_bad_settings_are_config_errors_naming_the_setting(conn_to, fields, kwargs, match):
    hook = LeadpipeHook(conn_to("https://api.aws53.cloud", **fields), **kwargs)
    with pytest.raises(LeadpipeConfigError, match=match):
        hook.settings  # noqa: B018 - first use
    tally("bad input", "bad timeout / max_retries / retry_backoff values", requests=0)


@given(
    timeout=st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    max_retries=st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
)
@settings(max_examples=200, deadline=None)
def test_any_extra_gives_settings_or_a_config_error(timeout, max_retries):
    conn = type("Conn", (), {"conn_id": "fuzz", "password": API_KEY, "host": None, "port": None})()
    extra = json.loads(json.dumps({"timeout": timeout, "max_retries": max_retries}))
    try:
        result = core.ApiSettings.from_connection(conn, extra)
    except LeadpipeConfigError:
        return
    assert 0 < result.timeout < float("inf")
    assert 0 <= result.max_retries <= 10


def test_missing_connection_is_airflows_not_found_error():
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException, match="leadpipe_does_not_exist"):
        LeadpipeHook("leadpipe_does_not_exist").settings  # noqa: B018
