"""Daily Orbit intent audience: keep the audience active, run it, land its people in storage.

1. `upsert_audience` (LeadpipeUpsertAudienceOperator): finds the audience `params.audience_name`,
   creates it when missing, sets its config and makes it `active` (an active audience uses one of
   the account's audience slots; without a free slot the task fails at once).
2. `run_audience` (LeadpipeRunAudienceOperator, deferrable): queues a manual run with an
   idempotency key built from the task instance (a retry gets the same run, never a second one),
   pushes its id to XCom key `audience_run_id`, checks it once, then waits in the triggerer without
   holding a worker slot. A failed run fails the task with Orbit's `errorCode`.
3. `land_people` (LeadpipeAudienceResultsToStorageOperator): writes the run's people as gzipped
   JSON Lines to `params.output_dir` (any ObjectStoragePath: a local folder, `s3://bucket/prefix`,
   ...). The file appears only once complete. People are personal data: they go to the file only.
4. `summary` reads the XCom of the run and the landing: how many people, which data date, where.

The output file is named after the run id, so runs triggered through the REST API (no logical
date) work too. Needs a `leadpipe` connection named `leadpipe_default` (API key as the password).
The run is checked every 30 s; the demo shortens it with `LEADPIPE_EXAMPLE_POLL_INTERVAL`
(seconds), read when the DAG file is parsed.
"""

from __future__ import annotations

import os

import pendulum

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task

from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator
from airflow_provider_leadpipe.operators.audiences import (
    LeadpipeRunAudienceOperator,
    LeadpipeUpsertAudienceOperator,
)

POLL_INTERVAL = float(os.environ.get("LEADPIPE_EXAMPLE_POLL_INTERVAL", "30"))

#: The Orbit config, passed through as it is: intent topics, a score floor, catalog filters.
AUDIENCE_CONFIG = {
    "topicIds": [101, 202, 303],
    "minScore": 70,
    "minTopicOverlap": 1,
    "filters": {
        "role.seniority": {"values": ["VP", "Director", "C-Level"]},
        "contact.hasBusinessEmail": True,
    },
}


@dag(
    dag_id="leadpipe_intent_audience_daily",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"audience_name": "Fintech decision makers", "output_dir": "/tmp/leadpipe-example"},
    tags=["leadpipe", "orbit", "example"],
    doc_md=__doc__,
)
def leadpipe_intent_audience_daily():
    upsert = LeadpipeUpsertAudienceOperator(
        task_id="upsert_audience",
        name="{{ params.audience_name }}",
        config=AUDIENCE_CONFIG,
        status="active",
    )
    run = LeadpipeRunAudienceOperator(
        task_id="run_audience",
        audience_id="{{ ti.xcom_pull(task_ids='upsert_audience')['id'] }}",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=60 * 60,
    )
    land = LeadpipeAudienceResultsToStorageOperator(
        task_id="land_people",
        audience_id="{{ ti.xcom_pull(task_ids='upsert_audience')['id'] }}",
        audience_run_id="{{ ti.xcom_pull(task_ids='run_audience', key='audience_run_id') }}",
        path="{{ params.output_dir }}/orbit/{{ run_id | replace(':', '-') | replace('+', '_') }}.jsonl.gz",
    )

    @task
    def summary(run: dict, landed: dict) -> dict:
        """What the run produced, in one XCom (counts and places; no people)."""
        return {
            "audience_run_id": landed["audience_run_id"],
            "data_date": landed["data_date"],
            "people": landed["records"],
            "result_count": run["resultCount"],
            "path": landed["path"],
        }

    upsert >> run >> land
    summary(run.output, land.output)


leadpipe_intent_audience_daily()
