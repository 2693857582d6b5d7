"""Credit-gated visitor pull: wait for a healthy Leadpipe account with credits, then pull visitors.

1. `wait_for_credits` (LeadpipeAccountSensor, deferrable): pokes once, then hands the wait to the
   triggerer, which polls the account without holding a worker slot until it is healthy and has
   `params.min_credits` credits left. An expired organization or a bad key fails at once.
2. `pull_visitors` writes every visitor of `params.timeframe` as gzipped JSON Lines to
   `params.output_dir` (any ObjectStoragePath: a local folder, `s3://bucket/prefix`, ...). The file
   appears only once the pull is complete.
3. `account_after_pull` records the account status after the pull; `summary` compares it with the
   status the sensor saw.

Nothing depends on the logical date: the output file is named after the run id, so runs triggered
through the REST API (which have no logical date) work too.

Needs a `leadpipe` connection named `leadpipe_default` (API key as the password). The poll
interval is 60 s; the demo and the end-to-end tests shorten it with the environment variable
`LEADPIPE_EXAMPLE_POKE_INTERVAL` (seconds), read when the DAG file is parsed.
"""

from __future__ import annotations

import os

import pendulum

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task

from airflow_provider_leadpipe.operators.account import LeadpipeAccountStatusOperator
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
from airflow_provider_leadpipe.sensors.account import LeadpipeAccountSensor

POKE_INTERVAL = float(os.environ.get("LEADPIPE_EXAMPLE_POKE_INTERVAL", "60"))


@dag(
    dag_id="leadpipe_credit_gated_pull",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"timeframe": "24h", "min_credits": 100, "output_dir": "/tmp/leadpipe-example"},
    tags=["leadpipe", "example"],
    doc_md=__doc__,
)
def leadpipe_credit_gated_pull():
    gate = LeadpipeAccountSensor(
        task_id="wait_for_credits",
        min_credits="{{ params.min_credits }}",
        poke_interval=POKE_INTERVAL,
        timeout=6 * 60 * 60,
        deferrable=True,
    )
    pull = LeadpipeVisitorsToStorageOperator(
        task_id="pull_visitors",
        path="{{ params.output_dir }}/visitors/{{ run_id | replace(':', '-') | replace('+', '_') }}.jsonl.gz",
        timeframe="{{ params.timeframe }}",
    )
    after = LeadpipeAccountStatusOperator(task_id="account_after_pull")

    @task
    def summary(before: dict, pulled: dict, after: dict) -> dict:
        """What the run did, in one XCom: records written, where, and the credits around it."""
        return {
            "records": pulled["records"],
            "pages": pulled["pages"],
            "path": pulled["path"],
            "credits_before": before["credits"]["remaining"],
            "credits_after": after["credits"]["remaining"],
        }

    gate >> pull >> after
    summary(gate.output, pull.output, after.output)


leadpipe_credit_gated_pull()
