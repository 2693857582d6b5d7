"""Land an Orbit audience's people each time Leadpipe completes a run of it (no cron).

Leadpipe refreshes an audience by itself (daily runs the API cannot create). This DAG is scheduled
on the asset `leadpipe://api.aws53.cloud/audiences/<id>`, whose watcher
(LeadpipeAudienceRunEventTrigger, in the triggerer) emits one asset event per run that newly
reaches `completed`:

1. `plan_landing` reads the new run ids from `triggering_asset_events` (the event's
   `extra["payload"]["run"]`: id, dataDate, resultCount; never people). Several runs completed
   before the DAG run started arrive together: each is landed. A run triggered by hand (no event)
   lands the audience's latest completed run.
2. `land_people` (LeadpipeAudienceResultsToStorageOperator, one mapped task per run) writes the
   run's people as gzipped JSON Lines to `params.output_dir` (any ObjectStoragePath), one file per
   run, named after the run id; the file appears only once complete.

The audience is `LEADPIPE_EXAMPLE_AUDIENCE_ID`, the watcher polls every
`LEADPIPE_EXAMPLE_WATCH_INTERVAL` seconds (default 300) and `params.output_dir` defaults to
`LEADPIPE_EXAMPLE_OUTPUT_DIR`; all are read when the file is parsed (the watcher's arguments must
be fixed values). Needs a `leadpipe` connection named
`leadpipe_default`. Minimum versions: Airflow 3.0 for asset watchers, 3.2.2 with several
triggerers, 3.3.2 for the watermark in the asset state store (docs/events-and-lineage.md). On
Airflow 2.x there are no watchers: the DAG has no schedule and lands the latest completed run when
triggered.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum

from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator
from airflow_provider_leadpipe.triggers.watchers import LeadpipeAudienceRunEventTrigger

try:
    from airflow.sdk import Asset, AssetWatcher, dag, task
except ImportError:  # Airflow 2.x: no asset watchers
    from airflow.decorators import dag, task

    Asset = AssetWatcher = None

AUDIENCE_ID = os.environ.get("LEADPIPE_EXAMPLE_AUDIENCE_ID", "3f2c0e1a-1111-4222-8333-944455556666")
WATCH_INTERVAL = float(os.environ.get("LEADPIPE_EXAMPLE_WATCH_INTERVAL", "300"))
OUTPUT_DIR = os.environ.get("LEADPIPE_EXAMPLE_OUTPUT_DIR", "/tmp/leadpipe-example/audience-runs")

if Asset is not None:
    #: The audience's completed runs; its watcher turns each new one into an asset event.
    audience_runs = Asset(
        f"leadpipe://api.aws53.cloud/audiences/{AUDIENCE_ID}",
        watchers=[
            AssetWatcher(
                name="leadpipe_audience_runs",
                trigger=LeadpipeAudienceRunEventTrigger(
                    audience_id=AUDIENCE_ID, poll_interval=WATCH_INTERVAL
                ),
            )
        ],
    )
    SCHEDULE: Any = [audience_runs]
else:
    audience_runs = None
    SCHEDULE = None


@dag(
    dag_id="leadpipe_audience_on_new_run",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"output_dir": OUTPUT_DIR},
    tags=["leadpipe", "orbit", "example", "event-driven"],
    doc_md=__doc__,
)
def leadpipe_audience_on_new_run():
    @task
    def plan_landing(triggering_asset_events: Any = None, params: Any = None) -> list[dict[str, Any]]:
        """One landing per new run from the watcher's events; the latest completed run without one."""
        events = triggering_asset_events[audience_runs] if triggering_asset_events and audience_runs else []
        run_ids = [event.extra["payload"]["run"]["id"] for event in events if event.extra.get("payload")]
        folder = f"{params['output_dir']}/{AUDIENCE_ID}"
        if not run_ids:
            return [{"audience_run_id": None, "path": f"{folder}/latest-completed.jsonl.gz"}]
        return [{"audience_run_id": run_id, "path": f"{folder}/{run_id}.jsonl.gz"} for run_id in run_ids]

    LeadpipeAudienceResultsToStorageOperator.partial(
        task_id="land_people", audience_id=AUDIENCE_ID
    ).expand_kwargs(plan_landing())


leadpipe_audience_on_new_run()
