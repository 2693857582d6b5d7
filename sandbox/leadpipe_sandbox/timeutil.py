"""Timestamps as the sandbox writes them."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z`` suffix, e.g. ``2026-08-12T10:15:30.123Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(moment: datetime) -> str:
    """An RFC 9110 HTTP-date (``Sun, 06 Nov 1994 08:49:37 GMT``), as used by ``Retry-After``."""
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)
