"""Every measured figure in README.md and docs/*.md is read from a results file.

**A figure** is a number (`46`, `5,000`, `0.31`, a range `50-80`) followed by a unit of time
(`µs ms s min minutes h hours`, `CPU-s`), size (`KB MB MiB GB`), rate (`/s`, `req/s`), `%`, a
ratio (the multiplication sign) or a count of tests (`passed failed skipped tests`), in prose or a
table; never in a code span or block (the other docs tests run or check those).

**A measured figure** is one in a block (paragraph, list item, table row) that reports a
measurement: the block holds a date (`2026-12-01`) or a word of `_MEASURED` (`measured`, `took`,
`wall`, `load average`, `p99`, `median`, `≈`, `about`, `seen` ...; a table row is read with its
header, so a `Figure | Seen` table is measured). Every other figure is taken as what the code
defines (limits, defaults, intervals, page sizes, a worked example's arithmetic: "at most 600 s",
"50 per page", "1,000 sensors at a 5 s interval send 0.2 requests per second") and is exempt here;
test_signatures.py and the snippets check those where they are checked at all. Inside a measured
block, a figure right after "at most", "up to", "above", "below", "at least", "every", "per",
"default", "threshold", "timeout" or "interval" is a setting and exempt too.

**Sourced** means: the block (for a table row: the row or the paragraph right before the table)
links one of the results files of `SOURCES` (files a script writes, each stating the date and the
machine of its run) and every number of each measured figure in it appears in a linked one
(thousands separators ignored); a link to a heading (`RESULTS.md#...`) narrows that to the section.
A measured figure in a block with no such link fails, and so does one its linked file does not
hold: a page cannot quote a number no run produced, and a re-run that changes the file makes the
page's stale copy fail. The results files themselves are not checked (they are the record), nor are
the sections of `RECORDS`: a table of CI runs, each row naming its date, commit and machine,
written as the runs ended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.markdown_pages import PAGES, REPO, _unique, github_slug, load, page_id

pytestmark = pytest.mark.docs

#: The results files a page may quote: each is written by a script and states date and machine.
SOURCES = {
    "bench/RESULTS.md": "written by `bash bench/run.sh --markdown` (bench/run.py)",
    "docs/hardening-report.md": "written by `pytest tests/hardening` (tests/hardening/figures.py)",
}

#: Sections that are themselves the record of runs (each row: date, commit, machine, load), written
#: as the runs ended, not a quotation: their figures are not checked. Other pages cannot quote them.
RECORDS = {("docs/compatibility.md", "The README test command on the slower CI machine, idle and busy")}

_NUMBER = r"\d[\d,]*(?:\.\d+)?"
_FIGURE = re.compile(
    rf"(?P<number>{_NUMBER}(?:\s*[-\u2013]\s*{_NUMBER})?)"
    r"(?P<unit>\s+(?:µs|ms|s|CPU-s|min|minutes?|seconds?|hours?|h|KB|MB|MiB|GB|requests/s|req/s"
    r"|passed|failed|skipped|errors?|tests)|\s*%|\u00d7|/s)"
    r"(?![\w/])"
)
_MEASURED = re.compile(
    r"\d{4}-\d{2}-\d{2}|\bmeasured\b|\btook\b|\btakes about\b|\bwall\b|\bload average\b|\bp50\b|\bp99\b"
    r"|\bmedian\b|≈|~|\babout\b|\broughly\b|\bcosts?\b|\bserved\b|\bCPU\b|\bpassed\b"
    r"|\bseen\b|\bon this (?:\d-core )?machine\b|\bidle\b|\bunder load\b",
    re.IGNORECASE,
)
_SETTING_BEFORE = re.compile(
    r"(?:at most|up to|above|below|at least|every|per|default|threshold|timeout|interval|window of)\W*$",
    re.IGNORECASE,
)


@dataclass
class Figure:
    page: str
    line: int
    text: str
    numbers: list[str]
    block: str
    sources: list[str]


def _norm(number: str) -> str:
    return number.replace(",", "")


def _blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, prose text with code spans blanked, linked files) per paragraph, item or table row."""
    page = load(path)
    found: list[tuple[int, str, list[str]]] = []
    row: list[tuple[str, list[str]]] | None = None
    row_line = 0
    header = ""
    before_table: list[str] = []  # the links of the paragraph right before a table count for its rows
    heading = ""
    for index, token in enumerate(page.tokens):
        if token.type == "heading_open":
            heading = page.tokens[index + 1].content
        if (page_id(path), heading) in RECORDS:
            continue
        if token.type == "table_open":
            before_table, header = (found[-1][2] if found else []), ""
        elif token.type == "table_close":
            before_table = []
        elif token.type == "tr_open":
            row, row_line = [], page.lineno(token)
        elif token.type == "tr_close" and row is not None:
            text = " | ".join(text for text, _ in row)
            header = header or text  # a row is read with its table's header ("Figure | Seen")
            found.append(
                (
                    row_line,
                    text if header == text else f"{header} || {text}",
                    [*before_table, *(s for _, ls in row for s in ls)],
                )
            )
            row = None
        elif token.type == "inline":
            parts, linked = [], []
            for child in token.children or ():
                if child.type == "text":
                    parts.append(child.content)
                elif child.type == "code_inline":
                    parts.append(" `code` ")
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
                elif child.type == "link_open":
                    target, _, anchor = str(child.attrGet("href") or "").partition("#")
                    if target and "://" not in target:
                        linked.append(
                            page_id((path.parent / target).resolve()) + (f"#{anchor}" if anchor else "")
                        )
            if row is not None:
                row.append(("".join(parts), linked))
            else:
                found.append((page.lineno(token), "".join(parts), linked))
    return found


