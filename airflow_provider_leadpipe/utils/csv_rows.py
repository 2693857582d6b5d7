"""CSV for people rows: nested API objects as dotted columns, and counting the records of a CSV stream.

* :class:`CsvEncoder`: rows (the API's dicts) as CSV bytes, header first. Nested objects become
  ``company.name``-style columns (as Orbit's run stats name fields), lists JSON text. The columns
  are fixed by the first batch; null or empty objects are empty cells of them, and a later row
  with a value they cannot hold raises
  :class:`~airflow_provider_leadpipe.exceptions.LeadpipeResponseError` rather than dropping it.
* :class:`RowCounter`: the number of records in a CSV byte stream (newlines outside quotes),
  without parsing it.
* Formula injection (OWASP "CSV Injection"): with ``formulas="escape"`` (the default) a text cell
  that begins with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or NUL gets a leading ``'``,
  so a spreadsheet shows it as text instead of running it; a cell that is only a number or a phone
  number (digits, spaces and ``+ - ( ) . /``: no letters, so no function or reference) is left
  as it is, so ``+1 534 555 0100`` stays usable. :class:`FormulaEscaper` does the same to a CSV
  byte stream (the API's ``export.csv``). ``formulas="keep"`` writes every cell as it came.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError

#: ``formulas``: ``"escape"`` (OWASP's single-quote prefix) or ``"keep"`` (cells as they came).
FORMULAS: tuple[str, ...] = ("escape", "keep")
#: What makes a spreadsheet read a cell as a formula (OWASP; ASVS 1.2.10 adds NUL).
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
#: A number or a phone number: no letter, so neither a function nor a cell reference.
_NUMBER = re.compile(r"[0-9 ()+.\-/]*[0-9][0-9 ()+.\-/]*")


def escape_formula(cell: str) -> str:
    """``cell`` with a leading ``'`` when a spreadsheet would read it as a formula (see above)."""
    if cell.startswith(_TRIGGERS) and not _NUMBER.fullmatch(cell):
        return f"'{cell}"
    return cell


class _Writer:
    """``csv.writer`` that also quotes a row with a carriage return in a cell: Python 3.11's
    writer quotes only the characters of its line terminator (``"\n"``), and an unquoted ``\r``
    splits the record for every reader."""

    def __init__(self, out: io.StringIO, terminator: str = "\n") -> None:
        self._plain = csv.writer(out, lineterminator=terminator)
        self._quoted = csv.writer(out, lineterminator=terminator, quoting=csv.QUOTE_ALL)

    def writerow(self, row: list[Any]) -> None:
        carriage = any(isinstance(cell, str) and "\r" in cell for cell in row)
        (self._quoted if carriage else self._plain).writerow(row)


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

    def __init__(self, formulas: str = "escape") -> None:
        self.columns: list[str] | None = None
        self._escape = formulas == "escape"

    def encode(self, records: list[dict[str, Any]]) -> bytes:
        buffer = io.StringIO()
        writer = _Writer(buffer)
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
            writer.writerow([self._cell(column) for column in self.columns])
        known = frozenset(self.columns)
        for record in records:
            row = _row(record, known)
            new = sorted(name for name, value in row.items() if name not in known and value is not None)
            if new:
                raise LeadpipeResponseError(
                    f"a later results page has field(s) {new} the first page did not have, so the "
                    "CSV has no column for them; nothing was written. Use format='jsonl' for open-ended rows"
                )
            writer.writerow([self._cell(_csv_value(row.get(column))) for column in self.columns])
        return buffer.getvalue().encode()

    def _cell(self, value: Any) -> Any:
        return escape_formula(value) if self._escape and isinstance(value, str) else value


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


class FormulaEscaper:
    """:func:`escape_formula` applied to every cell of a CSV byte stream, fed chunk by chunk.

    Whole records are parsed and written again (``feed`` returns the records completed so far,
    ``finish`` the rest); the line ending of the first record is kept. The records and the cells
    are the same, and only a cell that would run as a formula changes.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._in_quotes = False
        self._terminator: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        end = self._end_of_records(chunk, len(self._pending))
        self._pending = data[end:]
        return self._rewrite(data[:end])

    def finish(self) -> bytes:
        data, self._pending = self._pending, b""
        return self._rewrite(data)

    def _end_of_records(self, chunk: bytes, offset: int) -> int:
        """Where the last record completed in ``chunk`` ends (0: none), tracking quotes."""
        end, position = 0, offset
        for index, part in enumerate(chunk.split(b'"')):
            if index:
                self._in_quotes = not self._in_quotes
                position += 1  # the quote
            if not self._in_quotes:
                newline = part.rfind(b"\n")
                if newline >= 0:
                    end = position + newline + 1
            position += len(part)
        return end

    def _rewrite(self, data: bytes) -> bytes:
        if not data:
            return b""
        text = data.decode("utf-8")
        if self._terminator is None:
            first = text.find("\n")
            self._terminator = "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"
        out = io.StringIO()
        writer = _Writer(out, self._terminator)
        for record in csv.reader(io.StringIO(text, newline="")):
            writer.writerow([escape_formula(cell) for cell in record])
        written = out.getvalue()
        if not data.endswith(b"\n") and written.endswith(self._terminator):
            written = written[: -len(self._terminator)]  # a last record without a line ending
        return written.encode("utf-8")
