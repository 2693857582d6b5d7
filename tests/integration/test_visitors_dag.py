"""The visitor and pixel operators inside a real Airflow run (dag.test), over real HTTP.

Until the offline sandbox lands on main, the API is a small local HTTP server defined here.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import DAGS_FOLDER
from tests.integration.dag_runs import return_values

pytestmark = pytest.mark.integration

DAG_ID = "leadpipe_visitors_and_pixels_it"
PIXEL_ID = "0b7e2f5c-6d1a-4c3b-9e8f-112233445566"
RECORDS = [{"email": f"visitor{i}@example.com", "n": i} for i in range(1234)]

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
    params={{"domain": "acme.com", "timeframe": "7d", "out_dir": "/tmp"}},
) as dag:
    create = LeadpipeCreatePixelOperator(task_id="create_pixel", domain="{{{{ params.domain }}}}")
    pause = LeadpipeUpdatePixelOperator(
        task_id="pause_pixel",
        pixel_id="{{{{ ti.xcom_pull(task_ids='create_pixel')['id'] }}}}",
        status="paused",
    )
    pull = LeadpipeVisitorsToStorageOperator(
        task_id="pull_visitors",
        path="{{{{ params.out_dir }}}}/visitors/{{{{ ds_nodash }}}}.jsonl.gz",
        timeframe="{{{{ params.timeframe }}}}",
        domain="{{{{ params.domain }}}}",
    )
    create >> pause >> pull
'''


class _Api(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str, dict]]] = []
    records: ClassVar[list[dict]] = RECORDS
    #: page number -> HTTP statuses to answer (in turn) before serving the page
    faults: ClassVar[dict[int, list[int]]] = {}

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def _send(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        url = urlsplit(self.path)
        self.calls.append((self.command, url.path, {"query": parse_qs(url.query), "body": body}))
        return url, body

    def do_GET(self):
        url, _ = self._record()
        if url.path == "/v1/data":
            page = int(parse_qs(url.query)["page"][0])
            if self.faults.get(page):
                self._send(self.faults[page].pop(0), {"error": {"code": "HTTP_ERROR", "message": "fault"}})
                return
            data = self.records[(page - 1) * 50 : page * 50]
            self._send(200, {"data": data, "meta": {"total": len(self.records)}})
        elif url.path == "/v1/data/pixels":
            self._send(200, {"data": [{"id": PIXEL_ID, "domain": "acme.com", "status": "active"}]})
        else:
            self._send(404, {"error": {"code": "HTTP_ERROR", "message": "Not found"}})

    def do_POST(self):
        self._record()
        self._send(409, {"error": {"code": "HTTP_ERROR", "message": "Pixel already exists for this domain"}})

    def do_PATCH(self):
        _, body = self._record()
        self._send(200, {"data": {"id": PIXEL_ID, "domain": "acme.com", "status": body["status"]}})


@pytest.fixture
def api(monkeypatch):
    _Api.calls, _Api.records, _Api.faults = [], RECORDS, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = {"conn_type": "leadpipe", "host": f"http://127.0.0.1:{server.server_port}", "password": "sk_it"}
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", json.dumps(conn))
    yield _Api
    server.shutdown()
    server.server_close()


@pytest.fixture
def dag():
    """The DAG, from a file inside the DAG folder (dag.test() runs only DAGs that live there)."""
    path = DAGS_FOLDER / f"{DAG_ID}.py"
    path.write_text(DAG_SOURCE)
    spec = importlib.util.spec_from_file_location(DAG_ID, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.dag
    path.unlink()


def test_pixels_then_templated_pull_in_a_real_dag_run(airflow_db, api, dag, tmp_path):
    import pendulum
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
    from airflow.utils.state import DagRunState

    date_arg = "logical_date" if AIRFLOW_V_3_0_PLUS else "execution_date"  # renamed in Airflow 3
    run = dag.test(**{date_arg: pendulum.datetime(2026, 8, 1, tz="UTC")}, run_conf={"out_dir": str(tmp_path)})
    assert run.state == DagRunState.SUCCESS

    target = tmp_path / "visitors" / "20260801.jsonl.gz"
    values = return_values(run)
    assert values["pull_visitors"] == {"path": str(target), "records": 1234, "pages": 25}
    assert [json.loads(line) for line in gzip.decompress(target.read_bytes()).splitlines()] == RECORDS
    assert [p.name for p in target.parent.iterdir()] == [target.name], "no temporary file left"

    # create met a 409 and returned the listed pixel; pause used its id from XCom
    assert values["create_pixel"] == {"id": PIXEL_ID, "domain": "acme.com", "status": "active"}
    assert values["pause_pixel"] == {"id": PIXEL_ID, "domain": "acme.com", "status": "paused"}
    patch = [c for c in api.calls if c[0] == "PATCH"]
    assert patch == [("PATCH", f"/v1/data/pixels/{PIXEL_ID}", {"query": {}, "body": {"status": "paused"}})]
    pulls = [c[2]["query"] for c in api.calls if c[1] == "/v1/data"]
    assert all(q["timeframe"] == ["7d"] and q["domain"] == ["acme.com"] for q in pulls)


# -- the operator and the hook over real HTTP, outside a DAG run -----------------------------


def test_10000_records_arrive_record_by_record_and_sync_async_agree(api, tmp_path):
    import asyncio

    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
    from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

    api.records = [{"email": f"v{i}@example.com", "n": i, "tags": ["a", i % 7]} for i in range(10_000)]
    target = tmp_path / "v.jsonl"
    result = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(target), concurrency=4).execute({})
    assert result == {"path": str(target), "records": 10_000, "pages": 200}
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(written) == 10_000
    for index, (got, expected) in enumerate(zip(written, api.records, strict=True)):
        assert got == expected, f"record {index} differs"

    hook = LeadpipeHook()
    sync = list(hook.iter_visitors())

    async def collect():
        async with hook:
            return [r async for r in hook.aiter_visitors(concurrency=3)]

    assert sync == asyncio.run(collect()) == written


def test_503_mid_pull_is_retried_and_the_file_complete(api, tmp_path):
    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
    from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

    api.faults = {7: [503, 503]}
    op = LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(tmp_path / "v.jsonl.gz"))
    op.hook = LeadpipeHook(retry_backoff=0.01)
    assert op.execute({})["records"] == len(RECORDS)
    assert [
        json.loads(x) for x in gzip.decompress((tmp_path / "v.jsonl.gz").read_bytes()).splitlines()
    ] == RECORDS
    assert [c[2]["query"]["page"] for c in api.calls].count(["7"]) == 3


def test_auth_failure_mid_pull_leaves_no_file_and_no_temporary(api, tmp_path):
    from airflow_provider_leadpipe.exceptions import LeadpipeAuthError
    from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

    api.faults = {12: [401]}
    with pytest.raises(LeadpipeAuthError, match="HTTP 401"):
        LeadpipeVisitorsToStorageOperator(task_id="pull", path=str(tmp_path / "out" / "v.jsonl")).execute({})
    assert list((tmp_path / "out").iterdir()) == []
