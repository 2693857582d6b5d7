"""Test DAGs: credit reports with thresholds and notifiers, for tests/integration/test_credit_alerts.py.

Each DAG has its own connection (``leadpipe_alerts_<name>``), so the tests can give each its own
sandbox key. ``Recording`` appends what it was sent (its rendered ``text`` and the alert) as a JSON
line to the file named by ``LEADPIPE_TEST_NOTIFICATIONS``; ``Exploding`` always raises.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.providers.common.compat.sdk import BaseNotifier

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.credit_report import LeadpipeCreditReportOperator


class Recording(BaseNotifier):
    """Writes each notification it receives to ``$LEADPIPE_TEST_NOTIFICATIONS`` (one JSON line)."""

    template_fields = ("text",)

    def __init__(self, name: str, text: str = "{{ leadpipe_alert.message }}") -> None:
        super().__init__()
        self.name = name
        self.text = text

    def notify(self, context) -> None:
        record = {"notifier": self.name, "text": self.text, "alert": context["leadpipe_alert"]}
        with open(os.environ["LEADPIPE_TEST_NOTIFICATIONS"], "a", encoding="utf-8") as sink:
            sink.write(json.dumps(record) + "\n")


class Exploding(BaseNotifier):
    """A notifier whose service is down."""

    def notify(self, context) -> None:
        raise ConnectionError("notification service unreachable")


SCENARIOS = {
    "once": {"min_credits": 100},
    "two": {"min_credits": 100, "max_percent_used": "{{ 40 * 2 }}"},  # rendered, then checked
    "broken": {"min_credits": 100},
}

for name, thresholds in SCENARIOS.items():
    notifiers = [Exploding(), Recording(name)] if name == "broken" else [Recording(name)]
    with DAG(
        f"leadpipe_test_credit_alerts_{name}",
        schedule="@daily",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["leadpipe", "test"],
    ) as dag:
        LeadpipeCreditReportOperator(
            task_id="credit_report",
            leadpipe_conn_id=f"leadpipe_alerts_{name}",
            notifiers=notifiers,
            **thresholds,
        )
    globals()[dag.dag_id] = dag
