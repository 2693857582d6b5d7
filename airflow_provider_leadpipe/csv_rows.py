"""CSV for people rows: nested API objects as dotted columns, and counting the records of a CSV stream.

* :class:`CsvEncoder`: rows (the API's dicts) as CSV bytes, header first. Nested objects become
  ``company.name``-style columns (as Orbit's run stats name fields), lists JSON text. The columns
  are fixed by the first batch; a later row with a field they lack raises
  :class:`~airflow_provider_leadpipe.exceptions.LeadpipeResponseError` rather than dropping it.
* :class:`RowCounter`: the number of records in a CSV byte stream (newlines outside quotes),
  without parsing it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError


def _flatten(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``company.name``-style keys (as the run stats name fields); lists become JSON text."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, (list, dict)):
            yield name, json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            yield name, value


class CsvEncoder:
    """CSV rows, header first; the columns are fixed by the first page."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None

    def encode(self, records: list[dict[str, Any]]) -> bytes:
        rows = [dict(_flatten(record)) for record in records]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self.columns is None:
            columns: dict[str, None] = {}
            for row in rows:
                columns.update(dict.fromkeys(row))
            self.columns = list(columns)
            writer.writerow(self.columns)
        known = set(self.columns)
        for row in rows:
            new = set(row) - known
            if new:
                raise LeadpipeResponseError(
                    f"a later results page has field(s) {sorted(new)} the first page did not have, so the "
                    "CSV has no column for them; nothing was written. Use format='jsonl' for open-ended rows"
                )
            writer.writerow([_csv_value(row.get(column)) for column in self.columns])
        return buffer.getvalue().encode()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class RowCounter:
    """Counts CSV records in a byte stream (newlines outside quotes), without parsing the rows."""

    def __init__(self) -> None:
        self.lines = 0
        self.in_quotes = False
        self.last = b"\n"

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if not self.in_quotes and b'"' not in chunk:
            self.lines += chunk.count(b"\n")
        else:
            for index, part in enumerate(chunk.split(b'"')):
                if index:
                    self.in_quotes = not self.in_quotes
                if not self.in_quotes:
                    self.lines += part.count(b"\n")
        self.last = chunk[-1:]

    @property
    def records(self) -> int:
        """Data rows: lines (a last line without a newline counts), minus the header."""
        lines = self.lines + (0 if self.last == b"\n" else 1)
        return max(lines - 1, 0)
