"""Fixtures for the end-to-end suite: a real `airflow standalone`, the sandbox, a headless browser.

Package-scoped: one Airflow stack (≈ 12-60 s to start, depending on load) serves every e2e test and
is stopped as soon as the last one is done (not at the end of the whole pytest session), also when
tests fail or are interrupted. The browser is module-scoped: Playwright's sync API keeps an event
loop running in this thread while it is open, which would break `asyncio.run()` in later tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.browser import EXPECT_TIMEOUT_MS
from tests.e2e.standalone import AirflowStandalone, always_stopped

#: Screenshots and the standalone log land here (gitignored; named in docs/e2e.md).
ARTIFACTS = REPO / ".artifacts" / "e2e"
#: The example DAG's sensor poll interval in this stack (seconds; 60 by default), read at parse time
#: by the dag-processor and the workers alike.
POKE_INTERVAL_S = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="package")
def artifacts() -> Path:
    """A fresh `.artifacts/e2e/` for this run's screenshots and logs."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="package")
def sandbox() -> Iterator[object]:
    """The Leadpipe API sandbox on a free loopback port, for the whole e2e session."""
    from leadpipe_sandbox import LeadpipeSandbox

    with LeadpipeSandbox() as running:
        yield running


@pytest.fixture(scope="package")
def airflow(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[AirflowStandalone]:
    """`airflow standalone` on SQLite with the example DAGs (fast sensor polls), ready to serve."""
    root = tmp_path_factory.mktemp("standalone")
    dags = root / "dags"
    dags.mkdir()
    for dag_file in (REPO / "example_dags").glob("*.py"):
        shutil.copy(dag_file, dags / dag_file.name)
    shutil.copytree(REPO / "example_dags" / "audiences", dags / "audiences")  # leadpipe_audience_as_code's

    stack = AirflowStandalone(
        home=root / "home",
        dags_folder=dags,
        log_path=artifacts / "standalone.log",
        env={"LEADPIPE_EXAMPLE_POKE_INTERVAL": POKE_INTERVAL_S},
    )
    with always_stopped(stack):
        stack.start()
        stack.wait_until_ready()
        yield stack


@pytest.fixture(scope="package")
def api(airflow: AirflowStandalone) -> Iterator[httpx.Client]:
    """An authenticated REST client (admin's JWT) for /api/v2 and /ui."""
    with airflow.client() as client:
        yield client


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium from Debian's package, driven by Playwright (never `playwright install`).

    scripts/install_chromium.sh installs the package when missing; where it cannot (no apt-get,
    no root), the browser tests skip with that reason.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (run scripts/install_chromium.sh; needs apt-get and root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: it belongs in the provider's `test` extra")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, airflow: AirflowStandalone):
    """A fresh browser page, signed in to Airflow as admin through the real login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=airflow.base_url)
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    page.goto("/connections")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(airflow.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/connections")
    try:
        yield page
    finally:
        context.close()
