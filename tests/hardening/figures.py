"""The figures the hardening suite reports: one row per proven case, printed after the run.

A test calls :func:`record` (one row of measured values) or :func:`tally` (count one proven case,
optionally by outcome) wherever it likes; ``conftest.py`` keeps what a test recorded only when that
test passed (a ``pytest_runtest_call`` wrapper commits or discards), so the table lists what was
proven, whatever the order or selection of tests. The same case run through the sync and the
async path becomes one row ("paths: sync, async"); where the two differ, the cell shows both.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

COLUMNS = ("area", "case", "paths", "requests", "retries", "waited", "hits", "events", "elapsed")
_VALUES = ("requests", "retries", "waited", "hits", "events", "elapsed")

Value = float | int | str | None


@dataclass
class Cell:
    """What one path (sync, async or "") of one case proved: measured values and tallied cases."""

    values: dict[str, Value] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def label(self, case: str) -> str:
        """The case column: ``case``; ``<n> case`` when tallied; ``case: <n> -> <n1> a, <n2> b``
        when tallied by outcome."""
        if not self.counts:
            return case
        if set(self.counts) == {""}:
            return f"{self.counts['']:,} {case}"
        parts = ", ".join(f"{n:,} {outcome}" for outcome, n in sorted(self.counts.items()))
        return f"{case}: {self.counts.total():,} -> {parts}"


@dataclass
class Figures:
    """Committed rows, plus what the running test recorded so far (pending until it passes)."""

    rows_by_case: dict[tuple[str, str], dict[str, Cell]] = field(default_factory=lambda: defaultdict(dict))
    pending: list[tuple[str, str, str, dict[str, Value], str | None]] = field(default_factory=list)

    def record(self, area: str, case: str, *, mode: str = "", **values: Value) -> None:
        self._add(area, case, mode, values, None)

    def tally(self, area: str, case: str, outcome: str = "", *, mode: str = "", **values: Value) -> None:
        self._add(area, case, mode, values, outcome)

    def _add(self, area: str, case: str, mode: str, values: dict[str, Value], outcome: str | None) -> None:
        unknown = set(values) - set(_VALUES)
        if unknown:
            raise TypeError(f"unknown figure(s): {sorted(unknown)}")
        self.pending.append((area, case, mode, values, outcome))

    def commit(self) -> None:
        """The running test passed: keep what it recorded."""
        for area, case, mode, values, outcome in self.pending:
            cell = self.rows_by_case[(area, case)].setdefault(mode, Cell())
            cell.values.update(values)
            if outcome is not None:
                cell.counts[outcome] += 1
        self.pending.clear()

    def discard(self) -> None:
        """The running test failed or skipped: forget what it recorded."""
        self.pending.clear()

    def __bool__(self) -> bool:
        return bool(self.rows_by_case)

    def rows(self) -> list[list[str]]:
        table = []
        for (area, case), by_path in sorted(self.rows_by_case.items()):
            paths = [path for path in ("sync", "async", "") if path in by_path]
            cells = [by_path[path] for path in paths]
            label = " / ".join(dict.fromkeys(cell.label(case) for cell in cells))
            row = [area, label, ", ".join(p for p in paths if p) or "-"]
            for name in _VALUES:
                row.append(" / ".join(dict.fromkeys(_cell(cell.values.get(name)) for cell in cells)))
            table.append(row)
        return table

    def markdown_table(self) -> str:
        lines = [list(COLUMNS), ["---"] * len(COLUMNS), *self.rows()]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _cell(value: Value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.2f} s"
    return f"{value:,}"


#: The figures of this pytest session.
FIGURES = Figures()
record = FIGURES.record
tally = FIGURES.tally


def markdown_report() -> str:
    """The table with a heading saying where and how it was measured (docs/hardening-report.md)."""
    import os
    import platform
    from datetime import datetime, timezone

    from airflow import __version__ as airflow_version

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# Hardening figures",
            "",
            "Written by `pytest tests/hardening` (each run writes `hardening-report.md` under pytest's",
            "temporary directory; `LEADPIPE_HARDENING_FIGURES=<file>` writes it there instead). One row per",
            "proven case: what a test recorded is kept only if the test passed. `requests`: HTTP requests",
            "the server saw; `retries`: requests that failed transiently and were tried again; `hits`:",
            "occurrences of the API key found; `elapsed`: wall time of the measured part.",
            "",
            f"Measured {when} on Python {platform.python_version()}, Airflow {airflow_version}, "
            f"{os.cpu_count()} CPU(s).",
            "",
            FIGURES.markdown_table(),
            "",
        ]
    )
