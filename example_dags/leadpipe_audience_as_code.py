"""An Orbit audience kept as code: a YAML file next to this DAG, checked, upserted and run daily.

`audiences/high_intent_crm.yaml` (in the DAGs folder, beside this file) holds the audience: its
name, status, topic names, size bounds and Orbit config. The file is read when the DAG is parsed
(`read_audience_file`: not valid YAML, an unknown key or a bad value is an import error naming the
file); an edit takes effect at the next parse, and a CI job checks the same folder against Orbit
first with `python -m airflow_provider_leadpipe.hooks.config_files <dags folder>/audiences`.

1. `upsert_audience` (LeadpipeUpsertAudienceOperator): resolves the topic names to ids, validates
   the config with Orbit (an invalid key or value fails the task before anything is created or
   changed), previews it and refuses to make the audience active when its size is outside
   `min_audience_size` / `max_audience_size`, then creates or updates the audience, or sends
   nothing when it already has this config (XCom `"upsert": "unchanged"`).
2. `run_audience` (LeadpipeRunAudienceOperator, deferrable): queues a manual run (idempotently)
   and waits for it in the triggerer.
3. `land_people` (LeadpipeAudienceResultsToStorageOperator): writes the run's people as gzipped JSON
   Lines to `params.output_dir` (any ObjectStoragePath). People are personal data: they go to the
   file only, never to XCom or the logs.

Needs a `leadpipe` connection named `leadpipe_default`. The run is checked every 30 s;
`LEADPIPE_EXAMPLE_POLL_INTERVAL` (seconds, read when the file is parsed) changes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum

try:
    from airflow.sdk import dag
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag

from airflow_provider_leadpipe.hooks.config_files import read_audience_file
from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator
from airflow_provider_leadpipe.operators.audiences import (
    LeadpipeRunAudienceOperator,
    LeadpipeUpsertAudienceOperator,
)

POLL_INTERVAL = float(os.environ.get("LEADPIPE_EXAMPLE_POLL_INTERVAL", "30"))
#: Beside this file, wherever the DAGs folder is.
AUDIENCE_FILE = Path(__file__).resolve().parent / "audiences" / "high_intent_crm.yaml"
AUDIENCE = read_audience_file(AUDIENCE_FILE)


@dag(
    dag_id="leadpipe_audience_as_code",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"output_dir": "/tmp/leadpipe-example"},
    tags=["leadpipe", "orbit", "example"],
    doc_md=__doc__,
)
def leadpipe_audience_as_code():
    upsert = LeadpipeUpsertAudienceOperator(task_id="upsert_audience", **AUDIENCE.upsert_arguments())
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
        path="{{ params.output_dir }}/audience-as-code/"
        "{{ run_id | replace(':', '-') | replace('+', '_') }}.jsonl.gz",
    )
    upsert >> run >> land


leadpipe_audience_as_code()
