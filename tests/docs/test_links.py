"""Every link in README.md, docs/*.md and bench/README.md leads somewhere.

- A relative link (or image) names a file or folder of this repository that a fresh clone has
  (it exists and git does not ignore it); its `#anchor`, if any, is a heading of that page as
  GitHub renders it (see `markdown_pages.github_slug`).
- A `#anchor` alone is a heading of the same page.
- An http(s) link is well-formed (scheme, a host name with a dot, no spaces); it is not fetched:
  the suite has no network.

Links are read with markdown-it-py (`markdown_pages`), so a link inside a code block or code span
is not a link, exactly as on GitHub. Pure file reads (and one `git check-ignore`): the module runs
in well under a second, in the main suite and in the version matrix alike.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.docs.markdown_pages import PAGES, REPO, Page, github_slug, inline_tokens, load, page_id

pytestmark = pytest.mark.docs

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LINE_ANCHOR = re.compile(r"^L(\d+)(?:-L(\d+))?$")


def links(page: Page) -> list[tuple[int, str]]:
    found = []
    for block, child in inline_tokens(page):
        target = child.attrGet("href") if child.type == "link_open" else None
        if child.type == "image":
            target = child.attrGet("src")
        if target is not None:
            found.append((page.lineno(block), str(target)))
    return found


def external_problem(url: str) -> str | None:
    if any(char.isspace() for char in url):
        return "contains whitespace"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r} (only http and https are expected)"
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        return str(error)
    host = parts.hostname or ""
    labels = host.split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels):
        return f"host {host!r} is not a domain name"
    if not labels[-1].isalpha():
        return f"top-level domain {labels[-1]!r}"
    return None


def local_problem(page: Page, target: str) -> str | None:
    path_part, _, anchor = target.partition("#")
    if not path_part:
        return None if anchor in page.anchors else f"no heading of {page.id} has the anchor #{anchor}"
    if path_part.startswith("/"):
        return "absolute path (GitHub resolves it against the site, not the repository)"
    resolved = (page.path.parent / unquote(path_part)).resolve()
    if not resolved.is_relative_to(REPO):
        return "points outside the repository"
    if not resolved.exists():
        return f"{resolved.relative_to(REPO).as_posix()} does not exist"
    if not anchor:
        return None
    if resolved.suffix == ".md":
        target_page = load(resolved)
        if anchor not in target_page.anchors:
            return f"no heading of {target_page.id} has the anchor #{anchor}"
        return None
    line = _LINE_ANCHOR.match(anchor)
    if resolved.is_file() and line:
        count = len(resolved.read_text(encoding="utf-8").splitlines())
        last = int(line.group(2) or line.group(1))
        return None if last <= count else f"#{anchor}: the file has {count} lines"
    return f"#{anchor} cannot be checked in {resolved.name}"


def problems(page: Page) -> list[str]:
    found = []
    for lineno, target in links(page):
        if not target:
            problem: str | None = "empty link"
        elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            problem = external_problem(target)
        else:
            problem = local_problem(page, target)
        if problem:
            found.append(f"{page.id}:{lineno}: {target}: {problem}")
    return found


def ignored_by_git(paths: list[Path]) -> set[Path]:
    """The paths git would leave out of a commit (a fresh clone would not have them)."""
    if not paths or not (REPO / ".git").exists() or not shutil.which("git"):
        return set()
    answer = subprocess.run(
        ["git", "check-ignore", "--stdin"],
        input="\n".join(str(path) for path in paths),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return {Path(line).resolve() for line in answer.stdout.splitlines() if line}


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_every_link_resolves(path: Path) -> None:
    page = load(path)
    assert not problems(page), "\n".join(problems(page))


def test_linked_files_are_in_a_fresh_clone() -> None:
    targets = {}
    for path in PAGES:
        page = load(path)
        for lineno, target in links(page):
            local = target.partition("#")[0]
            if local and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", local):
                targets.setdefault((page.path.parent / unquote(local)).resolve(), f"{page.id}:{lineno}")
    ignored = ignored_by_git(sorted(targets))
    assert not ignored, [f"{targets[path]}: {path.relative_to(REPO)} is ignored by git" for path in ignored]


def test_the_pages_have_links_and_anchors() -> None:
    # Guards the parser set-up: if markdown-it stopped seeing links or headings, every check above
    # would pass vacuously.
    readme = load(REPO / "README.md")
    assert len(links(readme)) >= 20
    assert "the-leadpipe-connection" in readme.anchors


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Connections in `dag.test` / `airflow dags test`", "connections-in-dagtest--airflow-dags-test"),
        (
            "Skipped, per version (`pytest -rs`, as logged by the matrix)",
            "skipped-per-version-pytest--rs-as-logged-by-the-matrix",
        ),
        ("The `leadpipe://` asset scheme", "the-leadpipe-asset-scheme"),
        ("Airflow 3.0 \u2013 3.2: what_differs", "airflow-30--32-what_differs"),
        (
            "Gating a DAG on the Leadpipe account: `LeadpipeAccountSensor`",
            "gating-a-dag-on-the-leadpipe-account-leadpipeaccountsensor",
        ),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_a_broken_link_or_anchor_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.docs.test_links.REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## Errors\n\n## Errors\n")
    page_path = tmp_path / "docs" / "page.md"
    page_path.write_text(
        "# Page\n\n"
        "[ok](other.md#errors-1) [ok](#page) [ok](https://docs.leadpipe.com/a?b=1#c)\n"
        "[missing file](nothere.md) [bad anchor](other.md#errors-2) [own](#nope)\n"
        "[outside](../../x.md) [bad url](https://localhost:99999/) `[code](nothere.md)`\n"
    )
    found = problems(load(page_path))
    assert [line.split(": ", 2)[1] for line in found] == [
        "nothere.md",
        "other.md#errors-2",
        "#nope",
        "../../x.md",
        "https://localhost:99999/",
    ]
