"""The "Leadpipe connection" extra link in real Airflow, read as the UI reads it: through REST
(``/api/v2/.../taskInstances/{task_id}/links``), while the sensor of the example DAG
`leadpipe_credit_gated_pull` waits deferred, after it succeeded, and after it failed; and the page
the link opens shows that connection's card alone, without the key.

Every wait is for a state the API reports, with a generous safety net; nothing depends on how fast
the machine is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from tests.e2e.airflow_api import put_connection, trigger, wait_for_dag, watch_run

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="the credits page exists from Airflow 3.1")

DAG_ID = "leadpipe_credit_gated_pull"
SENSOR = "wait_for_credits"
CONN_ID = "leadpipe_default"
LINK = "Leadpipe connection"
#: Where the link leads: the stack's [api] base_url has no path, so the page is at the root.
EXPECTED = f"/leadpipe/credits?conn_id={CONN_ID}"
KEY = "sk_test_e2e_links"
UNKNOWN_KEY = "sk_test_e2e_links_unknown"  # never configured: the sandbox answers 401
SAFETY_NET_S = 240.0


def wait_until(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after the safety net."""
    give_up = time.monotonic() + SAFETY_NET_S
    while time.monotonic() < give_up:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not seen within {SAFETY_NET_S:.0f} s")


def _ti(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{SENSOR}").json()


def _links(api: httpx.Client, run_id: str) -> dict[str, str | None]:
    response = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{SENSOR}/links")
    response.raise_for_status()
    return response.json()["extra_links"]


def _cards(html: str) -> list[str]:
    return re.findall(r'<section class="card[^"]*" data-conn-id="([^"]+)">', html)


def _open(api: httpx.Client, link: str | None, *secrets: str) -> str:
    """The page behind ``link`` as the signed-in user opens it: that connection's card only."""
    assert link == EXPECTED
    page = api.get(link)
    assert page.status_code == 200, page.text
    assert _cards(page.text) == [CONN_ID]
    assert all(secret not in page.text for secret in secrets)
    return page.text


def test_a_deferred_sensor_has_the_link_and_keeps_it(api, airflow, sandbox, tmp_path):
    sandbox.configure_key(KEY)
    sandbox.exhaust_credits(api_key=KEY)  # no credits until the test gives them back
    put_connection(
        api, {"connection_id": CONN_ID, "conn_type": "leadpipe", "host": sandbox.url, "password": KEY}
    )
    wait_for_dag(api, DAG_ID)
    run_id = trigger(api, DAG_ID, conf={"output_dir": str(tmp_path / "out")})

    wait_until(lambda: _ti(api, run_id).get("state") == "deferred", f"{SENSOR} deferred")
    # While the triggerer waits for credits, the link is there (and the sensor still deferred).
    links = _links(api, run_id)
    assert _ti(api, run_id)["state"] == "deferred", airflow.log_tail()
    assert links == {LINK: EXPECTED}
    _open(api, links[LINK], KEY)

    sandbox.reset_credits(api_key=KEY)  # the trigger fires, a worker resumes the sensor
    watch = watch_run(api, DAG_ID, run_id, SENSOR)
    assert watch.run_state == "success" and watch.final["state"] == "success", (watch, airflow.log_tail())
    assert _links(api, run_id) == {LINK: EXPECTED}


def test_a_failed_sensor_has_the_link_to_its_connections_error(api, airflow, sandbox, tmp_path):
    put_connection(
        api,
        {"connection_id": CONN_ID, "conn_type": "leadpipe", "host": sandbox.url, "password": UNKNOWN_KEY},
    )
    wait_for_dag(api, DAG_ID)
    run_id = trigger(api, DAG_ID, conf={"output_dir": str(tmp_path / "out")})

    watch = watch_run(api, DAG_ID, run_id, SENSOR)
    assert watch.run_state == "failed" and watch.final["state"] == "failed", (watch, airflow.log_tail())
    assert "deferred" not in watch.states  # a refused key fails at the first poke
    links = _links(api, run_id)
    assert links == {LINK: EXPECTED}
    # The page it opens says why: the connection's typed error, without the key (once the page's
    # cache of the earlier key's answer has expired).
    wait_until(lambda: "LeadpipeAuthError" in _open(api, links[LINK], UNKNOWN_KEY), "the key refused")
