"""leadpipe_credit_alerts with dag.test() against the sandbox: the daily report alerts once per
crossing through a notifier (a recording one, and Airflow's own SMTP notifier against a local SMTP
server), never with the key; the credits-low DAG is scheduled on the credits-low watcher."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from types import SimpleNamespace
from typing import ClassVar

import pendulum
import pytest
import time_machine
from airflow.providers.common.compat.sdk import BaseNotifier
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from tests.conftest import DAGS_FOLDER
from tests.integration.dag_runs import dagbag, load_dag, sandbox_account, task_states, xcom_value
from tests.ports import free_port

pytestmark = pytest.mark.integration
DAG_ID = "leadpipe_credit_alerts"
LOW_DAG_ID = "leadpipe_credits_low"
KEY = "sk_test_EXAMPLEALERTS_24680"


class Recording(BaseNotifier):
    """Keeps what it was sent (in this process: dag.test() runs tasks in it)."""

    template_fields = ("text",)
    sent: ClassVar[list[dict]] = []

    def __init__(self) -> None:
        super().__init__()
        self.text = "{{ leadpipe_alert.message }}"

    def notify(self, context) -> None:
        Recording.sent.append({"text": self.text, "alert": dict(context["leadpipe_alert"])})


def both_dags():
    bag = dagbag(DAGS_FOLDER / f"{DAG_ID}.py")
    assert not bag.import_errors, bag.import_errors
    return bag.dags[DAG_ID], bag.dags[LOW_DAG_ID]


def test_parses_without_import_errors():
    report_dag, low_dag = both_dags()
    assert set(report_dag.task_ids) == {"pull_visitors", "credit_report", "any_failed"}
    assert set(low_dag.task_ids) == {"credits_low_message"}
    report = report_dag.get_task("credit_report")
    assert (report.min_credits, report.max_percent_used, report.exhaustion_margin_hours) == (500, 90, 48)
    pull = report_dag.get_task("pull_visitors")
    policy_ = getattr(pull, "retry_policy", None)
    try:
        from airflow_provider_leadpipe.utils.retry_policy import LeadpipeRetryPolicy
    except ImportError:  # Airflow < 3.3: plain retries
        assert policy_ is None and pull.retries == 3
    else:
        assert isinstance(policy_, LeadpipeRetryPolicy)


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="asset watchers need Airflow 3.0")
def test_the_low_credits_dag_is_scheduled_on_the_watcher():
    from airflow_provider_leadpipe.triggers.credits import LeadpipeCreditsLowEventTrigger

    _, low_dag = both_dags()
    [asset] = low_dag.timetable.asset_condition.objects
    assert asset.uri == "leadpipe://api.aws53.cloud/account/credits-low"
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, LeadpipeCreditsLowEventTrigger)
    _, kwargs = watcher.trigger.serialize()
    assert kwargs["min_credits"] == 500 and kwargs["max_percent_used"] == 90
    assert json.loads(json.dumps(kwargs)) == kwargs


def report_run(dag, sandbox, start, day, used, out):
    """A scheduled run ``day`` days after ``start``, with ``used`` of 1000 credits used."""
    sandbox.set_credits(used=used, api_key=KEY)
    with time_machine.travel(start.add(days=day), tick=True):
        run = dag.test(run_conf={"output_dir": str(out)})
    assert run.state == "success", task_states(run)
    assert task_states(run) == {
        "pull_visitors": "success",
        "credit_report": "success",
        "any_failed": "skipped",
    }
    return xcom_value(run, "credit_report")["alerts"]


def test_a_failed_pull_fails_the_run_though_the_report_ran(
    airflow_db, leadpipe_sandbox, monkeypatch, tmp_path
):
    from leadpipe_sandbox.faults import Fault

    sandbox_account(leadpipe_sandbox, monkeypatch, KEY, organization="Acme Failing Pull")
    dag = load_dag(DAG_ID)
    dag.get_task("pull_visitors").retries = 0
    dag.get_task("pull_visitors").retry_policy = None  # Airflow 3.3: the policy would retry too
    # A 400 on the visitor pull: a request error, not retried by the hook.
    leadpipe_sandbox.queue_faults(Fault(kind="error", status=400, path="/v1/data"), api_key=KEY)
    run = dag.test(run_conf={"output_dir": str(tmp_path)})
    assert task_states(run) == {"pull_visitors": "failed", "credit_report": "success", "any_failed": "failed"}
    assert run.state == "failed"


def test_the_alert_is_sent_once_over_several_daily_runs(airflow_db, leadpipe_sandbox, monkeypatch, tmp_path):
    start = pendulum.now("UTC").start_of("day").add(hours=6)
    org = f"Acme Alerts {start.int_timestamp}"  # earlier tests' reports are another organisation
    sandbox_account(leadpipe_sandbox, monkeypatch, KEY, organization=org, resets_at=start.add(days=10))
    dag = load_dag(DAG_ID)
    dag.get_task("credit_report").notifiers = [Recording()]
    Recording.sent.clear()

    # 510 left, then below 500 for four days (burning 10-20 a day: enough until the reset, no
    # runway alert).
    seen = [
        report_run(dag, leadpipe_sandbox, start, day, used, tmp_path)
        for day, used in enumerate((490, 510, 520, 530, 540))
    ]
    assert [alerts["crossed"] for alerts in seen] == [[], *[["min_credits"]] * 4]
    assert [alerts["fired"] for alerts in seen] == [[], ["min_credits"], [], [], []]
    assert len(Recording.sent) == 1
    [record] = Recording.sent
    assert record["text"].startswith(
        "Leadpipe credits alert (min_credits): 490 credits left, below min_credits=500."
    )
    assert f"Organization: {org} (connection leadpipe_default)" in record["text"]
    assert "Credits: 490 of 1000 left" in record["text"]
    assert KEY not in json.dumps(Recording.sent)


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_server(monkeypatch):
    """A local SMTP server (aiosmtpd) on a free loopback port, as Airflow's `smtp_default`."""
    pytest.importorskip(
        "airflow.providers.smtp.notifications.smtp", reason="needs apache-airflow-providers-smtp"
    )
    controller_module = pytest.importorskip("aiosmtpd.controller", reason="needs aiosmtpd (the test extra)")
    mailbox = Mailbox()
    controller = controller_module.Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    connection = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": controller.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(connection))
    try:
        yield mailbox
    finally:
        controller.stop()


