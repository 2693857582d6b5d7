"""CSV for people rows: dotted columns, a later unknown field refused, records counted in a stream."""

from __future__ import annotations

import csv
import io

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.utils.csv_rows import CsvEncoder, RowCounter

PEOPLE = [
    {
        "email": "a@x.io",
        "company": {"name": "Acme, Inc.", "domain": "acme.io"},
        "tags": ["a", "b"],
        "vip": True,
    },
    {"email": None, "company": {"name": 'Say "hi"\nLtd', "domain": None}, "tags": [], "vip": False},
]


def test_rows_read_back_with_dotted_columns_and_json_lists():
    encoder = CsvEncoder()
    text = (encoder.encode(PEOPLE[:1]) + encoder.encode(PEOPLE[1:])).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["email", "company.name", "company.domain", "tags", "vip"]
    assert rows[0] == {"email": "a@x.io", "company.name": "Acme, Inc.", "company.domain": "acme.io",
                       "tags": '["a","b"]', "vip": "true"}  # fmt: skip
    assert rows[1]["company.name"] == 'Say "hi"\nLtd' and rows[1]["email"] == ""


def test_a_field_missing_from_the_first_page_is_refused_not_dropped():
    encoder = CsvEncoder()
    encoder.encode(PEOPLE[:1])
    with pytest.raises(LeadpipeResponseError, match=r"\['phone'\]"):
        encoder.encode([{**PEOPLE[0], "phone": "+1 555"}])


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 1000])
def test_records_are_counted_across_chunks_and_quoted_newlines(chunk_size):
    data = CsvEncoder().encode(PEOPLE * 3)
    counter = RowCounter()
    for start in range(0, len(data), chunk_size):
        counter.feed(data[start : start + chunk_size])
    assert counter.records == 6


def test_a_last_line_without_newline_counts_and_an_empty_stream_is_zero():
    counter = RowCounter()
    counter.feed(b"a,b\n1,2\n3,4")
    assert counter.records == 2
    assert RowCounter().records == 0
