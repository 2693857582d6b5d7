"""The CSV writer against people whose fields are null, empty, nested deeper or differently typed
across pages (hypothesis), read back with the ``csv`` module.

What a user sees: the columns are the fields of the first page, never a stray ``company`` column
beside ``company.name``; a null or empty object is empty cells of its known columns and never fails
a pull; a value nested deeper than its column is kept there as JSON text. Only a value no column
can hold (a new field, or a plain value where the first page had an object) ends the pull, in a
``LeadpipeResponseError`` naming it; every other value reads back in its cell.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.utils.csv_rows import CsvEncoder, escape_formula
from tests.hardening.figures import tally

FULL = {
    "email": "a@x.io",
    "company": {"name": "Acme", "domain": "acme.io", "address": {"city": "Oslo", "zip": "0150"}},
    "tags": ["a", "b"],
    "score": 91,
    "vip": True,
}
COLUMNS = ["email", "company.name", "company.domain", "company.address.city", "company.address.zip",
           "tags", "score", "vip"]  # fmt: skip

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.floats(allow_nan=False))
deeper = st.dictionaries(st.sampled_from(["first", "last", "x"]), scalars, min_size=1, max_size=2)


def _vary(value: Any, shape: str) -> st.SearchStrategy[Any]:
    """``value`` itself, or null / empty; with ``shape="any"`` also another type or deeper nesting."""
    if isinstance(value, dict):
        options = [
            st.fixed_dictionaries({k: _vary(v, shape) for k, v in value.items()}),
            st.none(),
            st.just({}),
        ]
        if shape == "any":
            options += [scalars.filter(lambda v: v is not None), st.lists(scalars, max_size=2)]
    else:
        options = [st.just(value), st.none()]
        if shape == "any":
            options += [scalars, deeper, st.lists(scalars, max_size=2), st.just({})]
    return st.one_of(*options)


def pages(shape: str) -> st.SearchStrategy[list[list[dict[str, Any]]]]:
    """A first page of one whole person and others with nulls and empties; later pages of ``shape``."""
    person = st.fixed_dictionaries({key: _vary(value, shape) for key, value in FULL.items()})
    plain = st.fixed_dictionaries({key: _vary(value, "null or empty") for key, value in FULL.items()})
    first = st.lists(plain, max_size=4).map(lambda rest: [FULL, *rest])
    return st.tuples(first, st.lists(st.lists(person, min_size=1, max_size=4), min_size=1, max_size=3)).map(
        lambda t: [t[0], *t[1]]
    )


def _cell(person: dict[str, Any], column: str) -> str:
    value: Any = person
    for part in column.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    if value is None or value == {}:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str):  # the encoder's default: a text cell a spreadsheet would run gets a '
        return escape_formula(value)
    return str(value)


def _uncovered(person: dict[str, Any], columns: list[str], prefix: str = "") -> list[str]:
    """Paths of non-empty values that no column is at or above."""
    lost = []
    for key, value in person.items():
        name = f"{prefix}{key}"
        if value is None or value == {} or name in columns:
            continue
        if isinstance(value, dict):
            lost += _uncovered(value, columns, f"{name}.")
        else:
            lost.append(name)
    return lost


def _write(all_pages: list[list[dict[str, Any]]]) -> list[dict[str, str]]:
    encoder = CsvEncoder()
    data = b"".join(encoder.encode(page) for page in all_pages)
    reader = csv.DictReader(io.StringIO(data.decode()))
    rows = list(reader)
    assert reader.fieldnames == COLUMNS, reader.fieldnames
    return rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages("null or empty"))
def test_null_and_empty_objects_are_empty_cells_of_the_known_columns(all_pages):
    rows = _write(all_pages)  # never fails, no stray column
    people = [person for page in all_pages for person in page]
    for row, person in zip(rows, people, strict=True):
        assert row == {column: _cell(person, column) for column in COLUMNS}
    tally("data", "CSV pages with null / {} fields at any depth: written, known columns only")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages("any"))
def test_differently_typed_fields_are_kept_or_refused_by_name(all_pages):
    lost = sorted({path for page in all_pages[1:] for p in page for path in _uncovered(p, COLUMNS)})
    if lost:
        with pytest.raises(LeadpipeResponseError, match="first page did not have") as caught:
            _write(all_pages)
        assert any(repr(path) in str(caught.value) for path in lost), str(caught.value)
        tally("data", "CSV pages with fields null, empty, deeper or of another type", "refused by name")
        return
    rows = _write(all_pages)
    people = [person for page in all_pages for person in page]
    for row, person in zip(rows, people, strict=True):
        assert row == {column: _cell(person, column) for column in COLUMNS}
    tally("data", "CSV pages with fields null, empty, deeper or of another type", "written, read back")


@pytest.mark.parametrize("empty", [None, {}])
def test_an_object_null_on_the_first_page_takes_its_later_fields_as_json(empty):
    encoder = CsvEncoder()
    first = encoder.encode([{"email": "a@x.io", "company": empty}])
    later = encoder.encode([{"email": "b@x.io", "company": {"name": "Acme"}}])
    rows = list(csv.DictReader(io.StringIO((first + later).decode())))
    assert rows == [{"email": "a@x.io", "company": ""}, {"email": "b@x.io", "company": '{"name":"Acme"}'}]
