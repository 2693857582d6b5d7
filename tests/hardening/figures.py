"""The figures the hardening suite reports: one row per proven case, printed after the run.

Tests call :func:`record` only after their assertions pass, so the table lists what was proven.
The same case run through the sync and the async path becomes one row ("paths: sync, async");
where the two differ, the cell shows both values.
"""

from __future__ import annotations

from collections import defaultdict

COLUMNS = ("area", "case", "paths", "requests", "retries", "waited", "hits", "events", "elapsed")
_VALUES = ("requests", "retries", "waited", "hits", "events", "elapsed")

#: (area, case) -> path ("sync", "async", "" ) -> values
FIGURES: dict[tuple[str, str], dict[str, dict[str, float | int | str | None]]] = defaultdict(dict)


def record(area: str, case: str, *, mode: str = "", **values: float | int | str | None) -> None:
    unknown = set(values) - set(_VALUES)
    if unknown:
        raise TypeError(f"unknown figure(s): {sorted(unknown)}")
    FIGURES[(area, case)][mode] = values


def _cell(value: float | int | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.2f} s"
    return f"{value:,}"


def rows() -> list[list[str]]:
    table = []
    for (area, case), by_path in sorted(FIGURES.items()):
        paths = [path for path in ("sync", "async", "") if path in by_path]
        row = [area, case, ", ".join(p for p in paths if p) or "-"]
        for name in _VALUES:
            cells = list(dict.fromkeys(_cell(by_path[path].get(name)) for path in paths))
            row.append(" / ".join(cells))
        table.append(row)
    return table


def markdown_table() -> str:
    lines = [list(COLUMNS), ["---"] * len(COLUMNS), *rows()]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


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
            "proven case: a test records its row only after its assertions passed. `requests`: HTTP requests",
            "the server saw; `retries`: requests that failed transiently and were tried again; `hits`:",
            "occurrences of the API key found; `elapsed`: wall time of the measured part.",
            "",
            f"Measured {when} on Python {platform.python_version()}, Airflow {airflow_version}, "
            f"{os.cpu_count()} CPU(s).",
            "",
            markdown_table(),
            "",
        ]
    )
