"""Corporate networks, for real over loopback: a private CA (``ca_bundle``) and a CONNECT proxy (``proxy``).

The API sandbox is reached over HTTPS through a TLS front whose certificate comes from a throw-away
CA, and optionally through a forward proxy that records every byte it receives (tests/hardening/corporate.py).
"""

from __future__ import annotations

import json

import httpx
import pytest
import trustme

from airflow_provider_leadpipe.exceptions import LeadpipeConnectionError
from airflow_provider_leadpipe.hooks import settings as api_settings
from airflow_provider_leadpipe.hooks.leadpipe import ACCOUNT_PATH, LeadpipeHook
from tests.hardening.corporate import CorporateNetwork

#: A distinctive key: any occurrence of it in what the proxy received is a leak.
KEY = "sk_live_CORPNET_5e4d3c2b1a09"
ORG = "Corporate Org"
PROXY_USER, PROXY_PASSWORD = "alice", "pr0xy-S3cret-77"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def network(leadpipe_sandbox, ca, tmp_path, monkeypatch):
    """The sandbox behind HTTPS from a private CA, a proxy, and a proxy that wants a password."""
    for name in PROXY_VARIABLES:  # the runner's own proxy settings must not decide these tests
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    leadpipe_sandbox.configure_key(KEY)
    leadpipe_sandbox.set_organization(name=ORG, api_key=KEY)
    bundle = tmp_path / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    port = int(leadpipe_sandbox.url.rsplit(":", 1)[1])
    corp = CorporateNetwork(ca, str(bundle), port, (PROXY_USER, PROXY_PASSWORD))
    yield corp
    corp.close()


@pytest.fixture
def connect(network, monkeypatch):
    """Define ``leadpipe_default`` to the TLS front with the given extras (no retries)."""

    def connect(**extra) -> LeadpipeHook:
        conn = {
            "conn_type": "leadpipe",
            "host": network.front.url,
            "password": KEY,
            "extra": json.dumps({"max_retries": 0, **extra}),
        }
        monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", json.dumps(conn))
        return LeadpipeHook()

    return connect


async def account_name_both_ways(hook: LeadpipeHook) -> list[str]:
    """The organization name, read by the sync client and then by the async one."""
    with hook:
        names = [hook.get_account_status().organization.name]
    async with hook:
        names.append((await hook.aget_account_status()).organization.name)
    return names


async def test_a_private_ca_fails_without_ca_bundle_and_passes_with_it(network, connect, leadpipe_sandbox):
    with connect() as hook, pytest.raises(LeadpipeConnectionError) as failure:
        hook.get_account_status()
    assert "not trusted" in str(failure.value) and "ca_bundle" in str(failure.value)
    async with connect() as hook:
        with pytest.raises(LeadpipeConnectionError, match="ca_bundle"):
            await hook.aget_account_status()
    assert leadpipe_sandbox.request_count(ACCOUNT_PATH, api_key=KEY) == 0  # refused before sending

    assert await account_name_both_ways(connect(ca_bundle=network.ca_bundle)) == [ORG] * 2
    assert leadpipe_sandbox.request_count(ACCOUNT_PATH, api_key=KEY) == 2


async def test_the_proxy_carries_the_traffic_when_set_and_none_when_unset(network, connect):
    assert await account_name_both_ways(connect(ca_bundle=network.ca_bundle)) == [ORG] * 2
    assert network.proxy.heads == []

    hook = connect(ca_bundle=network.ca_bundle, proxy=network.proxy.url)
    assert await account_name_both_ways(hook) == [ORG] * 2
    # One tunnel per client (sync, then async), each to the API's host and port and nothing else.
    assert network.proxy.request_lines == [f"CONNECT localhost:{network.front.port} HTTP/1.1"] * 2


async def test_the_key_crosses_the_proxy_only_inside_the_tls_tunnel(network, connect):
    hook = connect(ca_bundle=network.ca_bundle, proxy=network.proxy.url)
    assert await account_name_both_ways(hook) == [ORG] * 2
    assert len(network.proxy.received) > 1000  # two TLS handshakes and two requests went through it
    assert KEY.encode() not in network.proxy.received
    assert b"x-api-key" not in network.proxy.received.lower()
    for head in network.proxy.heads:  # the proxy's own view: CONNECT host:port and plain headers
        assert b"x-api-key" not in head.lower() and KEY.encode() not in head


async def test_environment_proxy_applies_when_the_extra_is_unset(network, connect, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", network.proxy.url)
    assert await account_name_both_ways(connect(ca_bundle=network.ca_bundle)) == [ORG] * 2
    assert len(network.proxy.heads) == 2

    monkeypatch.setenv("NO_PROXY", "localhost")
    assert await account_name_both_ways(connect(ca_bundle=network.ca_bundle)) == [ORG] * 2
    assert len(network.proxy.heads) == 2  # NO_PROXY honoured


async def test_proxy_credentials_are_sent_to_the_proxy_and_never_shown(network, connect, caplog, capsys):
    proxy = network.auth_proxy
    good = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    assert await account_name_both_ways(connect(ca_bundle=network.ca_bundle, proxy=good)) == [ORG] * 2
    assert all(b"proxy-authorization: basic" in head.lower() for head in proxy.heads)

    bad = f"http://{PROXY_USER}:wrong-{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    hook = connect(ca_bundle=network.ca_bundle, proxy=bad)
    with hook, pytest.raises(LeadpipeConnectionError) as failure:
        hook.get_account_status()
    assert "407" in str(failure.value)
    shown = str(failure.value) + repr(hook.settings) + caplog.text + str(capsys.readouterr())
    assert PROXY_PASSWORD not in shown and KEY not in shown
    assert hook.redact(f"echo {bad}") == f"echo http://{PROXY_USER}:***@127.0.0.1:{proxy.port}"


def test_test_connection_uses_the_network_settings(network, connect):
    ok, message = connect(ca_bundle=network.ca_bundle, proxy=network.proxy.url).test_connection()
    assert ok, message
    assert message.startswith(f"Connected to {ORG}")
    assert len(network.proxy.heads) == 1


async def test_network_kwargs_reach_another_host_with_the_same_settings_and_no_key(network, connect):
    settings = connect(ca_bundle=network.ca_bundle, proxy=network.proxy.url).settings
    url = f"{network.front.url}/_sandbox/health"  # any other HTTPS host: here the same front
    with httpx.Client(**api_settings.network_kwargs(settings, url)) as client:
        assert client.get(url).status_code == 200
    async with httpx.AsyncClient(**api_settings.network_kwargs(settings, url)) as client:
        assert (await client.get(url)).status_code == 200
    assert network.proxy.request_lines == [f"CONNECT localhost:{network.front.port} HTTP/1.1"] * 2
    assert "x-api-key" not in {name.lower() for name in api_settings.network_kwargs(settings, url)["headers"]}


async def test_plain_http_on_loopback_never_goes_through_a_proxy(network, leadpipe_sandbox, monkeypatch):
    # The sandbox itself (http://127.0.0.1): a proxy would read the key in clear, so none is used.
    monkeypatch.setenv("HTTP_PROXY", network.proxy.url)
    monkeypatch.setenv("ALL_PROXY", network.proxy.url)
    conn = {"conn_type": "leadpipe", "host": leadpipe_sandbox.url, "password": KEY}
    conn["extra"] = json.dumps({"proxy": network.proxy.url})
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", json.dumps(conn))
    assert await account_name_both_ways(LeadpipeHook()) == [ORG] * 2
    assert network.proxy.heads == []
