"""``only_new`` visitor pulls in real Airflow runs (dag.test) against the API sandbox: two daily runs
whose windows overlap land each visitor once; a re-run of the first day lands its visitors again."""

from __future__ import annotations

import inspect
import json

import pendulum
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from tests.integration.dag_runs import DagFiles, api_records, task_states, xcom_value

pytestmark = pytest.mark.integration

DAG_ID = "leadpipe_visitors_only_new_it"
ASSET = "file:///warehouse/leadpipe/new-visitors"

DAG_SOURCE = f'''
from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG, Asset
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.datasets import Dataset as Asset

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

# Airflow 3.0's dag.test() refuses an outlet asset that no DAG processor has registered ("inactive").
OUTLETS = [] if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS else [Asset("{ASSET}")]

with DAG(
    "{DAG_ID}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1),
    catchup=False,
    params={{"timeframe": "24h", "out_dir": "/tmp"}},
) as dag:
    LeadpipeVisitorsToStorageOperator(
        task_id="pull_new_visitors",
        path="{{{{ params.out_dir }}}}/visitors/{{{{ ds }}}}.jsonl",
        timeframe="{{{{ params.timeframe }}}}",
        only_new=True,
        dedupe_keys=["email"],
        outlets=OUTLETS,
    )
'''


def run_of_day(dag, day: int, timeframe: str, out_dir) -> object:
    """The DAG run of 2026-03-<day>; its run id depends on the day only, as a cleared run keeps it."""
    when = pendulum.datetime(2026, 3, day, tz="UTC")
    # Airflow 3 names a dag.test() run after run_after (default: now); 2.x after the logical date.
    parameters = inspect.signature(dag.test).parameters
    after = {"run_after": when} if "run_after" in parameters else {}
    date = "logical_date" if "logical_date" in parameters else "execution_date"  # 2.x: execution_date
    return dag.test(**{date: when}, run_conf={"out_dir": str(out_dir), "timeframe": timeframe}, **after)


@pytest.fixture
def dag():
    dags = DagFiles()
    yield dags.load(DAG_ID, DAG_SOURCE)
    dags.remove()


def new_by_email(records: list[dict], landed: set[str]) -> tuple[list[dict], int, int]:
    """(records to land, repeats within the pull, landed before) by e-mail, as only_new decides."""
    kept: list[dict] = []
    mine: set[str] = set()
    repeats = before = 0
    for record in records:
        if record["email"] in mine:
            repeats += 1
        elif record["email"] in landed:
            before += 1
        else:
            mine.add(record["email"])
            kept.append(record)
    return kept, repeats, before


def test_overlapping_daily_windows_land_each_visitor_once(airflow_db, leadpipe_sandbox, dag, tmp_path):
    # 6,000 visits of 2,000 people over 180 days: 90 days repeat people within the pull.
    # The windows end at a frozen time: every pull and the test's own reads see the same records
    # (with the clock running, a visit 43 minutes apart from the next can leave a window mid-test).
    leadpipe_sandbox.update_key({"visitors": 6_000, "visitorsAsOf": pendulum.now("UTC").isoformat()})
    landed: set[str] = set()
    results = []
    first_run_id = None
    for day, timeframe in ((1, "90d"), (2, "all")):  # the second window holds the first
        run = run_of_day(dag, day, timeframe, tmp_path)
        assert run.state == "success", task_states(run)
        first_run_id = first_run_id or run.run_id
        result = xcom_value(run, "pull_new_visitors")
        kept, repeats, before = new_by_email(api_records(leadpipe_sandbox, timeframe=timeframe), landed)
        written = [json.loads(line) for line in (tmp_path / "visitors" / f"2026-03-0{day}.jsonl").open()]
        assert written == kept
        assert (result["records"], result["duplicates_skipped"], result["seen_before"]) == (
            len(kept),
            repeats,
            before,
        )
        landed |= {r["email"] for r in kept}
        assert result["state_size"] == len(landed)
        results.append(result)
    assert results[0]["duplicates_skipped"] > 0 and results[1]["seen_before"] > 0  # the case is real
    state = (tmp_path / "visitors" / results[1]["state_path"].rsplit("/", 1)[1]).read_bytes()
    assert not [email for email in landed if email.encode() in state]

    # Day 1 run again under its run id (as when cleared): it lands what it landed before, though
    # day 2 has run since.
    again = run_of_day(dag, 1, "90d", tmp_path)
    assert again.state == "success", task_states(again)
    assert again.run_id == first_run_id
    assert xcom_value(again, "pull_new_visitors")["records"] == results[0]["records"]

    # Every run's asset event carries its counts, for a DAG scheduled on the asset.
    if not AIRFLOW_V_3_1_PLUS:
        return  # 2.11's dag.test stores no dataset event; 3.0's has no outlet (unit tests check extra)
    extras = [event["extra"] for event in asset_events(ASSET)]
    assert extras == [
        {"path": r["path"], "records": r["records"], "duplicates_skipped": r["duplicates_skipped"]}
        for r in (*results, results[0])
    ]


def asset_events(uri: str) -> list[dict]:
    """The asset events of ``uri`` in the metadata database, oldest first."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.asset import AssetEvent, AssetModel
    except ImportError:  # Airflow 2.x
        from airflow.models.dataset import DatasetEvent as AssetEvent
        from airflow.models.dataset import DatasetModel as AssetModel

    key = "asset_id" if hasattr(AssetEvent, "asset_id") else "dataset_id"
    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra)
            .join(AssetModel, getattr(AssetEvent, key) == AssetModel.id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        ).all()
    return [{"extra": row.extra} for row in rows]
