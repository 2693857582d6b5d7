"""The request core shared by the sync and the async Leadpipe client.

Everything except the line that sends (``client.send`` vs ``await client.send``) lives here once:
settings from the connection (base URL, key, timeouts, retries, proxy and CA bundle), client
construction (:func:`client_kwargs` for the API, :func:`network_kwargs` for any other host such as
a signed download URL), the in-memory identity of a credential (:func:`sharing_key`), response and
error classification, the one place an answer becomes a result or an error (:func:`answer`), and
the retry policy.
:class:`~airflow_provider_leadpipe.hooks.leadpipe.LeadpipeHook` only wires it up.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import ssl
import string
import time
import traceback
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import idna
import tenacity
from tenacity.wait import wait_base

from airflow_provider_leadpipe import __version__
from airflow_provider_leadpipe.exceptions import (
    TRANSIENT_ERRORS,
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeConnectionError,
    LeadpipeError,
    LeadpipeNotFoundError,
    LeadpipeRateLimitError,
    LeadpipeRequestError,
    LeadpipeResponseError,
    LeadpipeServerError,
    LeadpipeSlotsFullError,
)
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
#: The longest ``Retry-After`` honoured; a longer one is shortened to this.
MAX_RETRY_AFTER = 60.0
USER_AGENT = f"airflow-provider-leadpipe/{__version__}"
#: The most an answer read whole (every one but a streamed download) may decode to: 16 MiB, some
#: thirty times the largest real page (100 audience people or 50 visitors, ~0.5 MB).
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_MAX_MESSAGE = 200

log = logging.getLogger("airflow.providers.leadpipe")


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


#: The shortest run of the API key's characters that counts as a leak, and is redacted.
KEY_FRAGMENT = 8
_REDACTED = "***"
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # length-preserving lower()


def redact_secret(text: str, secret: str) -> str:
    """``text`` with every run of 8 or more characters that also occurs in ``secret`` (ignoring
    ASCII case) replaced by ``***``; with the whole secret replaced when it is shorter than that.

    Why fragments and not only the whole key: Airflow's secrets masker, like ``str.replace``, only
    matches the whole key, and text gets cut on its way to a user -- by us (a 200-character
    summary), by a server that truncates what it echoes, by a log formatter or a traceback printer
    that shortens long values (structlog prints locals cut to 80 characters). Any cut through the
    key leaves a prefix the whole-key match no longer sees. With every 8+ character piece gone, no
    later cut, join or truncation can bring a piece of the key back. (Eight characters of a
    random key say little; a shorter limit would start to eat ordinary words.)
    """
    if not secret:
        return text
    size = min(KEY_FRAGMENT, len(secret))
    folded = text.translate(_FOLD)
    spans: list[tuple[int, int]] = []
    for window in _windows(secret, size):  # str.find runs in C: no Python step per character
        start = folded.find(window)
        while start != -1:
            spans.append((start, start + size))
            start = folded.find(window, start + 1)
    if not spans:
        return text
    spans.sort()
    runs: list[list[int]] = []
    for start, stop in spans:
        if runs and start <= runs[-1][1]:  # overlapping or touching: one run
            runs[-1][1] = max(runs[-1][1], stop)
        else:
            runs.append([start, stop])
    pieces, kept_from = [], 0
    for start, stop in runs:
        pieces += [text[kept_from:start], _REDACTED]
        kept_from = stop
    pieces.append(text[kept_from:])
    redacted = "".join(pieces)
    # "***" next to what is left could only form a new piece if the key itself contains "*".
    return redact_secret(redacted, secret) if "*" in secret and len(redacted) < len(text) else redacted


@lru_cache(maxsize=64)
def _windows(secret: str, size: int) -> frozenset[str]:
    folded = secret.translate(_FOLD)
    return frozenset(folded[i : i + size] for i in range(len(folded) - size + 1))


def redact(text: str, settings: ApiSettings) -> str:
    """Remove the API key and a proxy password, and every 8+ character piece of them, from text
    that came from outside (e.g. an echoed error body)."""
    for secret in settings.secrets():
        text = redact_secret(text, secret)
    return text


def response_text(value: Any, settings: ApiSettings, limit: int = _MAX_MESSAGE) -> str:
    """``value`` (a string, number or JSON object from a response) as one line of at most ``limit``
    characters, for a message. The key is redacted first, before anything else touches the text."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError):
            text = f"a {type(value).__name__}"
    text = " ".join(redact(text, settings).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Undecodable(str):
    """What :func:`_json_body` returns for a body it cannot decode: the reason, not the body."""


NOT_JSON, TOO_DEEP = _Undecodable("a body that is not JSON"), _Undecodable("JSON nested too deeply to decode")


def _json_body(response: httpx.Response) -> Any:
    """The decoded body, or :data:`NOT_JSON` / :data:`TOO_DEEP`.

    Returns rather than raises, so no decoder exception (whose ``doc`` holds the whole body) is
    left as the context of the error raised from it."""
    try:
        return response.json()
    except RecursionError:
        return TOO_DEEP
    except (ValueError, UnicodeDecodeError):
        return NOT_JSON


def _content_type(response: httpx.Response, settings: ApiSettings) -> str:
    header = redact(response.headers.get("content-type", "no content type"), settings)  # before the cut
    return response_text(header.split(";")[0], settings, 60)


def summarize_error_body(response: httpx.Response, settings: ApiSettings) -> tuple[str, str | None]:
    """A short human summary of an error body, whatever its shape (never the whole body), and the
    API's error code (``error.code`` of the envelope, when it is a string) or None.

    Both are redacted here, field by field, before they are joined or shortened, so no caller
    holds an unredacted copy in a variable (tracebacks that print locals, like Airflow 3's, would
    show it)."""
    body = _json_body(response)
    message: Any = None
    code: Any = None
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message, code = error.get("message"), error.get("code")
        elif isinstance(error, str):
            message = error
        for key in ("message", "detail", "title"):
            if message is None and isinstance(body.get(key), str):
                message = body[key]
    api_code = response_text(code, settings, 80) if isinstance(code, str) else None
    if message is None:
        shape = f", {body}" if isinstance(body, _Undecodable) else ""
        return f"{_content_type(response, settings)} body{shape}, {len(response.content)} bytes", api_code
    text = response_text(message, settings)
    summary = f"{text} [{api_code}]" if api_code and api_code != "HTTP_ERROR" else text
    return summary, api_code


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone also accepts "²" (latin-1 0xB2)
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def describe(request: httpx.Request) -> str:
    return f"{request.method} {request.url.path}"


#: Turns one response into a result, or raises a typed error (:func:`handle_response` is the default).
Handler = Callable[[httpx.Response, "ApiSettings"], Any]


def handle_response(response: httpx.Response, settings: ApiSettings) -> Any:
    """Return the JSON payload of a 2xx response; raise the matching typed error otherwise."""
    status = response.status_code
    where = describe(response.request)
    if 200 <= status < 300:
        payload = _envelope(response, settings)
        if isinstance(payload, str):  # what is wrong with it, never the body itself
            raise LeadpipeResponseError(
                f"Leadpipe {where} answered HTTP {status} {payload}", http_status=status
            )
        return payload
    detail, code = summarize_error_body(response, settings)
    base = f"Leadpipe {where} failed with HTTP {status}: {detail}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 403 and (code == "SLOTS_FULL" or "SLOTS_FULL" in detail):
        raise LeadpipeSlotsFullError(
            f"{base} (every Orbit audience slot is in use: free one by pausing another audience, "
            "or add slots to the plan)",
            http_status=status,
            api_code="SLOTS_FULL",
        )
    if status in (401, 403):
        raise LeadpipeAuthError(
            f"{base} (connection '{settings.conn_id}': check the API key and that the organization "
            "is active)",
            http_status=status,
            api_code=code,
        )
    if status == 429:
        raise LeadpipeRateLimitError(base, retry_after=retry_after, http_status=status, api_code=code)
    if status >= 500:
        raise LeadpipeServerError(base, retry_after=retry_after, http_status=status, api_code=code)
    if status == 404:
        raise LeadpipeNotFoundError(base, http_status=status, api_code=code)
    if status == 409:
        raise LeadpipeConflictError(base, http_status=status, api_code=code)
    if 400 <= status < 500:
        raise LeadpipeRequestError(base, http_status=status, api_code=code)
    raise LeadpipeResponseError(
        f"Leadpipe {where} answered with unexpected HTTP {status}", http_status=status
    )


def parsing(parse: Callable[[Any], Any]) -> Handler:
    """A handler: :func:`handle_response`, then ``parse`` (e.g. ``AccountStatus.from_response``) on
    the payload, so the payload is parsed inside :func:`answer`."""

    def handle(response: httpx.Response, settings: ApiSettings) -> Any:
        return parse(handle_response(response, settings))

    return handle


def answer(handler: Handler, response: httpx.Response, settings: ApiSettings) -> Any:
    """``handler(response, settings)``: the one place where an answer becomes a result or an error.

    Every hook call goes through here (``LeadpipeHook.send``), and every response is parsed inside
    a handler. On failure the error leaves with nothing of the answer in reach: the frames below
    (handlers, models, pydantic), whose arguments and locals held the body, are cleared; this
    frame drops the response; and an error that is not a ``LeadpipeError`` (a pydantic
    ``ValidationError`` quotes its input) becomes a ``LeadpipeResponseError`` naming only its type,
    raised without it as cause or context. Tracebacks that print locals (Airflow's rich ones) then
    show no copy of the body.
    """
    try:
        return handler(response, settings)
    except LeadpipeError as exc:
        failure: LeadpipeError = exc
    except Exception as exc:  # never kept: a model's or decoder's error may quote the body
        traceback.clear_frames(exc.__traceback__)
        failure = LeadpipeResponseError(
            f"Leadpipe {describe(response.request)} answered HTTP {response.status_code} with a body "
            f"that could not be read ({type(exc).__name__})",
            http_status=response.status_code,
        )
    del response
    forget_locals(failure)
    try:
        raise failure
    finally:
        del failure  # no reference cycle through this frame


def forget_locals(exc: BaseException) -> None:
    """Clear the local variables of every finished frame in the tracebacks of ``exc`` and of its
    ``__cause__`` / ``__context__`` chain (frames still running are left as they are)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def _envelope(response: httpx.Response, settings: ApiSettings) -> Mapping[str, Any] | str:
    """The payload of a 2xx answer, or a description of what is wrong with it."""
    payload = _json_body(response)
    if isinstance(payload, _Undecodable):
        return f"with {payload} ({_content_type(response, settings)}, {len(response.content)} bytes)"
    if not isinstance(payload, Mapping) or "data" not in payload:
        return "without the documented 'data' envelope"
    return payload


def transport_error(
    exc: httpx.TransportError, request: httpx.Request, settings: ApiSettings
) -> LeadpipeConnectionError:
    """Wrap an httpx network error; records whether the request may have reached the server.

    httpx's message can quote what the server sent (h11 reports an illegal status or header line
    in full), so it is redacted and shortened like any response text."""
    reason = type(exc).__name__
    text = response_text(str(exc), settings)
    # Connect-phase failures never reached the server, so even a POST may be retried safely.
    # A proxy that refuses the CONNECT tunnel (ProxyError) never forwarded the request either.
    unsent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
    sent = not isinstance(exc, unsent)
    suffix = f" ({text})" if text else ""
    if _caused_by(exc, ssl.SSLCertVerificationError):
        suffix += (
            "; the server's TLS certificate is not trusted: behind a TLS-inspecting proxy, set the "
            "connection's ca_bundle extra to a PEM file holding its CA"
        )
    return LeadpipeConnectionError(
        f"Leadpipe {describe(request)} to {request.url.host} failed: {reason}{suffix}", request_sent=sent
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl: a short chain
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


_CLOSED = httpx.ByteStream(b"")


class Unreadable(Exception):
    """The body cannot be read within its bounds: too large once decoded, or in an encoding that
    was not asked for or is corrupt. Carries the reason, never any of the body."""


#: The content codings an answer may come in (the client asks for these only: ``Accept-Encoding``).
#: Decoded here, not by httpx, so that the decoded size is bounded while it is produced.
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Inflater:
    """One content coding, decoded with zlib under a bound on its output (``max_length``)."""

    __slots__ = ("_fallback", "_zlib", "coding")

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._zlib = zlib.decompressobj(_WBITS[coding])
        # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate (as httpx allows).
        self._fallback = coding == "deflate"

    def __call__(self, data: bytes, most: int) -> bytes:
        """Up to ``most`` decoded bytes of ``data``; a body that decodes to more has exceeded it."""
        try:
            out = self._zlib.decompress(data, most)
        except zlib.error:
            if not self._fallback:
                raise
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, most)
        self._fallback = self._fallback and not data
        return out


class _BoundedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body read within bounds: a deadline for the whole answer, and a limit on its
    decoded size.

    httpx's timeouts bound each socket operation, not a whole response, and it has no total
    timeout: a server that trickles a byte per read would hold a request (and a triggerer slot)
    open indefinitely. Checked per received body chunk; a chunk that never comes hits the read
    timeout. (Trickled *headers* stay bounded only by httpcore's 100 KiB header-size limit.)

    httpx decodes ``Content-Encoding`` a whole received chunk at a time, without bound: 64 KiB of
    gzip is 64 MiB decoded, and a 0.2 MB answer grew a process by 420 MB. Here the body is decoded
    under ``limit`` (zlib's ``max_length``), and reading stops with :class:`Unreadable` (or
    ``too_large()``) as soon as the decoded bytes exceed it.
    """

    def __init__(
        self,
        stream: Any,
        request: httpx.Request,
        *,
        limit: int,
        codings: list[str],
        announced: int | None = None,
        deadline: float = math.inf,
        timeout: float = 0.0,
        too_large: Callable[[], Exception] | None = None,
    ):
        self._stream, self._request, self._limit = stream, request, limit
        self._deadline, self._timeout, self._too_large = deadline, timeout, too_large
        self._size = 0
        # A plain body announced (Content-Length) larger than the bound is refused before any read.
        self._announced = announced if announced is not None and not codings else None
        # Decoded in the reverse order of application, as RFC 9110 says (and httpx does).
        unknown = [coding for coding in codings if coding not in _WBITS]
        self._unknown = unknown[0] if unknown else None
        self._inflaters = [_Inflater(coding) for coding in reversed(codings)] if not unknown else []

    def _check(self) -> None:
        if time.monotonic() > self._deadline:
            raise httpx.ReadTimeout(f"no complete answer within {self._timeout:g} s", request=self._request)
        if self._unknown is not None:
            known = re.fullmatch(r"[a-z0-9.+-]{1,20}", self._unknown)  # a coding's name, never other text
            coding = repr(self._unknown) if known else "an unknown one"
            raise Unreadable(f"a body in Content-Encoding {coding}, which was not asked for")

    def _too_much(self) -> Exception:
        if self._too_large is not None:
            return self._too_large()
        return Unreadable(f"more than {_mib(self._limit)} once decoded (the most an answer may be)")

    def _take(self, chunk: bytes) -> bytes:
        self._check()
        if self._inflaters:
            most = self._limit - self._size + 1
            for inflate in self._inflaters:
                try:
                    chunk = inflate(chunk, most)
                except zlib.error:
                    raise Unreadable(f"a body that is not valid {inflate.coding}") from None
        self._size += len(chunk)
        if self._size > self._limit:
            raise self._too_much()
        return chunk

    def _start(self) -> None:
        self._check()
        if self._announced is not None and self._announced > self._limit:
            raise self._too_much()

    def __iter__(self) -> Iterator[bytes]:
        self._start()
        for chunk in self._stream:
            yield self._take(chunk)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._start()
        async for chunk in self._stream:
            yield self._take(chunk)

    # Closing also drops the wrapped stream: httpx's stream refers back to its response, which refers
    # to this wrapper, and that reference cycle would keep the whole exchange (request, headers,
    # pool request, ~40 objects) alive until the garbage collector runs. Without it, refcounting
    # frees them at once. A closed stream is never read again (httpx raises StreamClosed first).
    def close(self) -> None:
        stream, self._stream = self._stream, _CLOSED
        stream.close()

    async def aclose(self) -> None:
        stream, self._stream = self._stream, _CLOSED
        await stream.aclose()