def test_airflows_smtp_notifier_mails_the_alert(
    airflow_db, leadpipe_sandbox, monkeypatch, tmp_path, smtp_server
):
    # Days after the other test's reports: each run here compares with this test's previous one.
    start = pendulum.now("UTC").start_of("day").add(days=100, hours=6)
    org = f"Acme Mail {start.int_timestamp}"
    sandbox_account(leadpipe_sandbox, monkeypatch, KEY, organization=org, resets_at=start.add(days=30))
    monkeypatch.setenv("LEADPIPE_EXAMPLE_ALERT_EMAIL", "credits@example.com")
    dag = load_dag(DAG_ID)  # parsed now: the address above

    report_run(dag, leadpipe_sandbox, start, 0, 100, tmp_path)
    assert smtp_server.messages == []
    # 40 left, 96% used, burning 860 a day: every threshold is crossed.
    alerts = report_run(dag, leadpipe_sandbox, start, 1, 960, tmp_path)
    assert alerts["fired"] == ["min_credits", "max_percent_used", "exhaustion_margin_hours"]
    assert alerts["failed"] == []
    report_run(dag, leadpipe_sandbox, start, 2, 965, tmp_path)  # still low: no more mail

    assert len(smtp_server.messages) == 3  # one mail per threshold crossed
    for recipients, mail in smtp_server.messages:
        assert recipients == ["credits@example.com"]
        body = mail.get_body(preferencelist=("html", "plain")).get_content()
        assert f"Organization: {org} (connection leadpipe_default)" in body
        assert "Credits: 40 of 1000 left" in body
        assert KEY not in mail.as_string()
    subjects = [mail["subject"] for _, mail in smtp_server.messages]
    assert subjects[:2] == [
        "40 credits left, below min_credits=500",
        "96% of credits used, above max_percent_used=90",
    ]
    assert subjects[2].startswith("credits run out ") and subjects[2].endswith(
        ", before the next reset + 48 h"
    )


def test_the_low_credits_dag_run_by_hand_has_nothing_to_tell(airflow_db, leadpipe_sandbox, smtp_server):
    # On Airflow 2.x too: no watcher, no schedule, and a run by hand skips.
    _, low_dag = both_dags()
    run = low_dag.test()
    assert task_states(run) == {"credits_low_message": "skipped"}
    assert smtp_server.messages == []


@pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS, reason="asset watchers need Airflow 3.0 (no events, no mail before)"
)
def test_the_low_credits_task_mails_its_message_escaped(smtp_server, monkeypatch):
    """The task's success callback: Airflow's SMTP notifier, its template reading the task's XCom."""
    monkeypatch.setenv("LEADPIPE_EXAMPLE_ALERT_EMAIL", "low@example.com")
    _, low_dag = both_dags()
    [notifier] = low_dag.get_task("credits_low_message").on_success_callback
    message = "Leadpipe credits low (min_credits): 50 credits left.\nOrganization: Smith & <Co>"

    class TaskInstance:  # what the template reads: ti.xcom_pull(task_ids=...)
        def xcom_pull(self, task_ids=None, **_):
            assert task_ids == "credits_low_message"
            return message

    notifier({"dag": low_dag, "ti": TaskInstance()})
    [(recipients, mail)] = smtp_server.messages
    assert recipients == ["low@example.com"] and mail["subject"] == "Leadpipe credits low"
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Organization: Smith &amp; &lt;Co&gt;" in html and "50 credits left" in html


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="asset watchers need Airflow 3.0")
def test_the_low_credits_message_joins_the_events_messages():
    _, low_dag = both_dags()
    message = low_dag.task_dict["credits_low_message"].python_callable
    [asset] = low_dag.timetable.asset_condition.objects
    events = [SimpleNamespace(extra={"payload": {"message": text}}) for text in ("first low", "second low")]

    class Accessor:  # as context["triggering_asset_events"]: subscripted by the asset
        def __getitem__(self, key):
            assert key.uri == asset.uri
            return events

        def __bool__(self):
            return True

    assert message(triggering_asset_events=Accessor()) == "first low\n\nsecond low"
