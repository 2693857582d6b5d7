"""leadpipe_daily_credit_report end to end with dag.test(): reports chain across runs, via XCom."""

from __future__ import annotations

import pendulum
import pytest
import time_machine

from tests.integration.dag_runs import (
    NO_LOGICAL_DATE,
    example_task_ids,
    keep_earlier_runs_without_logical_date,
    load_dag,
    sandbox_account,
    task_states,
    xcom_value,
)

pytestmark = pytest.mark.integration
DAG_ID = "leadpipe_daily_credit_report"
KEY = "sk_test_REPORTKEY_0123456789"


def test_parses_without_import_errors():
    assert example_task_ids(DAG_ID) == {"credit_report", "check_runway"}


@pytest.mark.skipif(not NO_LOGICAL_DATE, reason="runs without a logical date exist from Airflow 3")
def test_reports_chain_across_runs_without_logical_date(airflow_db, leadpipe_sandbox, monkeypatch, capsys):
    """The sandbox's clock stays put: only this process travels (the report's time is client side)."""
    keep_earlier_runs_without_logical_date(monkeypatch)
    dag = load_dag(DAG_ID)
    start = pendulum.now("UTC")
    sandbox_account(leadpipe_sandbox, monkeypatch, KEY, limit=1000, resets_at=start.add(days=30))

    # Run 1 (no logical date, like a run triggered through the API): no history yet.
    leadpipe_sandbox.set_credits(used=100, api_key=KEY)
    first = dag.test(logical_date=None)
    assert first.logical_date is None
    assert first.state == "success"
    assert task_states(first) == {"credit_report": "success", "check_runway": "success"}
    report1 = xcom_value(first, "credit_report")
    assert report1["previous_observed_at"] is None and report1["daily_burn_rate"] is None
    assert report1["account"]["credits"]["remaining"] == 900
    assert xcom_value(first, "check_runway") == "unknown"

    # Run 2, a day later, 20 more credits used: 20/day, 880 left -> 44 days, after the reset.
    leadpipe_sandbox.set_credits(used=120, api_key=KEY)
    with time_machine.travel(start.add(days=1), tick=True):
        second = dag.test(logical_date=None)
    assert second.state == "success"
    report2 = xcom_value(second, "credit_report")
    assert report2["previous_observed_at"] == report1["observed_at"]
    assert report2["credits_used"] == 20
    assert report2["daily_burn_rate"] == pytest.approx(20.0, rel=0.01)
    assert report2["runs_out_before_reset"] is False
    assert xcom_value(second, "check_runway") == "ok"

    # Run 3, a scheduled-style run WITH a logical date, a day later again, 500 used in a day:
    # 380 left at 500/day runs out long before the reset -> check_runway fails the run.
    leadpipe_sandbox.set_credits(used=620, api_key=KEY)
    with time_machine.travel(start.add(days=2), tick=True):
        third = dag.test()
    assert third.logical_date is not None
    assert third.state == "failed"
    assert task_states(third) == {"credit_report": "success", "check_runway": "failed"}
    report3 = xcom_value(third, "credit_report")
    assert report3["previous_observed_at"] == report2["observed_at"]
    assert report3["credits_used"] == 500
    assert report3["runs_out_before_reset"] is True

    # Run 4: the plan reset in between (used went down): usage counts from the reset, at an
    # unknown time, so over the whole day: 5/day with 995 left, well after the next reset.
    leadpipe_sandbox.set_credits(used=5, resets_at=start.add(days=60), api_key=KEY)
    with time_machine.travel(start.add(days=3), tick=True):
        fourth = dag.test(logical_date=None)
    assert fourth.state == "success"
    report4 = xcom_value(fourth, "credit_report")
    assert report4["previous_observed_at"] == report3["observed_at"]
    assert report4["reset_detected"] is True
    assert report4["credits_used"] == 5
    assert xcom_value(fourth, "check_runway") == "ok"

    # Run 5: the connection's key now belongs to another organisation: nothing is compared, and
    # the report says why (a nonsense burn rate across organisations is what it avoids).
    leadpipe_sandbox.set_organization(name="Globex", api_key=KEY)
    leadpipe_sandbox.set_credits(used=990, api_key=KEY)
    with time_machine.travel(start.add(days=4), tick=True):
        fifth = dag.test(logical_date=None)
    assert fifth.state == "success"
    report5 = xcom_value(fifth, "credit_report")
    assert report5["previous_observed_at"] is None and report5["daily_burn_rate"] is None
    assert "another organisation ('Acme', now 'Globex')" in report5["previous_ignored"]
    assert xcom_value(fifth, "check_runway") == "unknown"

    # Run 6: a huge balance at a tiny burn rate projects past the calendar: "not within N years".
    leadpipe_sandbox.set_credits(used=0, limit=10**15, api_key=KEY)
    with time_machine.travel(start.add(days=5), tick=True):
        dag.test(logical_date=None)
    leadpipe_sandbox.set_credits(used=1, api_key=KEY)
    with time_machine.travel(start.add(days=6), tick=True):
        sixth = dag.test(logical_date=None)
    assert sixth.state == "success", task_states(sixth)
    report6 = xcom_value(sixth, "credit_report")
    assert report6["projected_exhaustion_at"] is None and report6["exhaustion_not_within_years"] == 100
    assert xcom_value(sixth, "check_runway") == "ok"
    assert leadpipe_sandbox.request_count("/v1/data/account", api_key=KEY, status=200) == 7

    out = capsys.readouterr().out
    assert "Leadpipe credit report, observed" in out
    assert "Account:     Acme (active, healthy): 380 of 1000 credits left" in out
    assert "BEFORE the next reset" in out
    assert "Since last:  not compared: the previous report is for another organisation" in out
    assert "Exhaustion:  not within 100 years at the current burn rate" in out
    assert KEY not in out

    # The Leadpipe UI page (Airflow >= 3.1) reads these same reports back from the XCom table.
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

    if AIRFLOW_V_3_1_PLUS:
        from airflow_provider_leadpipe.plugins import data
        from airflow_provider_leadpipe.plugins.render import credit_chart

        stored = data.credit_reports([DAG_ID])["leadpipe_default"][-7:]
        assert [point.remaining for point in stored] == [900, 880, 380, 995, 10, 10**15, 10**15 - 1]
        assert stored[-1].observed_at == pendulum.parse(report6["observed_at"])
        # The chart follows the organisation the key now belongs to (runs 5-6), as the report does.
        chart = credit_chart(stored)
        assert chart.count('<circle class="point"') == 3
        assert "Earlier reports of another organization are not charted" in chart
        own = data.task_report(DAG_ID, fourth.run_id, "credit_report", -1)
        assert own is not None and own["leadpipe_conn_id"] == "leadpipe_default"
        assert own["observed_at"] == report4["observed_at"]
