"""The credits page charts a credit report only for a user who may read that DAG's XCom: the rule
of the task-instance tab, decided by Airflow's own auth manager.

Two DAGs (tests/dags/leadpipe_test_team_credit_report.py) report on one connection of their own.
One of them is moved into another team's bundle; a user of the
``op`` role in a different team may read the connection (and so sees its card) but not that DAG
(so the task-instance tab refuses its report, and the card must not chart it). Airflow's simple auth
manager decides both, with its real rules: the user's role, and the team of the DAG's bundle
(its users have teams from Airflow 3.2).
"""

from __future__ import annotations

import re

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS

from tests.conftest import DAGS_FOLDER
from tests.hardening.figures import record
from tests.integration.dag_runs import dagbag, keep_earlier_runs_without_logical_date, sandbox_account
from tests.plugin_client import signed_in_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not AIRFLOW_V_3_2_PLUS,
        reason="Airflow's simple auth manager has no user that may read a connection but not a DAG "
        "before 3.2 (teams)",
    ),
]

KEY = "sk_test_TEAMREPORTS_0123456789"
OPEN_DAG = "leadpipe_test_open_credit_report"
TEAM_DAG = "leadpipe_test_team_credit_report"
TEAM, BUNDLE = "finance", "finance-dags"
CONN_ID = "leadpipe_team_reports"


def _card(html: str, conn_id: str) -> str:
    cards = dict(re.findall(r'<section class="card[^"]*" data-conn-id="([^"]+)">(.*?)</section>', html, re.S))
    return cards[conn_id]


def _points(card: str) -> list[str]:
    """Each charted report's tooltip: "<date>: <n> left"."""
    return re.findall(r'<circle class="point"[^>]*><title>([^<]*)</title>', card)


def _move_to_team_bundle(dag_id: str) -> None:
    """Put ``dag_id`` in a bundle of team ``finance`` (as a multi-team deployment configures it)."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    with create_session() as session:
        team = session.get(Team, TEAM) or Team(name=TEAM)
        bundle = session.get(DagBundleModel, BUNDLE) or DagBundleModel(name=BUNDLE)
        bundle.teams = [team]
        session.add_all([team, bundle])
        session.flush()
        session.get(DagModel, dag_id).bundle_name = BUNDLE
    assert DagModel.get_team_name(dag_id) == TEAM


def test_a_report_is_charted_only_for_a_user_who_may_read_its_dag(airflow_db, leadpipe_sandbox, monkeypatch):
    keep_earlier_runs_without_logical_date(monkeypatch)
    sandbox_account(leadpipe_sandbox, monkeypatch, KEY, conn_id=CONN_ID, limit=1000)
    bag = dagbag(DAGS_FOLDER / f"{TEAM_DAG}.py")
    assert not bag.import_errors, bag.import_errors
    runs = {}
    for dag_id, used in ((OPEN_DAG, 100), (TEAM_DAG, 321), (TEAM_DAG, 432)):
        leadpipe_sandbox.set_credits(used=used, api_key=KEY)
        run = bag.dags[dag_id].test(logical_date=None)
        assert run.state == "success", run.state
        runs.setdefault(dag_id, []).append(run.run_id)
    _move_to_team_bundle(TEAM_DAG)

    admin = signed_in_client("admin")
    stranger = signed_in_client("op", teams=["marketing"])  # may read the connection, not TEAM_DAG

    def tab(client, dag_id):
        return client.get(
            "/credits/report",
            params={"dag_id": dag_id, "run_id": runs[dag_id][-1], "task_id": "credit_report"},
        )

    # The task-instance tab's rule: the admin reads both reports, the stranger only OPEN_DAG's.
    assert tab(admin, OPEN_DAG).status_code == 200 and tab(admin, TEAM_DAG).status_code == 200
    assert tab(stranger, OPEN_DAG).status_code == 200
    assert tab(stranger, TEAM_DAG).status_code == 403

    seen_by_admin = _points(_card(admin.get("/credits").text, CONN_ID))
    assert sorted(p.split(": ")[1] for p in seen_by_admin) == ["568 left", "679 left", "900 left"]

    page = stranger.get("/credits")
    assert page.status_code == 200  # the stranger may read the connection: the card is there
    card = _card(page.text, CONN_ID)
    assert [p.split(": ")[1] for p in _points(card)] == ["900 left"]
    assert "679 left" not in page.text and "568 left" not in page.text
    record(
        "plugin permissions",
        "credits page, user who may read the connection but not a DAG (team rule of Airflow's "
        "simple auth manager): that DAG's reports not charted, as its task-instance tab refuses them",
        events=len(seen_by_admin),
    )
