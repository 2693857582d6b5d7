"""Redaction: the API key and a proxy password, and every 8+ character piece of them, out of any
text that came from outside before it goes into a message."""

from __future__ import annotations

import json
import string
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_leadpipe.hooks.settings import ApiSettings

_MAX_MESSAGE = 200
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
