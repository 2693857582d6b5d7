"""Settings from a ``leadpipe`` connection, and the clients built from them.

:class:`ApiSettings` (base URL, key, timeouts, retries, proxy and CA bundle, each extra checked),
client construction (:func:`client_kwargs` for the API, :func:`network_kwargs` for any other host
such as a signed download URL, both sharing one :func:`ssl_context`), and the in-memory identity of
a credential (:func:`sharing_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import idna

from airflow_provider_leadpipe import __version__
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.utils.validation import (  # the settings' rules, shared with hook_params
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_TIMEOUT,
    MAX_BACKOFF,
    MAX_TIMEOUT,
    MIN_TIMEOUT,
)
from airflow_provider_leadpipe.utils.validation import retry_count_setting as _retry_count
from airflow_provider_leadpipe.utils.validation import seconds_setting as _seconds

DEFAULT_BASE_URL = "https://api.aws53.cloud"
USER_AGENT = f"airflow-provider-leadpipe/{__version__}"
#: The content codings an answer may come in (the client asks for these only: ``Accept-Encoding``);
#: the body stream (:mod:`.body`) decodes them, not httpx, so that the decoded size is bounded.
ACCEPT_ENCODING = "gzip, deflate"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@dataclass(frozen=True)
class ApiSettings:
    """Everything needed to talk to the API, resolved once from the connection.

    The key and the proxy URL (which may hold the proxy's credentials) are excluded from ``repr``
    so a settings object can be logged or shown in a traceback.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    #: The ``proxy`` extra: an ``http://`` or ``https://`` proxy URL; None: the environment's
    #: ``HTTPS_PROXY`` / ``NO_PROXY`` apply, as in any httpx client.
    proxy: str | None = field(default=None, repr=False)
    #: The ``ca_bundle`` extra: a PEM file of CA certificates trusted instead of the default ones.
    ca_bundle: str | None = None

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown: the API key and the proxy's password, if any."""
        found = [self.api_key]
        password = urlsplit(self.proxy).password if self.proxy else None
        if password:
            found += [password, unquote(password)]
        return tuple(dict.fromkeys(secret for secret in found if secret))

    @classmethod
    def from_connection(
        cls,
        conn: Any,
        extra: Mapping[str, Any] | Any,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_backoff: float | None = None,
    ) -> ApiSettings:
        """Build settings from an Airflow connection; arguments override the connection's extra."""
        conn_id = conn.conn_id
        if extra is None:  # an extra of JSON null: no settings
            extra = {}
        if not isinstance(extra, Mapping):  # Airflow hands over any JSON value (a list, a number...)
            kind = {list: "array", str: "string", bool: "boolean"}.get(type(extra), "number")
            raise LeadpipeConfigError(
                f"Leadpipe connection '{conn_id}': extra must be a JSON object like "
                f'{{"timeout": 30, "max_retries": 3}}, got a JSON {kind}'
            )
        for name in ("host", "password"):
            if not isinstance(getattr(conn, name), (str, type(None))):
                raise LeadpipeConfigError(f"Leadpipe connection '{conn_id}': {name} must be text")
        api_key = (conn.password or "").strip()
        if not api_key:
            raise LeadpipeConfigError(
                f"Leadpipe connection '{conn_id}' has no API key: put the organization key (sk_...) "
                "in the connection's password field ('API key' in the UI)."
            )
        if not all(33 <= ord(char) <= 126 for char in api_key):
            # httpx would fail on it deep in header encoding, with the key in the traceback.
            raise LeadpipeConfigError(
                f"Leadpipe connection '{conn_id}': the API key contains a space, control or non-ASCII "
                "character; paste the organization key (sk_...) again without it."
            )
        return cls(
            conn_id=conn_id,
            base_url=normalize_base_url(conn.host, conn.port, conn_id=conn_id),
            api_key=api_key,
            # From the connection: the range its form states; from code, also less than a second.
            timeout=_seconds(timeout, "timeout", conn_id, DEFAULT_TIMEOUT, MAX_TIMEOUT)
            if timeout is not None
            else _seconds(
                extra.get("timeout"), "timeout", conn_id, DEFAULT_TIMEOUT, MAX_TIMEOUT, MIN_TIMEOUT
            ),
            max_retries=_retry_count(
                max_retries if max_retries is not None else extra.get("max_retries"), conn_id
            ),
            retry_backoff=_seconds(
                retry_backoff, "retry_backoff", conn_id, DEFAULT_RETRY_BACKOFF, MAX_BACKOFF
            ),
            proxy=_proxy_url(extra.get("proxy"), conn_id),
            ca_bundle=_ca_bundle(extra.get("ca_bundle"), conn_id),
        )


def _proxy_url(value: Any, conn_id: str) -> str | None:
    """The ``proxy`` extra, checked; None when unset. The value is never echoed: it may hold a password."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    problem = None
    if not isinstance(value, str):
        problem = f"it must be a URL string, not {type(value).__name__}"
    else:
        value = value.strip()
        try:
            parts = urlsplit(value)
            hostname = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            problem = "it is not a valid URL (check IPv6 brackets and that the port is a number)"
        else:
            if parts.scheme.lower() not in ("http", "https"):
                problem = "it must start with http:// or https://"
            elif not hostname or _valid_hostname(hostname) is None:
                problem = "it has no valid host name"
            elif parts.path not in ("", "/") or parts.query or parts.fragment:
                problem = "give only scheme, optional user:password@, host and port"
    if problem:
        raise LeadpipeConfigError(
            f"Leadpipe connection '{conn_id}': proxy refused: {problem} (the value is not shown, as it "
            "may hold the proxy's password)"
        )
    return value


def _ca_bundle(value: Any, conn_id: str) -> str | None:
    """The ``ca_bundle`` extra: an absolute path to a readable PEM file; None when unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise LeadpipeConfigError(
            f"Leadpipe connection '{conn_id}': ca_bundle must be the path of a PEM file, "
            f"not {type(value).__name__}"
        )
    path = os.path.expanduser(value.strip())
    if not os.path.isabs(path):
        # A relative path would depend on the working directory of each worker and triggerer.
        raise LeadpipeConfigError(
            f"Leadpipe connection '{conn_id}': ca_bundle must be an absolute path, got {path!r}"
        )
    try:
        ssl_context(path)
    except LeadpipeConfigError as exc:
        raise LeadpipeConfigError(f"Leadpipe connection '{conn_id}': {exc}") from None
    return path


_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _valid_hostname(hostname: str) -> str | None:
    """The ASCII (IDNA) form of ``hostname``, or None when it cannot be a host name or address.

    Non-ASCII names go through ``idna`` (UTS 46). ASCII names are checked label by label here
    because ``idna`` refuses ``_``, which container host names (docker compose services) use.
    """
    if ":" in hostname:  # urlsplit only lets an IPv6 address through with a colon
        try:
            return str(ipaddress.IPv6Address(hostname))
        except ValueError:
            return None
    if not hostname.isascii():
        try:
            hostname = idna.encode(hostname, uts46=True).decode("ascii")
        except idna.IDNAError:
            return None
    labels = hostname.split(".")
    if len(hostname) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    for label in labels:
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError:
                return None
    return hostname


def is_loopback(hostname: str) -> bool:
    """True for localhost and 127.0.0.0/8 / ::1 addresses."""
    if hostname.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def normalize_base_url(host: str | None, port: int | None = None, *, conn_id: str = "?") -> str:
    """Turn the connection's host (with or without scheme) and port into a base URL.

    No host means the production API. A host without a scheme gets ``https://``, except a loopback
    host (the sandbox or a local tunnel), which gets ``http://``. Plain ``http://`` is refused for
    any non-loopback host so the key never crosses a network unencrypted. Paths, queries and
    credentials in the URL are refused: the key belongs in the password field.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    raw = host if "://" in host else f"//{host}"
    try:
        parts = urlsplit(raw)
        hostname = parts.hostname or ""
        url_port = parts.port
    except ValueError:
        # urlsplit's message can quote part of the URL (a port made of a pasted key): never echo it.
        raise LeadpipeConfigError(
            f"Leadpipe connection '{conn_id}': base URL is not a valid URL "
            "(check IPv6 brackets and that the port is a number from 1 to 65535)"
        ) from None
    problem = None
    checked = _valid_hostname(hostname) if hostname else None
    if not hostname:
        problem = "it has no host name"
    elif checked is None:
        problem = "it has an invalid host name (letters, digits, '-', '_' and dots, or an IP address)"
    elif parts.username is not None or parts.password is not None:
        problem = "it contains credentials; put the API key in the password field instead"
    elif parts.path not in ("", "/"):
        problem = "it has a path; give only scheme, host and port"  # never echoed: may hold a key
    elif parts.query or parts.fragment:
        problem = "it has a query or fragment; give only scheme, host and port"
    scheme = parts.scheme.lower() or ("http" if hostname and is_loopback(hostname) else "https")
    if problem is None and scheme not in ("http", "https"):
        problem = f"scheme {parts.scheme!r} is not http or https"
    if problem is None and scheme == "http" and not is_loopback(hostname):
        problem = "plain http:// is only allowed for loopback hosts (the sandbox); use https://"
    if problem or checked is None:
        raise LeadpipeConfigError(f"Leadpipe connection '{conn_id}': base URL refused: {problem}")
    port = url_port or (port if port else None)  # the 3.3.1 UI sends port=0 for "no port"
    if port is not None and not (isinstance(port, int) and 0 < port <= 65535):
        raise LeadpipeConfigError(
            f"Leadpipe connection '{conn_id}': port must be a number from 1 to 65535, got {port!r}"
        )
    netloc = f"[{checked}]" if ":" in checked else checked
    if port:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}"


def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """The TLS context for ``ca_bundle`` (a PEM file), or httpx's default (certifi, ``SSL_CERT_FILE``).

    Creating an SSLContext and loading CA certificates costs milliseconds; httpx would do it for
    every client. Shared, read-only contexts keep per-connection clients cheap in a triggerer. A
    bundle's context is reloaded when the file changes (its modification time or size).

    :raises LeadpipeConfigError: the bundle is missing, unreadable or holds no PEM certificate.
    """
    if ca_bundle is None:
        return _default_ssl_context()
    try:
        stat = os.stat(ca_bundle)
    except OSError as exc:
        raise LeadpipeConfigError(
            f"CA bundle {ca_bundle!r} cannot be read: {exc.strerror or type(exc).__name__}"
        ) from None
    return _bundle_ssl_context(ca_bundle, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


@lru_cache(maxsize=16)
def _bundle_ssl_context(path: str, mtime_ns: int, size: int) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise LeadpipeConfigError(
            f"CA bundle {path!r} holds no usable PEM certificate ({reason}); give a file of "
            "-----BEGIN CERTIFICATE----- blocks"
        ) from None


def network_kwargs(settings: ApiSettings, url: str) -> dict[str, Any]:
    """Constructor arguments for an ``httpx.Client`` / ``AsyncClient`` that talks to ``url``'s host
    with the connection's network settings (proxy, CA bundle, timeout) and **no API key**.

    For the API use :func:`client_kwargs`; this is for any other host, e.g. a signed download URL.
    A ``proxy`` extra is used for every ``https://`` URL (the environment's ``HTTPS_PROXY`` and
    ``NO_PROXY`` otherwise). A plain ``http://`` URL (refused for the API except on loopback) never
    goes through any proxy, configured or from the environment: the proxy would read it in clear.
    """
    kwargs: dict[str, Any] = {
        "headers": {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        "timeout": httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)),
        "verify": ssl_context(settings.ca_bundle),
        "follow_redirects": False,
    }
    if httpx.URL(url).scheme == "http":
        kwargs["trust_env"] = False
    elif settings.proxy is not None:
        kwargs["proxy"] = settings.proxy
    return kwargs


def client_kwargs(settings: ApiSettings) -> dict[str, Any]:
    """Constructor arguments shared by the API's ``httpx.Client`` and ``httpx.AsyncClient``."""
    kwargs = network_kwargs(settings, settings.base_url)
    kwargs["base_url"] = settings.base_url
    kwargs["headers"] = {
        "X-API-Key": settings.api_key,
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Accept-Encoding": ACCEPT_ENCODING,
    }
    return kwargs


#: Per-process and never stored: a :func:`sharing_key` means nothing outside this process.
_SHARING_SALT = secrets.token_bytes(32)


def sharing_key(settings: ApiSettings) -> bytes:
    """What two connections must have in common to share requests and answers: one account reached
    the same way. An HMAC (with a per-process random salt) of the base URL, the API key, the proxy,
    the CA bundle, timeout and retries; not the connection id, which may resolve to different keys
    (rotation, per-team secrets backends). Held in memory only; never log or serialize it.
    """
    parts = (
        settings.base_url,
        settings.api_key,
        settings.proxy or "",
        settings.ca_bundle or "",
        repr(settings.timeout),
        str(settings.max_retries),
        repr(settings.retry_backoff),
    )
    return hmac.new(_SHARING_SALT, "\0".join(parts).encode(), hashlib.sha256).digest()
