"""docs/compatibility.md's "Skipped, per version" table names every test module that can skip.

The class this guards against: a page saying which suites and versions skip, while more do. Every
module of the suites the version matrix runs (tests/ minus tests/e2e, tests/demo,
tests/packaging, tests/distributed and tests/docs/test_snippets.py, plus sandbox/tests) that holds
a skip (`skipif(`, `pytest.skip(`, `importorskip(`) must be named in the table's first column, by
its path under tests/ (`unit/plugins/test_plugin.py`); and every module the table names must
exist and still hold a skip, so a removed skip does not stay documented. A helper module whose skip
is its callers' (`integration/dag_runs.py`) is listed in `HELPERS` with the test that owns the skip.
Pure file reads.
"""

from __future__ import annotations

import re

import pytest

from tests.docs.markdown_pages import REPO, load

pytestmark = pytest.mark.docs

PAGE = REPO / "docs" / "compatibility.md"
HEADING = "Skipped, per version"
NOT_IN_MATRIX = ("e2e", "demo", "packaging", "distributed")
_SKIP = re.compile(r"\bskipif\(|\bpytest\.skip\(|\bimportorskip\(")
#: Helper modules whose skip belongs to the test calling them: module -> that test's module.
HELPERS = {"integration/dag_runs.py": "integration/test_example_credit_report.py"}


def modules_that_skip() -> set[str]:
    found = set()
    for path in [*(REPO / "tests").rglob("*.py"), *(REPO / "sandbox" / "tests").rglob("*.py")]:
        relative = (
            path.relative_to(REPO / "tests").as_posix() if path.is_relative_to(REPO / "tests") else None
        )
        if relative is None:
            relative = path.relative_to(REPO).as_posix()
        if relative.split("/", 1)[0] in NOT_IN_MATRIX or relative in (
            "docs/test_snippets.py",
            "docs/test_skips.py",
        ):
            continue
        if _SKIP.search(path.read_text(encoding="utf-8")):
            found.add(HELPERS.get(relative, relative))
    return found


def modules_in_table() -> set[str]:
    page = load(PAGE)
    named: set[str] = set()
    inside = row_start = False
    for index, token in enumerate(page.tokens):
        if token.type == "heading_open":
            inside = page.tokens[index + 1].content == HEADING
        elif inside and token.type == "tr_open":
            row_start = True
        elif inside and row_start and token.type == "inline":
            row_start = False
            for child in token.children or ():
                if child.type == "code_inline":
                    named.add(child.content.split("::", 1)[0])
    return named


def test_the_table_names_every_module_that_skips() -> None:
    in_table = modules_in_table()
    assert in_table, f"no table under {HEADING!r} in {PAGE.name}"
    assert sorted(modules_that_skip() - in_table) == []


def test_every_module_the_table_names_still_skips() -> None:
    assert sorted(modules_in_table() - modules_that_skip()) == []
