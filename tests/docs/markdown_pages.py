"""The documentation pages the docs tests read, parsed with markdown-it-py.

markdown-it-py (the CommonMark parser behind MyST and Jupyter Book, already installed with
Airflow through `rich`) gives the links, headings, tables and code spans as tokens, so the tests
never guess Markdown syntax with regular expressions. Its CommonMark preset plus the GFM table
rule is what GitHub renders for these pages.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", REPO / "bench" / "README.md", *(REPO / "docs").glob("*.md")])

_PARSER = MarkdownIt("commonmark").enable("table")
_HTML_ID = re.compile(r"""<[a-zA-Z][^>]*?\s(?:id|name)=["']([^"']+)["']""")


def page_id(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name


def plain_text(inline: Token) -> str:
    """The text of an inline token as GitHub renders it: code spans' content, no markup, no HTML."""
    parts = []
    for child in inline.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def github_slug(text: str) -> str:
    """A heading's anchor as GitHub makes it (github-slugger, before de-duplication).

    Lower case; every character removed except letters, marks, digits, `_`, `-` and spaces; each
    space becomes `-` (no collapsing: "a / b" is "a--b").
    """
    kept = []
    for char in text.lower():
        if char in " -_" or unicodedata.category(char)[0] in "LMN":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


@dataclass
class Heading:
    level: int
    text: str
    inline: Token


@dataclass
class Page:
    path: Path
    tokens: list[Token]
    headings: list[Heading] = field(default_factory=list)
    anchors: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return page_id(self.path)

    def lineno(self, token: Token) -> int:
        return token.map[0] + 1 if token.map else 0


@functools.cache
def load(path: Path) -> Page:
    tokens = _PARSER.parse(path.read_text(encoding="utf-8"))
    page = Page(path, tokens)
    seen: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            inline = tokens[index + 1]
            heading = Heading(int(token.tag[1]), plain_text(inline), inline)
            page.headings.append(heading)
            page.anchors.add(_unique(github_slug(heading.text), seen))
        elif token.type == "html_block" or token.type == "inline":
            # Explicit anchors in raw HTML (<a id="...">) count too.
            html = (
                token.content
                if token.type == "html_block"
                else "".join(child.content for child in token.children or () if child.type == "html_inline")
            )
            page.anchors.update(_HTML_ID.findall(html))
    return page


def _unique(slug: str, seen: dict[str, int]) -> str:
    # github-slugger: the second "Errors" is errors-1, the third errors-2.
    result = slug
    while result in seen:
        seen[slug] += 1
        result = f"{slug}-{seen[slug]}"
    seen[result] = 0
    return result


def inline_tokens(page: Page) -> Iterator[tuple[Token, Token]]:
    """Every inline child (link, image, code span, ...) with the block-level inline holding it."""
    for token in page.tokens:
        if token.type == "inline":
            for child in token.children or ():
                yield token, child
