"""CSV for people rows: nested API objects as dotted columns, and counting the records of a CSV stream.

* :class:`CsvEncoder`: rows (the API's dicts) as CSV bytes, header first. Nested objects become
  ``company.name``-style columns (as Orbit's run stats name fields), lists JSON text. The columns
  are fixed by the first batch; null or empty objects are empty cells of them, and a later row
  with a value they cannot hold raises
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


def _flatten(record: dict[str, Any], known: frozenset[str], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``company.name``-style keys (as the run stats name fields); lists become JSON text, and so
    does an object where ``known`` has a column for it as a whole (nested deeper than its column).
    A null or empty object is ``(name, None)``: empty cells, whatever its columns."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in known:
            yield from _flatten(value, known, f"{name}.")
        elif value is None or value == {}:
            yield name, None
        elif isinstance(value, (list, dict)):
            yield name, json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            yield name, value


def _row(record: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, value in _flatten(record, known):
        if name in row:  # {"a.b": 1, "a": {"b": 2}}: one column, two values
            raise LeadpipeResponseError(
                f"a record has two values for the CSV column {name!r}; nothing was written"
            )
        row[name] = value
    return row


class CsvEncoder:
    """CSV rows, header first; the columns are fixed by the first page.

    A null or empty object (``"company": null`` or ``{}``) is empty cells of its columns: on the
    first page it adds a ``company`` column only when no record there has ``company.*`` fields,
    and on a later page it never fails. An object where the columns have it whole (``company``
    null on the whole first page, or nested deeper than ``company.name``) is written there as
    JSON text. A later non-empty value no column can hold raises ``LeadpipeResponseError``.
    """

    def __init__(self) -> None:
        self.columns: list[str] | None = None

    def encode(self, records: list[dict[str, Any]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self.columns is None:
            rows = [_row(record, frozenset()) for record in records]
            columns: dict[str, None] = {}
            filled: set[str] = set()
            for row in rows:
                columns.update(dict.fromkeys(row))
                filled.update(name for name, value in row.items() if value is not None)
            # A column only ever empty, whose fields other records have (company.name), is no column.
            self.columns = [
                column
                for column in columns
                if column in filled or not any(other.startswith(f"{column}.") for other in columns)
            ]
            writer.writerow(self.columns)
        known = frozenset(self.columns)
        for record in records:
            row = _row(record, known)
            new = sorted(name for name, value in row.items() if name not in known and value is not None)
            if new:
                raise LeadpipeResponseError(
                    f"a later results page has field(s) {new} the first page did not have, so the "
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
