"""The visitor and pixel operators inside a real Airflow run (dag.test), against the API sandbox."""

from __future__ import annotations

import gzip
import json

import httpx
import pendulum
import pytest

from tests.integration.dag_runs import NO_LOGICAL_DATE, DagFiles, api_records, task_states, xcom_value

pytestmark = pytest.mark.integration

DAG_ID = "leadpipe_visitors_and_pixels_it"
VISITORS = "/v1/data"
#: The organisation's pixel on the pulled domain: the DAG's create task meets a 409.
PIXEL = {"domain": "acme.io", "name": "Acme", "status": "active"}

DAG_SOURCE = f'''
from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.pixels import (
    LeadpipeCreatePixelOperator,
    LeadpipeUpdatePixelOperator,
)
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

with DAG(
    "{DAG_ID}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1),
    catchup=False,
    params={{"domain": "acme.io", "timeframe": "7d", "out_dir": "/tmp"}},
) as dag:
    create = LeadpipeCreatePixelOperator(task_id="create_pixel", domain="{{{{ params.domain }}}}")
    pause = LeadpipeUpdatePixelOperator(
        task_id="pause_pixel",
        pixel_id="{{{{ ti.xcom_pull(task_ids='create_pixel')['id'] }}}}",
        status="paused",
    )
    pull = LeadpipeVisitorsToStorageOperator(
        task_id="pull_visitors",
        # Named after the run: runs triggered through the API have no logical date (no ds_nodash).
        path="{{{{ params.out_dir }}}}/visitors/"
        "{{{{ run_id | replace(':', '-') | replace('+', '_') }}}}.jsonl.gz",
        timeframe="{{{{ params.timeframe }}}}",
        domain="{{{{ params.domain }}}}",
    )
    create >> pause >> pull
'''


@pytest.fixture
def dag():
    dags = DagFiles()
    yield dags.load(DAG_ID, DAG_SOURCE)
    dags.remove()


def listed_pixels(sandbox) -> list[dict]:
    """``GET /v1/data/pixels`` over plain HTTP, independent of the provider."""
    response = httpx.get(f"{sandbox.url}/v1/data/pixels", headers={"X-API-Key": sandbox.api_key})
    response.raise_for_status()
    return response.json()["data"]


def test_pixels_then_templated_pull_in_a_real_dag_run(airflow_db, leadpipe_sandbox, dag, tmp_path):
    # 20,000 visitors over 180 days: a week on one of three sites is a few pages.
    leadpipe_sandbox.update_key({"visitors": 20_000, "pixels": [PIXEL]})
    [existing] = listed_pixels(leadpipe_sandbox)

    run = dag.test(run_conf={"out_dir": str(tmp_path)}, **NO_LOGICAL_DATE)

    assert run.state == "success", task_states(run)
    if NO_LOGICAL_DATE:
        assert run.logical_date is None  # the output path is named after the run, not its date

    # create met a 409 and returned the listed pixel; pause used its id from XCom
    assert xcom_value(run, "create_pixel") == existing
    assert leadpipe_sandbox.request_count("/v1/data/pixels", method="POST", status=409) == 1
    paused = xcom_value(run, "pause_pixel")
    assert (paused["id"], paused["status"]) == (existing["id"], "paused")
    [after] = listed_pixels(leadpipe_sandbox)  # still one pixel, now paused by hand
    assert (after["id"], after["status"], after["pausedReason"]) == (existing["id"], "paused", "manual")
    assert leadpipe_sandbox.request_count("/v1/data/pixels/{id}", method="PATCH", status=200) == 1

    run_file = run.run_id.replace(":", "-").replace("+", "_") + ".jsonl.gz"
    target = tmp_path / "visitors" / run_file
    pulled = xcom_value(run, "pull_visitors")
    assert pulled["path"] == str(target)
    assert leadpipe_sandbox.request_count(VISITORS, status=200) == pulled["pages"]
    assert [p.name for p in target.parent.iterdir()] == [run_file], "no temporary file left"
    written = [json.loads(line) for line in gzip.decompress(target.read_bytes()).splitlines()]
    # Both filters reached the API: one site, the last week, and exactly what the API serves for them.
    week_ago = pendulum.now("UTC").subtract(days=7, minutes=5)
    assert {r["visit"]["domain"] for r in written} == {"acme.io"}
    assert all(pendulum.parse(r["visit"]["visitedAt"]) >= week_ago for r in written)
    assert written == api_records(leadpipe_sandbox, timeframe="7d", domain="acme.io")
    assert pulled["records"] == len(written) and 100 < len(written) < 20_000 * 7 // 180
    assert pulled["pages"] == -(-len(written) // 50)


# -- the operator and the hook over real HTTP, outside a DAG run -----------------------------


def test_10000_records_arrive_record_by_record_and_sync_async_agree(leadpipe_sandbox, tmp_path):
    import asyncio

    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
    from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

    leadpipe_sandbox.update_key({"visitors": 10_000})
    target = tmp_path / "v.jsonl"
    result = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(target), concurrency=4).execute({})
    assert result == {"path": str(target), "records": 10_000, "pages": 200, "expected_records": 10_000}
    written = [json.loads(line) for line in target.read_text().splitlines()]
    expected = api_records(leadpipe_sandbox)
    assert len(written) == len(expected) == 10_000
    assert len({r["id"] for r in written}) == 10_000
    for index, (got, want) in enumerate(zip(written, expected, strict=True)):
        assert got == want, f"record {index} differs"

    hook = LeadpipeHook()
    sync = list(hook.iter_visitors())

    async def collect():
        async with hook:
            return [r async for r in hook.aiter_visitors(concurrency=3)]

    assert sync == asyncio.run(collect()) == written


