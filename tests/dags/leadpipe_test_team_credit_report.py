"""Two DAGs of credit reports on one connection of their own, `leadpipe_team_reports`, for the
credits page's per-DAG permission test (tests/hardening/test_plugin_permissions.py puts the first in
another team's bundle). A connection no other test uses keeps other tests' reports off its card."""

from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.credit_report import LeadpipeCreditReportOperator

CONN_ID = "leadpipe_team_reports"

for dag_id in ("leadpipe_test_team_credit_report", "leadpipe_test_open_credit_report"):
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["leadpipe", "test"],
    ) as dag:
        LeadpipeCreditReportOperator(task_id="credit_report", leadpipe_conn_id=CONN_ID)
    globals()[dag_id] = dag
