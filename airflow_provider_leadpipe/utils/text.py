"""The provider's one way to read a date or date-time and to write numbers and date-times as text."""

from __future__ import annotations

import datetime
from typing import Any

import pendulum


def number_text(value: float | None, *, none: str = "unknown", grouped: bool = False) -> str:
    """A number as people read it: whole values without a fraction (``480``, not ``480.0``),
    others shortest (``:g``); ``grouped`` (the credits page): thousands separated and one decimal
    (``1,250``, ``12.5``). ``none`` stands for a missing value."""
    if value is None:
        return none
    if grouped:
        return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"
    if isinstance(value, int):  # float(value) overflows past 1.8e308; JSON integers have no limit
        return str(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def parse_datetime(value: Any) -> pendulum.DateTime:
    """An ISO 8601 date-time string as a ``pendulum.DateTime`` (a date alone is its midnight).

    :raises ValueError: not a string, or not an ISO 8601 date-time (a time or duration).
    """
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date-time string")
    try:
        parsed = pendulum.parse(value)
    except Exception:
        raise ValueError("expected an ISO 8601 date-time string") from None
    if not isinstance(parsed, pendulum.DateTime):
        raise ValueError("expected an ISO 8601 date-time, not a bare date, time or duration")
    return parsed


def parse_date(value: Any) -> str:
    """A calendar date exactly as Orbit writes it (``YYYY-MM-DD``), returned as the string.

    :raises ValueError: anything else (another length or layout, an impossible day).
    """
    if isinstance(value, str) and len(value) == 10:
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise ValueError("expected a date YYYY-MM-DD")


def iso(value: pendulum.DateTime | None, *, seconds: bool = False) -> str | None:
    """ISO 8601 in UTC (None stays None); ``seconds=True`` drops the fraction (for a log line)."""
    if value is None:
        return None
    value = value.in_timezone("UTC")
    return (value.replace(microsecond=0) if seconds else value).to_iso8601_string()