def _mib(size: int) -> str:
    return f"{size / 1048576:g} MiB" if size >= 1048576 else f"{size:,} bytes"


def _announced(response: httpx.Response) -> int | None:
    """The body size ``Content-Length`` announces, if it is one whole number."""
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _codings(response: httpx.Response) -> list[str]:
    """The response's content codings, taken off it: the body stream decodes them, not httpx."""
    header = response.headers.get("content-encoding")
    if not header:
        return []
    del response.headers["content-encoding"]
    return [
        coding
        for coding in (part.strip().lower() for part in header.split(","))
        if coding not in ("", "identity")
    ]


def bound_body(
    response: httpx.Response, limit: int, *, too_large: Callable[[], Exception] | None = None
) -> httpx.Response:
    """Make reading ``response`` (sent with ``stream=True``) stop as soon as its body decodes to
    more than ``limit`` bytes: with ``too_large()`` raised, or :class:`Unreadable` by default.
    For streamed answers (downloads), whose size is known in advance."""
    response.stream = _BoundedStream(
        response.stream,
        response.request,
        limit=limit,
        codings=_codings(response),
        announced=_announced(response),
        too_large=too_large,
    )
    return response


def limit_body_time(response: httpx.Response, started: float, settings: ApiSettings) -> httpx.Response:
    """Make reading ``response`` (sent with ``stream=True``) fail ``settings.timeout`` seconds after
    ``started`` (``time.monotonic()`` before sending), so the timeout bounds the whole answer, and
    stop with :class:`Unreadable` once it decodes to more than :data:`MAX_ANSWER_BYTES`.

    Also forgets the server's reason phrase (``HTTP/1.1 500 <anything>``): it would show in the
    response's ``repr``, which tracebacks that print locals show; the standard phrase is used."""
    response.extensions = {k: v for k, v in response.extensions.items() if k != "reason_phrase"}
    response.stream = _BoundedStream(
        response.stream,
        response.request,
        limit=MAX_ANSWER_BYTES,
        codings=_codings(response),
        announced=_announced(response),
        deadline=started + settings.timeout,
        timeout=settings.timeout,
    )
    return response


