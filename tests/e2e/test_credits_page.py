"""The Leadpipe credits page inside Airflow's UI: nav entry, cards, chart, task view, auth.

Three connections (healthy, uncapped, down) and three runs of the example DAG
`leadpipe_daily_credit_report`, with credits spent between runs, in `airflow standalone`; the page
is read through its route and in headless Chromium. Screenshots go to `.artifacts/e2e/`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.airflow_api import put_connection, trigger, wait_for_dag, watch_run
from tests.e2e.browser import screenshot
from tests.ports import RefusedPort

DAG_ID = "leadpipe_daily_credit_report"
TASK = "credit_report"
KEY = "sk_test_e2e_credits_page"
DOWN_KEY = "sk_test_e2e_down_account"
SPENT_PER_RUN = 150


def _cards(html: str) -> dict[str, str]:
    """The HTML of each card, by connection id."""
    return dict(re.findall(r'<section class="card[^"]*" data-conn-id="([^"]+)">(.*?)</section>', html, re.S))


@pytest.fixture
def down_port() -> Iterator[int]:
    """A port that refuses connections for the whole test (no process can take it meanwhile)."""
    with RefusedPort() as refused:
        yield refused.port


def test_credits_page_shows_every_connection_and_the_report_history(
    api, airflow, sandbox, artifacts, page, down_port
):
    from playwright.sync_api import expect

    sandbox.configure_key(KEY, {"organization": {"name": "Acme <Growth> & Co", "status": "active"}})
    put_connection(
        api,
        {"connection_id": "leadpipe_default", "conn_type": "leadpipe", "host": sandbox.url, "password": KEY},
    )
    put_connection(
        api,
        {
            "connection_id": "leadpipe_uncapped",
            "conn_type": "leadpipe",
            "host": sandbox.url,
            "password": "sk_test_unlimited",
        },
    )
    put_connection(
        api,
        {
            "connection_id": "leadpipe_down",
            "conn_type": "leadpipe",
            "host": f"http://127.0.0.1:{down_port}",  # refuses every connection
            "password": DOWN_KEY,
        },
    )
    # Twenty connections in all, one of them down: the page fetches them side by side.
    extra = [f"leadpipe_extra_{n:02d}" for n in range(17)]
    for conn_id in extra:
        put_connection(
            api, {"connection_id": conn_id, "conn_type": "leadpipe", "host": sandbox.url, "password": KEY}
        )
    wait_for_dag(api, DAG_ID)
    run_ids = []
    for n in range(3):
        if n:
            sandbox.consume_credits(SPENT_PER_RUN, api_key=KEY)
        run_id = trigger(api, DAG_ID)
        watch = watch_run(api, DAG_ID, run_id, TASK)
        assert watch.final["state"] == "success", (watch, airflow.log_tail())
        run_ids.append(run_id)

    # Unpausing the @daily DAG also lets the scheduler start its latest scheduled run: every
    # successful report is a point, whoever started it.
    reports = _successful_reports(api)
    assert len(reports) >= 3 and set(run_ids) <= set(reports)

    started = time.monotonic()
    response = api.get("/leadpipe/credits")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    html = response.text
    print(f"credits page: {len(_cards(html))} cards in {elapsed:.2f} s")
    cards = _cards(html)
    assert {"leadpipe_default", "leadpipe_uncapped", "leadpipe_down", *extra} <= set(cards)
    assert all("credits left" in cards[conn_id] for conn_id in extra)

    healthy = cards["leadpipe_default"]
    assert "Acme &lt;Growth&gt; &amp; Co" in healthy  # escaped, never raw
    remaining = 500 - 2 * SPENT_PER_RUN
    assert f"<strong>{remaining}</strong> of 500 credits left" in healthy
    assert len(re.findall(r'<circle class="point"', healthy)) == len(reports)
    assert 'data-mark="exhaustion"' in healthy  # 150 credits per run, seconds apart: runs out soon
    assert "Uncapped plan" in cards["leadpipe_uncapped"] and 'class="bar"' not in cards["leadpipe_uncapped"]
    assert "LeadpipeConnectionError" in cards["leadpipe_down"]
    assert "cached for" in html
    for secret in (KEY, DOWN_KEY, "sk_test_unlimited", sandbox.api_key):
        assert secret not in html

    # Filtered to one connection (where the tasks' "Leadpipe connection" link leads): that card alone.
    alone = api.get("/leadpipe/credits", params={"conn_id": "leadpipe_default"})
    assert alone.status_code == 200 and list(_cards(alone.text)) == ["leadpipe_default"]
    assert f"<strong>{remaining}</strong> of 500 credits left" in alone.text
    assert KEY not in alone.text

    # The task-instance view shows that run's report as a card.
    report = api.get(
        "/leadpipe/credits/report",
        params={"dag_id": DAG_ID, "run_id": run_ids[-1], "task_id": TASK, "map_index": -1},
    )
    assert report.status_code == 200
    assert f"<strong>{remaining}</strong> of 500 credits left" in report.text
    assert f"Credit report of {TASK}" in report.text

    # Without Airflow's login, no route answers with data; nothing but GET exists.
    with httpx.Client(base_url=airflow.base_url, timeout=10.0) as stranger:
        for path in (
            "/leadpipe/credits",
            f"/leadpipe/credits/report?dag_id={DAG_ID}&run_id=x&task_id={TASK}",
        ):
            refused = stranger.get(path)
            assert refused.status_code in (401, 403), (path, refused.status_code)
            assert "credits left" not in refused.text
        assert stranger.get(
            "/leadpipe/credits", headers={"Authorization": "Bearer not-a-token"}
        ).status_code in (401, 403)
    assert api.post("/leadpipe/credits").status_code == 405

    # In the browser: the nav entry, the page inside Airflow (iframe), the task-instance tab.
    page.goto("/")
    page.get_by_role("button", name="Browse").click()
    entry = page.get_by_role("menuitem", name="Leadpipe")
    expect(entry).to_be_visible()
    screenshot(page, artifacts / "10-credits-nav-entry.png")
    page.goto("/plugin/leadpipe")  # where the entry leads
    frame = page.frame_locator("iframe")
    expect(frame.locator('[data-conn-id="leadpipe_default"]')).to_be_visible()
    expect(frame.locator('[data-conn-id="leadpipe_down"]')).to_contain_text("LeadpipeConnectionError")
    expect(frame.locator('[data-conn-id="leadpipe_default"] circle.point')).to_have_count(len(reports))
    screenshot(page, artifacts / "11-credits-page.png")
    frame_html = page.frames[-1].content()
    for secret in (KEY, DOWN_KEY, "sk_test_unlimited"):
        assert secret not in page.content() and secret not in frame_html

    page.goto(f"/dags/{DAG_ID}/runs/{run_ids[-1]}/tasks/{TASK}/plugin/leadpipe_credit_report")
    expect(page.frame_locator("iframe").get_by_text(f"Credit report of {TASK}")).to_be_visible()
    screenshot(page, artifacts / "12-credit-report-task-view.png")


def _successful_reports(api: httpx.Client, timeout: float = 300.0) -> list[str]:
    """Run ids whose credit report succeeded, once no run of the DAG is still going."""
    deadline = time.monotonic() + timeout
    while True:
        runs = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
        if all(run["state"] in ("success", "failed") for run in runs) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return [
        run["dag_run_id"]
        for run in runs
        if api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/{TASK}").json()["state"]
        == "success"
    ]
