"""LeadpipeCreditReportOperator with a mocked API and a stand-in task instance for XCom."""

from __future__ import annotations

import json
import logging
from typing import ClassVar

import pendulum
import pytest
import respx
import time_machine
from airflow.providers.common.compat.sdk import BaseNotifier
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.models.credit_report import Observation
from airflow_provider_leadpipe.operators.credit_report import LeadpipeCreditReportOperator
from tests.unit.conftest import API_KEY, BASE_URL, account_data

ACCOUNT_URL = f"{BASE_URL}/v1/data/account"
NOW = pendulum.datetime(2026, 11, 10, 6, tz="UTC")


@pytest.fixture
def task_log(capsys, caplog, monkeypatch):
    """What the operator logged: Airflow 3 prints via structlog to stdout, Airflow 2 uses logging."""
    monkeypatch.setattr(logging.getLogger("airflow.task"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    return lambda: caplog.text + capsys.readouterr().out


class FakeTI:
    """Answers xcom_pull like the task SDK does and records how it was asked."""

    def __init__(self, pulled):
        self.pulled = pulled
        self.calls = []

    def xcom_pull(self, **kwargs):
        self.calls.append(kwargs)
        return self.pulled


def credits(used):
    return {
        "used": used,
        "limit": 500,
        "remaining": 500 - used,
        "percentUsed": used / 5,
        "resetsAt": "2026-12-01T00:00:00Z",
    }


def earlier_report(at, used):
    return {"observed_at": at.to_iso8601_string(), "account": account_data(credits=credits(used))}


def run_report(pulled, *, used=40):
    ti = FakeTI(pulled)
    op = LeadpipeCreditReportOperator(task_id="credit_report")
    with respx.mock(assert_all_called=True) as mock, time_machine.travel(NOW, tick=False):
        mock.get(ACCOUNT_URL).respond(200, json={"data": account_data(credits=credits(used))})
        value = op.execute(context={"ti": ti})
    return value, ti


def test_first_run_without_history(leadpipe_conn, task_log):
    value, ti = run_report(None)
    assert ti.calls == [{"task_ids": "credit_report", "include_prior_dates": True}]
    assert value["observed_at"] == "2026-11-10T06:00:00Z"
    assert value["previous_observed_at"] is None
    assert value["credits_used"] is None and value["daily_burn_rate"] is None
    assert value["account"]["credits"]["used"] == 40
    json.dumps(value)
    out = task_log()
    assert "Leadpipe credit report, observed 2026-11-10T06:00:00Z" in out
    assert "Account:     Acme (trial, healthy): 460 of 500 credits left" in out
    assert "first report, nothing to compare with" in out


def test_single_earlier_value_airflow2_shape(leadpipe_conn):
    value, _ = run_report(earlier_report(NOW.subtract(days=1), used=30))
    assert value["previous_observed_at"] == "2026-11-09T06:00:00Z"
    assert value["credits_used"] == 10
    assert value["daily_burn_rate"] == pytest.approx(10.0)


def test_picks_newest_earlier_report_from_an_unordered_list_airflow3_shape(leadpipe_conn, task_log):
    pulled = [
        earlier_report(NOW.subtract(days=3), used=0),
        earlier_report(NOW.subtract(hours=12), used=35),  # the newest before now: wins
        {"something": "else"},  # not a report: ignored, with a warning
        earlier_report(NOW.add(hours=1), used=1),  # "after" now (clock skew): ignored
        earlier_report(NOW.subtract(days=1), used=30),
    ]
    value, _ = run_report(pulled, used=40)
    assert value["previous_observed_at"] == "2026-11-09T18:00:00Z"
    assert value["credits_used"] == 5
    assert value["daily_burn_rate"] == pytest.approx(10.0)
    assert "Ignored 1 earlier XCom value(s) that are not credit reports" in task_log()


def test_report_feeds_the_next_run(leadpipe_conn):
    first, _ = run_report(None, used=40)
    previous = Observation.from_report(json.loads(json.dumps(first)))
    assert previous.observed_at == NOW
    assert previous.status.credits.used == 40


def test_reset_between_runs(leadpipe_conn):
    value, _ = run_report(earlier_report(NOW.subtract(days=1), used=450), used=12)
    assert value["reset_detected"] is True
    assert value["credits_used"] == 12


def test_key_not_in_report_or_log(leadpipe_conn, task_log, caplog, capsys):
    value, _ = run_report(earlier_report(NOW.subtract(days=1), used=30))
    out = caplog.text + "".join(capsys.readouterr())  # everything, whatever the Airflow version
    assert "Burn rate:" in out
    assert API_KEY not in json.dumps(value) + out


def test_bad_conn_id_is_a_config_error():
    with pytest.raises(LeadpipeConfigError, match="leadpipe_conn_id"):
        LeadpipeCreditReportOperator(task_id="r", leadpipe_conn_id="  ")


# -- threshold alerts ------------------------------------------------------------------------


#: Before 3.1, BaseNotifier renders against the task's whole context (``context["dag"]``), which these
#: unit tests do not build; tests/integration/test_credit_alerts.py runs notifiers in dag.test there.
needs_full_context_before_3_1 = pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS, reason="BaseNotifier before 3.1 needs the whole task context (see dag.test)"
)


class Recording(BaseNotifier):
    """Records what it rendered; ``text`` is templated, as in Airflow's own notifiers."""

    template_fields = ("text",)
    sent: ClassVar[list[str]] = []

    def __init__(self, text="{{ leadpipe_alert.message }}"):
        super().__init__()
        self.text = text

    def notify(self, context):
        type(self).sent.append(self.text)


class Broken(BaseNotifier):
    def notify(self, context):
        raise RuntimeError("SMTP server said no")


def alert_report(pulled, *, used, **op_kwargs):
    context = {"ti": FakeTI(pulled)}
    op = LeadpipeCreditReportOperator(task_id="credit_report", **op_kwargs)
    with respx.mock(assert_all_called=True) as mock, time_machine.travel(NOW, tick=False):
        mock.get(ACCOUNT_URL).respond(200, json={"data": account_data(credits=credits(used))})
        value = op.execute(context=context)
    assert set(context) == {"ti"}  # notifiers got copies: the task's own context is left alone
    return value


@needs_full_context_before_3_1
def test_one_notifier_renders_each_alert_afresh(leadpipe_conn, monkeypatch):
    monkeypatch.setattr(Recording, "sent", [])
    notifier = Recording()
    value = alert_report(
        earlier_report(NOW.subtract(days=1), used=300),
        used=460,
        min_credits=50,
        max_percent_used=90,
        notifiers=[notifier],
    )
    assert value["alerts"]["fired"] == ["min_credits", "max_percent_used"]
    assert len(Recording.sent) == 2
    assert Recording.sent[0].startswith("Leadpipe credits alert (min_credits): 40 credits left")
    assert Recording.sent[1].startswith("Leadpipe credits alert (max_percent_used): 92% of credits used")
    assert notifier.text == "{{ leadpipe_alert.message }}"  # the user's notifier is left as given


@needs_full_context_before_3_1
def test_a_failing_notifier_is_logged_and_the_others_still_send(leadpipe_conn, monkeypatch, task_log):
    monkeypatch.setattr(Recording, "sent", [])
    value = alert_report(None, used=460, min_credits=50, notifiers=[Broken(), Recording()])
    assert value["alerts"]["fired"] == ["min_credits"]
    assert value["alerts"]["failed"] == [{"threshold": "min_credits", "notifier": "Broken"}]
    assert len(Recording.sent) == 1
    assert "Notifier Broken failed to send the min_credits alert (the report goes on)" in task_log()


@needs_full_context_before_3_1
def test_when_every_notifier_fails_the_alert_is_not_counted_as_sent(leadpipe_conn):
    value = alert_report(None, used=460, min_credits=50, notifiers=[Broken()])
    assert value["alerts"]["crossed"] == ["min_credits"]
    assert value["alerts"]["fired"] == [] and value["alerts"]["notified"] == {}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"min_credits": -5}, "min_credits"),
        ({"max_percent_used": 150}, "max_percent_used"),
        ({"exhaustion_margin_hours": "soon"}, "exhaustion_margin_hours"),
        ({"notifiers": Recording()}, "notifiers must be a list"),
        ({"notifiers": ["slack"]}, r"notifiers\[0\]"),
    ],
)
def test_bad_alert_arguments_fail_at_parse_time(kwargs, named):
    with pytest.raises(LeadpipeConfigError, match=rf"LeadpipeCreditReportOperator 'r': .*{named}"):
        LeadpipeCreditReportOperator(task_id="r", **kwargs)


def test_templated_threshold_is_checked_once_rendered(leadpipe_conn):
    op = LeadpipeCreditReportOperator(task_id="r", max_percent_used="{{ params.pct }}")  # no error yet
    op.render_template_fields({"params": {"pct": "250"}})
    with pytest.raises(LeadpipeConfigError, match="max_percent_used must be a number from 0 to 100"):
        op.execute(context={"ti": FakeTI(None)})  # before any request: no respx route is needed