def unreadable(
    response: httpx.Response, reason: Unreadable, settings: ApiSettings
) -> httpx.Response | LeadpipeResponseError:
    """What an answer whose body could not be read (:class:`Unreadable`) becomes: for a 2xx, the
    error to raise; for any other status, a stand-in answer with the same status and headers and a
    one-line error body saying why, so the status decides as usual (a 5xx is still retried)."""
    if 200 <= response.status_code < 300:
        return LeadpipeResponseError(
            f"Leadpipe {describe(response.request)} answered HTTP {response.status_code} with "
            f"{response_text(str(reason), settings)}; not read",
            http_status=response.status_code,
        )
    skip = {"content-length", "content-type", "transfer-encoding"}
    headers = [(name, value) for name, value in response.headers.multi_items() if name.lower() not in skip]
    body = {"error": {"message": f"the body was not read: {response_text(str(reason), settings)}"}}
    return httpx.Response(response.status_code, headers=headers, json=body, request=response.request)


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
#: The request header that makes a POST safe to repeat where the API honours it (Orbit's
#: ``POST .../runs``: "reusing the same key returns the same run").
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"


def replay_safe(request: httpx.Request) -> bool:
    """True when sending ``request`` twice has the effect of sending it once: an idempotent method,
    or a request carrying an ``Idempotency-Key``."""
    return request.method in _IDEMPOTENT or IDEMPOTENCY_KEY_HEADER in request.headers