def _fault_after(sandbox, requests: int, fault) -> None:
    """Let ``requests`` visitor pages through untouched, then inject ``fault`` (mid-pull)."""
    from leadpipe_sandbox import Fault

    sandbox.queue_faults(Fault.slow(0.001, count=requests, path=VISITORS), fault)


def test_503_mid_pull_is_retried_and_the_file_complete(leadpipe_sandbox, tmp_path):
    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
    from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
    from leadpipe_sandbox import Fault

    _fault_after(leadpipe_sandbox, 6, Fault.unavailable(2, path=VISITORS))
    target = tmp_path / "v.jsonl.gz"
    op = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(target))
    op.hook = LeadpipeHook(retry_backoff=0.01)

    assert op.execute({}) == {"path": str(target), "records": 1000, "pages": 20, "expected_records": 1000}
    assert leadpipe_sandbox.request_count(VISITORS, status=503) == 2
    assert leadpipe_sandbox.request_count(VISITORS, status=200) == 20  # each page once in the end
    assert leadpipe_sandbox.key_state()["pendingFaults"] == []
    assert [json.loads(x) for x in gzip.decompress(target.read_bytes()).splitlines()] == api_records(
        leadpipe_sandbox
    )


def test_auth_failure_mid_pull_leaves_no_file_and_no_temporary(leadpipe_sandbox, tmp_path):
    from airflow_provider_leadpipe.exceptions import LeadpipeAuthError
    from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
    from leadpipe_sandbox import Fault

    _fault_after(leadpipe_sandbox, 11, Fault.error(401, message="Invalid API key", path=VISITORS))
    with pytest.raises(LeadpipeAuthError, match="HTTP 401"):
        LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(tmp_path / "out" / "v.jsonl")).execute({})
    assert leadpipe_sandbox.request_count(VISITORS, status=200) >= 11  # it failed mid-pull
    assert leadpipe_sandbox.request_count(VISITORS, status=401) == 1  # and at once, no retry
    assert list((tmp_path / "out").iterdir()) == []


# -- text UTF-8 cannot carry, short pulls and object stores, in a real DAG run -------------------

DATA_DAG_ID = "leadpipe_visitors_data_it"
DATA_DAG_SOURCE = f'''
from __future__ import annotations

import pendulum

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG

from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

with DAG("{DATA_DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    broken_text = LeadpipeVisitorsToStorageOperator(
        task_id="broken_text", path="memory://bucket/{{{{ run_id | replace(':', '-') }}}}/text.jsonl.gz"
    )
    short = LeadpipeVisitorsToStorageOperator(
        task_id="short", path="memory://bucket/short.jsonl", concurrency=1, on_incomplete="fail"
    )
    broken_text >> short
'''


@pytest.fixture
def data_dag():
    dags = DagFiles()
    yield dags.load(DATA_DAG_ID, DATA_DAG_SOURCE)
    dags.remove()


def test_broken_text_is_written_and_a_short_pull_fails_in_a_dag_run(
    airflow_db, leadpipe_sandbox, data_dag, memory_store, capsys, caplog
):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from leadpipe_sandbox import Fault

    # A name cut mid-emoji by a JavaScript API: valid JSON, no UTF-8 form.
    records = [{"id": "1", "firstName": "Zoë \ud83d"}, {"id": "2", "lastName": "\ude00"}]
    leadpipe_sandbox.queue_faults(
        Fault.wrong_shape(body={"data": records, "meta": {"total": 2}}, path=VISITORS),
        # then the second task: four real pages of the announced 1000, and an empty page
        Fault.slow(0.001, count=4, path=VISITORS),
        Fault.wrong_shape(body={"data": [], "meta": {"total": 1000}}, path=VISITORS),
    )

    run = data_dag.test(**NO_LOGICAL_DATE)

    assert task_states(run) == {"broken_text": "success", "short": "failed"}
    pulled = xcom_value(run, "broken_text")
    assert (pulled["records"], pulled["expected_records"]) == (2, 2)
    text = gzip.decompress(ObjectStoragePath(pulled["path"]).read_bytes()).decode("utf-8")
    assert [json.loads(line) for line in text.splitlines()] == records
    assert leadpipe_sandbox.key_state()["pendingFaults"] == []
    assert not ObjectStoragePath("memory://bucket/short.jsonl").exists(), "a short pull writes nothing"
    assert [p for p in memory_store.find("/bucket") if p.endswith(".tmp")] == []
    logged = capsys.readouterr().out + caplog.text
    assert "LeadpipeIncompleteError" in logged
    assert "announced 1000 visitor records but the pull returned 200" in logged
