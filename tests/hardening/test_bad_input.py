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
from airflow_provider_leadpipe.hooks import settings as api_settings
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
        url = api_settings.normalize_base_url(host, port)
    except LeadpipeConfigError:
        return
    # Whatever is accepted is a URL httpx can send to, and normalising it again changes nothing.
    request = httpx.Client(base_url=url).build_request("GET", "/v1/data/account")
    assert request.url.scheme in ("http", "https")
    assert request.url.path == "/v1/data/account"
    assert request.url.host
    assert api_settings.normalize_base_url(url) == url


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
    ({"extra": {"timeout": 0}}, {}, "timeout must be a number of seconds"),
    ({"extra": {"timeout": -3}}, {}, "timeout must be a number of seconds"),
    ({"extra": {"timeout": "soon"}}, {}, "timeout must be a number of seconds"),
    ({"extra": {"timeout": True}}, {}, "timeout must be a number of seconds"),
    ({"extra": {"timeout": [5]}}, {}, "timeout must be a number of seconds"),
    ({}, {"timeout": float("nan")}, "timeout must be a number of seconds"),
    ({}, {"timeout": float("inf")}, "timeout must be a number of seconds"),
    ({"extra": {"max_retries": -1}}, {}, "max_retries must be a whole number"),
    ({"extra": {"max_retries": 11}}, {}, "max_retries must be a whole number"),
    ({"extra": {"max_retries": "many"}}, {}, "max_retries must be a whole number"),
    ({"extra": {"max_retries": False}}, {}, "max_retries must be a whole number"),
    ({}, {"max_retries": 2.5}, "max_retries must be a whole number"),
    ({}, {"retry_backoff": 0}, "retry_backoff must be a number of seconds"),
    ({}, {"retry_backoff": -1}, "retry_backoff must be a number of seconds"),
    # Bounded above: httpcore fails on a 1e10 s timeout, tenacity would sleep for ever.
    ({"extra": {"timeout": 1e10}}, {}, "timeout must be a number of seconds from 1 up to 600"),
    ({"extra": {"timeout": 601}}, {}, "timeout must be a number of seconds from 1 up to 600"),
    ({"extra": {"timeout": "1e400"}}, {}, "timeout must be a number of seconds"),
    ({"extra": {"timeout": 0.5}}, {}, "from 1 up to 600"),  # below what the form allows
    ({}, {"timeout": 1e10}, "timeout must be a number of seconds above 0 and up to 600"),
    ({}, {"retry_backoff": 1e10}, "retry_backoff must be a number of seconds above 0 and up to 30"),
]


@pytest.mark.parametrize(("fields", "kwargs", "match"), BAD_SETTINGS)
def test_bad_settings_are_config_errors_naming_the_setting(conn_to, fields, kwargs, match):
    hook = LeadpipeHook(conn_to("https://api.aws53.cloud", **fields), **kwargs)
    with pytest.raises(LeadpipeConfigError, match=match):
        hook.settings  # noqa: B018 - first use
    tally("bad input", "bad timeout / max_retries / retry_backoff values", requests=0)


#: Any JSON value (what Airflow hands over for a connection's extra, password or host).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
numbers = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)


@given(
    extra=json_values | st.fixed_dictionaries({}, optional={"timeout": numbers, "max_retries": numbers}),
    password=st.sampled_from([API_KEY, f" {API_KEY}\n"]) | json_values,
    host=st.none() | st.sampled_from(["https://api.aws53.cloud", "127.0.0.1:8080"]) | json_values,
    port=st.none() | st.integers(-5, 70_000) | json_values,
)
@settings(max_examples=400, deadline=None)
def test_any_connection_value_gives_settings_or_a_config_error(extra, password, host, port):
    """Every value a connection can hold (extra of any JSON type, not only an object) ends in
    usable settings or a LeadpipeConfigError naming the connection: never another exception."""
    conn = type("Conn", (), {"conn_id": "fuzz", "password": password, "host": host, "port": port})()
    extra = json.loads(json.dumps(extra))
    try:
        result = api_settings.ApiSettings.from_connection(conn, extra)
    except LeadpipeConfigError as exc:
        assert "'fuzz'" in str(exc)
        tally("bad input", "any JSON as extra/password/host/port", "LeadpipeConfigError")
        return
    tally("bad input", "any JSON as extra/password/host/port", "settings")
    # The range the Connections form states, whatever the extra says.
    assert (api_settings.MIN_TIMEOUT, api_settings.MAX_TIMEOUT) == (1, 600)
    assert api_settings.MIN_TIMEOUT <= result.timeout <= api_settings.MAX_TIMEOUT
    assert 0 <= result.max_retries <= 10
    assert result.api_key == password.strip()  # any printable ASCII text is sent as the key


@pytest.mark.parametrize("extra", ["[1, 2]", '"timeout=5"', "30", "true", "null"])
def test_extra_that_is_json_but_not_an_object_is_a_typed_error(mode, conn_to, network_guard, extra):
    """A LeadpipeConfigError naming the extra (never AttributeError), or, where Airflow's own env-var
    backend drops such a connection (before 3.3), Airflow's not-found error; nothing is sent.
    A JSON null extra is no extra at all."""
    from airflow import __version__
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    airflow_version = tuple(int(part) for part in __version__.split(".")[:2])

    with ScriptedServer(default=Reply(200, {"data": account_data()})) as server:
        try:
            call(mode, LeadpipeHook(conn_to(server.url, extra=extra)))
        except AirflowNotFoundException:
            assert airflow_version < (3, 3)  # 3.3 hands such an extra over to the hook
        except LeadpipeConfigError as exc:
            assert extra != "null"
            assert "extra must be a JSON object" in str(exc)
        else:
            assert extra == "null"
            return
    assert server.requests == []
    assert network_guard.refused == []


def test_missing_connection_is_airflows_not_found_error():
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException, match="leadpipe_does_not_exist"):
        LeadpipeHook("leadpipe_does_not_exist").settings  # noqa: B018
