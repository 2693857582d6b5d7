"""What the browser tests share: settled screenshots and Playwright's assertion timeout."""

from __future__ import annotations

from pathlib import Path

#: How long a Playwright `expect(...)` waits for what it asserts. A safety net, not the event: an
#: assertion returns as soon as the page shows what it asserts, and Airflow's React UI can take
#: many seconds to render on a slow or busy 2-core machine (Playwright's default is 5 s).
EXPECT_TIMEOUT_MS = 60_000


def screenshot(page, path: Path) -> None:
    """Screenshot once CSS transitions (accordion, toast slide-in) have finished.

    Waits for the page's finite animations, never for the network to be quiet: Airflow's UI polls
    (DAG runs, import errors), so `networkidle` may never come. The caller has already waited
    for the element the screenshot is about.
    """
    page.evaluate(
        "Promise.all(document.getAnimations()"
        ".filter(a => a.effect?.getComputedTiming().iterations !== Infinity)"
        ".map(a => a.finished.catch(() => null)))"
    )
    page.screenshot(path=path)