def measured_figures(path: Path) -> list[Figure]:
    figures = []
    for line, text, linked in _blocks(path):
        if not _MEASURED.search(text):
            continue
        sources = [target for target in linked if target.partition("#")[0] in SOURCES]
        for match in _FIGURE.finditer(text):
            if _SETTING_BEFORE.search(text[max(0, match.start() - 40) : match.start()]):
                continue
            numbers = [_norm(n) for n in re.findall(_NUMBER, match["number"])]
            figures.append(Figure(page_id(path), line, match.group(0), numbers, text, sources))
    return figures


def _source_text(source: str) -> str:
    """The results file's text, or only the linked section's (`file#heading`: to the next heading
    of the same or a higher level)."""
    name, _, anchor = source.partition("#")
    lines = (REPO / name).read_text(encoding="utf-8").splitlines()
    if anchor:
        page, seen = load(REPO / name), {}
        headings = [
            (_unique(github_slug(h.text), seen), h.level, h.inline.map[0] if h.inline.map else 0)
            for h in page.headings
        ]
        [(level, start)] = [(level, start) for slug, level, start in headings if slug == anchor] or [(0, -1)]
        assert start >= 0, f"{source}: no such heading"
        end = min(
            [line for _, other, line in headings if line > start and other <= level], default=len(lines)
        )
        lines = lines[start:end]
    return _norm("\n".join(lines))


def problems(path: Path) -> list[str]:
    found = []
    for figure in measured_figures(path):
        where = f"{figure.page}:{figure.line}: {figure.text!r}"
        if not figure.sources:
            found.append(
                f"{where} is a measurement with no results file linked beside it ({', '.join(SOURCES)})"
            )
            continue
        texts = [_source_text(source) for source in figure.sources]
        missing = [
            number
            for number in figure.numbers
            if not any(re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", text) for text in texts)
        ]
        if missing:
            found.append(f"{where}: {', '.join(missing)} not in {', '.join(figure.sources)}")
    return found


#: The pages checked: README.md and docs/*.md. bench/README.md describes the harness beside its own
#: results file and is left to the benchmark work.
QUOTING_PAGES = [
    path for path in PAGES if page_id(path) not in SOURCES and page_id(path) != "bench/README.md"
]


@pytest.mark.parametrize("path", QUOTING_PAGES, ids=page_id)
def test_measured_figures_are_read_from_a_results_file(path: Path) -> None:
    assert problems(path) == []


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_results_files_state_date_and_machine(source: str) -> None:
    text = (REPO / source).read_text(encoding="utf-8")
    assert re.search(r"\d{4}-\d{2}-\d{2}", text), f"{source} states no date"
    assert re.search(r"\bCPU|\bcores?\b|machine", text), f"{source} states no machine"


def test_the_rule_finds_what_it_should() -> None:
    """The detector itself: a timing, a count of passed tests and a settings phrase."""
    assert [
        m.group(0) for m in _FIGURE.finditer("took 46 s, 380 passed, 5,000 triggers, 1.5 ms, 97.9 %")
    ] == [
        "46 s",
        "380 passed",
        "1.5 ms",
        "97.9 %",
    ]
    assert not _FIGURE.search("503s off, 2.x, 3.3")  # a status code's plural and versions are no figures
    assert [m.group(0) for m in _FIGURE.finditer("2166 passed, 1 skipped; 7,700/s; 0.73\u00d7")] == [
        "2166 passed",
        "1 skipped",
        "7,700/s",
        "0.73\u00d7",
    ]
    assert _SETTING_BEFORE.search("a request timeout of at most ")
    assert not _MEASURED.search("at most 600 s; 50 visitors per page")
