"""The figures table keeps only what passing tests recorded, whatever their order."""

from __future__ import annotations

import pytest

from tests.hardening import conftest
from tests.hardening.figures import Figures


def test_a_row_is_kept_on_commit_and_dropped_on_discard():
    figures = Figures()
    figures.record("network", "refused", mode="sync", retries=2)
    figures.discard()
    assert not figures and figures.rows() == []
    figures.record("network", "refused", mode="sync", retries=2)
    figures.record("network", "refused", mode="async", retries=3)
    figures.commit()
    assert figures.rows() == [["network", "refused", "sync, async", "-", "2 / 3", "-", "-", "-", "-"]]


def test_tallies_count_committed_cases_only():
    figures = Figures()
    for _ in range(3):
        figures.tally("bad input", "bad URLs", requests=0)
        figures.commit()
    figures.tally("bad input", "bad URLs", requests=0)
    figures.discard()
    for outcome in ("model", "error", "error"):
        figures.tally("fuzz", "documents", outcome)
    figures.commit()
    assert [row[:2] for row in figures.rows()] == [
        ["bad input", "3 bad URLs"],
        ["fuzz", "documents: 3 -> 2 error, 1 model"],
    ]


def test_unknown_figures_are_refused():
    with pytest.raises(TypeError, match="latency"):
        Figures().record("network", "refused", latency=1)


def test_the_runtest_hook_keeps_a_passing_tests_figures_and_drops_a_failing_tests(monkeypatch):
    figures = Figures()
    monkeypatch.setattr(conftest, "FIGURES", figures)

    failing = conftest.pytest_runtest_call(item=None)
    next(failing)
    figures.record("area", "failed case", requests=1)
    with pytest.raises(AssertionError):
        failing.throw(AssertionError("the test failed"))

    passing = conftest.pytest_runtest_call(item=None)
    next(passing)
    figures.record("area", "passed case", requests=1)
    with pytest.raises(StopIteration):
        passing.send(None)

    assert [row[1] for row in figures.rows()] == ["passed case"]
