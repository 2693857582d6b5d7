"""Credit report threshold alerts in real Airflow (dag.test) against the sandbox: each threshold is
sent once per crossing per billing cycle, through notifiers, never with the key."""

from __future__ import annotations

import json
import re

import pendulum
import pytest
import time_machine
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from tests.conftest import DAGS_FOLDER
from tests.integration.dag_runs import (
    dag_run_output,
    dagbag,
    sandbox_account,
    task_log_to_this_tests_stdout,
    task_states,
    xcom_value,
)

pytestmark = pytest.mark.integration
KEY = "sk_test_ALERTKEY_9876543210"


@pytest.fixture
def notifications(tmp_path, monkeypatch):
    """What the DAGs' ``Recording`` notifiers were sent, read back as a list of dicts."""
    sink = tmp_path / "notifications.jsonl"
    sink.touch()
    monkeypatch.setenv("LEADPIPE_TEST_NOTIFICATIONS", str(sink))
    return lambda: [json.loads(line) for line in sink.read_text().splitlines()]


def scenario(name, sandbox, monkeypatch, *, start, resets_in_days=30):
    bag = dagbag(DAGS_FOLDER / "leadpipe_test_credit_alerts.py")  # one file, three DAGs
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[f"leadpipe_test_credit_alerts_{name}"]
    sandbox_account(
        sandbox,
        monkeypatch,
        KEY,
        conn_id=f"leadpipe_alerts_{name}",
        organization=f"Acme {name} {start.int_timestamp}",  # earlier tests' reports are another org
        resets_at=start.add(days=resets_in_days),
    )
    return dag


def report_on(dag, sandbox, day, start, **credits):
    """One scheduled run ``day`` days after ``start``, after setting the sandbox's credits."""
    sandbox.set_credits(api_key=KEY, **credits)
    with time_machine.travel(start.add(days=day), tick=True):
        run = dag.test()
    assert run.state == "success", task_states(run)
    return xcom_value(run, "credit_report")["alerts"]


def test_fires_once_over_five_reports_and_a_reset_rearms_it(
    airflow_db, leadpipe_sandbox, monkeypatch, notifications
):
    start = pendulum.now("UTC").start_of("day").add(hours=6)
    dag = scenario("once", leadpipe_sandbox, monkeypatch, start=start)

    seen = [
        report_on(dag, leadpipe_sandbox, day, start, used=used)
        for day, used in enumerate((500, 950, 960, 970, 980))
    ]
    assert [alerts["crossed"] for alerts in seen] == [[], *[["min_credits"]] * 4]
    assert [alerts["fired"] for alerts in seen] == [[], ["min_credits"], [], [], []]
    sent = notifications()
    assert len(sent) == 1
    assert sent[0]["alert"]["threshold"] == "min_credits" and sent[0]["alert"]["remaining"] == 50

    # The plan resets (credits back, a new resetsAt), then credits fall below 100 again.
    refilled = report_on(dag, leadpipe_sandbox, 5, start, used=10, resets_at=start.add(days=60))
    assert refilled["crossed"] == [] and refilled["fired"] == [] and refilled["notified"] == {}
    again = report_on(dag, leadpipe_sandbox, 6, start, used=930)
    assert again["fired"] == ["min_credits"]
    assert again["notified"] == {"min_credits": start.add(days=60).in_timezone("UTC").to_iso8601_string()}
    assert [record["alert"]["remaining"] for record in notifications()] == [50, 70]


def test_two_thresholds_in_one_run_send_two_alerts_without_the_key(
    airflow_db, leadpipe_sandbox, monkeypatch, notifications, capsys
):
    task_log_to_this_tests_stdout(monkeypatch)
    start = pendulum.now("UTC").start_of("day").add(hours=6)
    dag = scenario("two", leadpipe_sandbox, monkeypatch, start=start)

    report_on(dag, leadpipe_sandbox, 0, start, used=300)
    alerts = report_on(dag, leadpipe_sandbox, 1, start, used=950)
    assert alerts["thresholds"] == {"min_credits": 100, "max_percent_used": 80}
    assert alerts["fired"] == ["min_credits", "max_percent_used"]

    sent = notifications()
    assert [record["alert"]["threshold"] for record in sent] == ["min_credits", "max_percent_used"]
    org = f"Acme two {start.int_timestamp}"
    assert sent[0]["text"].startswith(
        "Leadpipe credits alert (min_credits): 50 credits left, below min_credits=100.\n"
    )
    assert sent[1]["text"].startswith(
        "Leadpipe credits alert (max_percent_used): 95% of credits used, above max_percent_used=80.\n"
    )
    resets = start.add(days=30).in_timezone("UTC").to_iso8601_string()
    for record in sent:
        # Organization, connection, credits left of limit, burn per day, when it runs out and resets.
        assert f"Organization: {org} (connection leadpipe_alerts_two)" in record["text"]
        assert re.search(
            r"Credits: 50 of 1000 left; burn 6\d\d(\.\d+)?/day; runs out \S+Z; resets " + re.escape(resets),
            record["text"],
        ), record["text"]
        assert record["alert"]["projected_exhaustion_at"] < record["alert"]["resets_at"]

    out = dag_run_output(capsys.readouterr().out)
    assert "Leadpipe credits alert (max_percent_used)" in out  # the task log was captured
    assert KEY not in json.dumps(sent) and KEY not in out


def test_a_raising_notifier_is_logged_and_the_report_succeeds(
    airflow_db, leadpipe_sandbox, monkeypatch, notifications, capsys
):
    task_log_to_this_tests_stdout(monkeypatch)
    start = pendulum.now("UTC").start_of("day").add(hours=6)
    dag = scenario("broken", leadpipe_sandbox, monkeypatch, start=start)

    alerts = report_on(dag, leadpipe_sandbox, 0, start, used=950)  # asserts the run succeeded
    assert alerts["fired"] == ["min_credits"]
    assert [record["notifier"] for record in notifications()] == ["broken"]  # the other one still sent
    out = dag_run_output(capsys.readouterr().out)
    if AIRFLOW_V_3_1_PLUS:
        assert alerts["failed"] == [{"threshold": "min_credits", "notifier": "Exploding"}]
        assert "Notifier Exploding failed to send the min_credits alert (the report goes on)" in out
        assert "notification service unreachable" in out
    else:  # before 3.1, BaseNotifier catches and logs its own error (outside the task log)
        assert alerts["failed"] == []
    assert KEY not in out