def _is_retryable(exc: BaseException | None, method: str, replay_safe: bool = False) -> bool:
    if not isinstance(exc, TRANSIENT_ERRORS):
        return False
    if replay_safe or method in _IDEMPOTENT:
        return True
    # Non-idempotent (POST): retry only what certainly was not processed.
    if isinstance(exc, LeadpipeConnectionError):
        return not exc.request_sent
    return isinstance(exc, LeadpipeRateLimitError) or exc.http_status == 503


class wait_retry_after(wait_base):
    """Wait what the server's ``Retry-After`` says (capped); otherwise the fallback backoff.

    tenacity has no built-in notion of a server-advised delay, hence this small strategy.
    """

    def __init__(self, fallback: wait_base, cap: float = MAX_RETRY_AFTER):
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.cap)
        return self.fallback(retry_state)


def retry_kwargs(settings: ApiSettings, method: str, *, replay_safe: bool = False) -> dict[str, Any]:
    """Arguments for ``tenacity.Retrying`` / ``AsyncRetrying``: the one retry policy.

    :param replay_safe: the request may be repeated whatever happened to it (see :func:`replay_safe`);
        otherwise a POST is retried only when it certainly was not processed.
    """
    method = method.upper()

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retry %d of %d in %.1f s", exc, state.attempt_number, settings.max_retries, wait)

    return {
        "stop": tenacity.stop_after_attempt(settings.max_retries + 1),
        # Exponential backoff plus jitter; spelled as a sum because tenacity 9.2 renamed
        # wait_exponential_jitter's arguments and we support tenacity >= 8.3.
        "wait": wait_retry_after(
            tenacity.wait_exponential(multiplier=settings.retry_backoff, max=MAX_BACKOFF)
            + tenacity.wait_random(0, settings.retry_backoff)
        ),
        "retry": tenacity.retry_if_exception(lambda exc: _is_retryable(exc, method, replay_safe)),
        "before_sleep": log_retry,
        "reraise": True,
    }


def replay_first_failure(attempt: tenacity.AttemptManager, failure: BaseException) -> None:
    """Make a failed first attempt, made before entering the retry loop, tenacity's attempt 1.

    Most requests succeed at once, and tenacity's retry state costs about as much CPU as the
    provider's other per-request work together and leaves objects in reference cycles for the
    garbage collector, whose passes grow with a triggerer's heap. So the hooks
    send the first attempt bare and enter ``tenacity.(Async)Retrying`` only after a transient
    failure, whose attempt 1 then re-raises that failure here instead of sending again: the same
    attempt count, waits, ``Retry-After``, retry log lines and final error as one retry loop.
    """
    if attempt.retry_state.attempt_number == 1:
        raise failure


__all__ = [
    "DEFAULT_BASE_URL",
    "ApiSettings",
    "answer",
    "bound_body",
    "client_kwargs",
    "forget_locals",
    "handle_response",
    "limit_body_time",
    "network_kwargs",
    "normalize_base_url",
    "parse_retry_after",
    "parsing",
    "replay_first_failure",
    "replay_safe",
    "retry_kwargs",
    "sharing_key",
    "ssl_context",
    "transport_error",
    "unreadable",
]
