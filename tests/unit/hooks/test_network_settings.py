"""The ``proxy`` and ``ca_bundle`` extras, and the credential fingerprint the poller shares by."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys

import pytest
import trustme

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks import redaction
from airflow_provider_leadpipe.hooks import settings as api_settings
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from tests.unit.conftest import API_KEY

PASSWORD = "Pr0xyPassw0rd-31"


@pytest.fixture
def settings_with(leadpipe_conn):
    def settings_with(**extra) -> api_settings.ApiSettings:
        leadpipe_conn(extra=json.dumps(extra))
        return LeadpipeHook().settings

    return settings_with


@pytest.fixture
def bundle(tmp_path):
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def test_unset_extras_leave_the_environment_in_charge(settings_with):
    settings = settings_with(proxy="", ca_bundle=None)
    assert settings.proxy is None and settings.ca_bundle is None
    kwargs = api_settings.client_kwargs(settings)
    assert "proxy" not in kwargs and kwargs.get("trust_env", True)  # HTTPS_PROXY / NO_PROXY apply


def test_a_proxy_and_a_bundle_reach_the_client(settings_with, bundle):
    settings = settings_with(proxy=" http://proxy.corp.example:3128 ", ca_bundle=bundle)
    assert settings.proxy == "http://proxy.corp.example:3128"
    kwargs = api_settings.client_kwargs(settings)
    assert kwargs["proxy"] == "http://proxy.corp.example:3128"
    assert kwargs["verify"] is api_settings.ssl_context(bundle)
    assert kwargs["verify"] is not api_settings.ssl_context(None)


@pytest.mark.parametrize(
    ("proxy", "problem"),
    [
        (f"ftp://bob:{PASSWORD}@proxy.corp:21", "must start with http:// or https://"),
        (f"socks5://bob:{PASSWORD}@proxy.corp:1080", "must start with http:// or https://"),
        (f"bob:{PASSWORD}@proxy.corp:3128", "must start with http:// or https://"),
        (f"http://bob:{PASSWORD}@:3128", "no valid host name"),
        (f"http://bob:{PASSWORD}@proxy.corp:99999", "not a valid URL"),
        (f"http://bob:{PASSWORD}@proxy.corp:3128/path", "give only scheme"),
        (3128, "must be a URL string, not int"),
    ],
)
def test_bad_proxies_are_refused_without_echoing_them(settings_with, proxy, problem):
    with pytest.raises(LeadpipeConfigError, match="proxy refused") as failure:
        settings_with(proxy=proxy)
    assert problem in str(failure.value)
    assert PASSWORD not in str(failure.value) and API_KEY not in str(failure.value)


def test_a_missing_bundle_names_the_path_never_the_key(settings_with, tmp_path):
    missing = str(tmp_path / "no-such-ca.pem")
    with pytest.raises(LeadpipeConfigError) as failure:
        settings_with(ca_bundle=missing)
    assert f"CA bundle '{missing}' cannot be read" in str(failure.value)
    assert "leadpipe_default" in str(failure.value) and API_KEY not in str(failure.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [("not a certificate\n", "holds no usable PEM certificate"), ("", "holds no usable PEM certificate")],
)
def test_a_bundle_without_certificates_is_refused(settings_with, tmp_path, content, problem):
    path = tmp_path / "bad.pem"
    path.write_text(content)
    with pytest.raises(LeadpipeConfigError, match=problem):
        settings_with(ca_bundle=str(path))


def test_a_relative_bundle_path_is_refused(settings_with):
    with pytest.raises(LeadpipeConfigError, match=r"ca_bundle must be an absolute path, got 'certs/ca\.pem'"):
        settings_with(ca_bundle="certs/ca.pem")


def test_a_replaced_bundle_is_reloaded(tmp_path):
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    first = api_settings.ssl_context(str(path))
    assert api_settings.ssl_context(str(path)) is first  # cached while the file is unchanged
    path.write_bytes(path.read_bytes() + trustme.CA().cert_pem.bytes())
    assert api_settings.ssl_context(str(path)) is not first


def test_the_proxy_password_is_neither_in_repr_nor_in_redacted_text(settings_with):
    settings = settings_with(proxy=f"http://bob:{PASSWORD}@proxy.corp:3128")
    assert PASSWORD not in repr(settings) and "proxy.corp" not in repr(settings)
    assert PASSWORD in settings.secrets() and API_KEY in settings.secrets()
    assert redaction.redact(f"{API_KEY} via {PASSWORD}", settings) == "*** via ***"


def test_plain_http_urls_never_use_a_proxy(settings_with):
    settings = settings_with(proxy="http://proxy.corp:3128")
    assert api_settings.network_kwargs(settings, "https://files.example.com/x")["proxy"] == settings.proxy
    kwargs = api_settings.network_kwargs(settings, "http://127.0.0.1:8080/x")
    assert "proxy" not in kwargs and kwargs["trust_env"] is False
    assert "X-API-Key" not in api_settings.network_kwargs(settings, "https://files.example.com/x")["headers"]


# -- the sharing key -------------------------------------------------------------------------------


def test_the_sharing_key_follows_the_credential_not_the_connection_id():
    settings = api_settings.ApiSettings(conn_id="a", base_url="https://api.aws53.cloud", api_key=API_KEY)
    same = dataclasses.replace(settings, conn_id="b")
    assert api_settings.sharing_key(settings) == api_settings.sharing_key(same)
    for change in (
        {"api_key": API_KEY + "x"},
        {"base_url": "https://other.example"},
        {"proxy": "http://proxy.corp:3128"},
        {"ca_bundle": "/etc/ssl/corp.pem"},
        {"timeout": 5.0},
        {"max_retries": 0},
        {"retry_backoff": 2.0},
    ):
        assert api_settings.sharing_key(dataclasses.replace(settings, **change)) != api_settings.sharing_key(
            settings
        ), change


def test_the_sharing_key_is_salted_per_process():
    settings = api_settings.ApiSettings(conn_id="a", base_url="https://api.aws53.cloud", api_key=API_KEY)
    key = api_settings.sharing_key(settings)
    assert API_KEY.encode() not in key and len(key) == 32
    code = (
        "from airflow_provider_leadpipe.hooks import settings as api_settings;"
        "print(api_settings.sharing_key(api_settings.ApiSettings(conn_id='a', "
        f"base_url='https://api.aws53.cloud', api_key={API_KEY!r})).hex())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert len(other.strip()) == 64 and other.strip() != key.hex()  # a fingerprint is useless elsewhere


# -- concurrent connection lookups -------------------------------------------------------------------


@pytest.fixture
def lookups(monkeypatch):
    """Counts the async connection lookups of LeadpipeHook (each one takes 50 ms)."""
    counted = []
    original = LeadpipeHook._aget_leadpipe_connection

    async def slow_lookup(self):
        counted.append(self.leadpipe_conn_id)
        await asyncio.sleep(0.05)
        return await original(self)

    monkeypatch.setattr(LeadpipeHook, "_aget_leadpipe_connection", slow_lookup)
    return counted


async def test_concurrent_lookups_of_one_connection_are_one_lookup(leadpipe_conn, lookups):
    settings = await asyncio.gather(*(LeadpipeHook().aget_settings() for _ in range(50)))
    assert lookups == ["leadpipe_default"]
    assert {s.api_key for s in settings} == {API_KEY}
    # Nothing is kept once the lookup completed: a later hook reads the connection again.
    leadpipe_conn(password="sk_live_ROTATED_77")
    assert (await LeadpipeHook().aget_settings()).api_key == "sk_live_ROTATED_77"
    assert len(lookups) == 2


async def test_lookups_with_other_overrides_or_ids_are_separate(leadpipe_conn, lookups):
    leadpipe_conn("lp_other")
    hooks = [LeadpipeHook(), LeadpipeHook(timeout=5), LeadpipeHook("lp_other"), LeadpipeHook()]
    settings = await asyncio.gather(*(hook.aget_settings() for hook in hooks))
    assert sorted(lookups) == ["leadpipe_default", "leadpipe_default", "lp_other"]
    assert [s.timeout for s in settings] == [30.0, 5.0, 30.0, 30.0]


async def test_a_cancelled_waiter_does_not_fail_the_shared_lookup(leadpipe_conn, lookups):
    first = asyncio.create_task(LeadpipeHook().aget_settings())
    second = asyncio.create_task(LeadpipeHook().aget_settings())
    # One pass of the event loop: both have joined the lookup, which takes at least 50 ms more (not a
    # 10 ms sleep, after which a slow machine may have finished the lookup: nothing left to cancel).
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).api_key == API_KEY
    assert lookups == ["leadpipe_default"]
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.fixture
def reads(monkeypatch):
    """Records each async connection lookup of LeadpipeHook as (start time, key it read); the
    connection is read as the lookup starts, and the answer arrives 50 ms later."""
    seen = []
    original = LeadpipeHook._aget_leadpipe_connection

    async def read_then_wait(self):
        conn = await original(self)
        seen.append((asyncio.get_running_loop().time(), conn.password))
        await asyncio.sleep(0.05)
        return conn

    monkeypatch.setattr(LeadpipeHook, "_aget_leadpipe_connection", read_then_wait)
    return seen


async def test_a_lookup_that_has_started_is_never_joined(leadpipe_conn, reads):
    first = asyncio.create_task(LeadpipeHook().aget_settings())
    while not reads:  # the first lookup has read the connection and is still in flight
        await asyncio.sleep(0.005)
    leadpipe_conn(password="sk_live_ROTATED_77")

    later = await LeadpipeHook().aget_settings()

    assert later.api_key == "sk_live_ROTATED_77"  # not the answer of the lookup in flight
    assert (await first).api_key == API_KEY
    assert [key for _, key in reads] == [API_KEY, "sk_live_ROTATED_77"]
