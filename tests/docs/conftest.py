"""The docs suite: every test module here is marked ``docs``; the blocks marked as not runnable are listed."""

from __future__ import annotations

import pytest

#: (document, line, reason) of every block the docs test did not run, filled by test_snippets.py.
MARKED_BLOCKS = pytest.StashKey[list[tuple[str, int, str]]]()


@pytest.fixture(scope="session")
def marked_blocks(request: pytest.FixtureRequest) -> list[tuple[str, int, str]]:
    return request.config.stash.setdefault(MARKED_BLOCKS, [])


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    marked = config.stash.get(MARKED_BLOCKS, None)
    if marked is None:
        return
    terminalreporter.section("docs: blocks marked as not runnable on their own")
    for document, line, reason in marked:
        terminalreporter.write_line(f"{document}:{line}: {reason}")
    terminalreporter.write_line(f"{len(marked)} marked block(s)")
