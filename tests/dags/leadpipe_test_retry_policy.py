"""Test DAG (Airflow 3.3+): a task with ``retries=2`` and ``retry_policy=LeadpipeRetryPolicy()`` that
raises the provider error named by the run's ``error`` param, for
tests/integration/test_retry_policy.py. On older Airflow the file defines no DAG."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow_provider_leadpipe import exceptions

try:
    from airflow_provider_leadpipe.utils.retry_policy import LeadpipeRetryPolicy
except ImportError:  # Airflow < 3.3
    LeadpipeRetryPolicy = None

ERRORS = {
    "config": lambda: exceptions.LeadpipeConfigError("the connection has no API key"),
    "server": lambda: exceptions.LeadpipeServerError("HTTP 503", http_status=503),
    "rate_limit": lambda: exceptions.LeadpipeRateLimitError("HTTP 429", http_status=429, retry_after=0),
    "response": lambda: exceptions.LeadpipeResponseError("the answer has no 'data'"),
}

if LeadpipeRetryPolicy is not None:
    from airflow.sdk import dag, task

    @dag(
        dag_id="leadpipe_test_retry_policy",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        params={"error": "server"},
        default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
        tags=["leadpipe", "test"],
    )
    def leadpipe_test_retry_policy():
        @task(retry_policy=LeadpipeRetryPolicy())
        def pull(**context) -> None:
            raise ERRORS[context["params"]["error"]]()

        pull()

    leadpipe_test_retry_policy()
