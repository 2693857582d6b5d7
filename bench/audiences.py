"""Benchmark 6: Orbit audience pulls — the results-to-storage operator vs a sequential page loop,
and ``export.csv`` streamed by the operator vs read whole.

One process per case: ``python -m bench.audiences --impl operator --people 10000``. The sandbox
holds one audience with ``--people`` people and one completed run. For the results pulls it
answers each results page ``--latency-ms`` late (a queued ``Fault.slow`` per page; default 50 ms),
100 people per page. ``operator`` is ``LeadpipeAudienceResultsToStorageOperator`` with its default
settings (4 pages in flight) writing JSON Lines to a local file; ``sequential`` is the loop a user
would write by hand: one keep-alive ``httpx.Client``, page after page (``limit``/``offset``),
appended to a file. ``export`` is the operator with ``method="export"`` (the API's CSV streamed to
the file); ``export-whole`` is the naive baseline that reads the response into memory and writes
it. Peak RSS is the process's high-water mark (``ru_maxrss``), Airflow and all.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import api_sandbox, emit, env_connections, peak_rss_mb
from bench.visitors import current_rss_mb, warm_up_object_storage

CONN_ID = "bench_audiences"
PAGE_SIZE = 100
ORBIT = "/v1/intent/audiences"
IMPLS = ("operator", "sequential", "export", "export-whole")


def sequential(url: str, api_key: str, audience_id: str, run_id: str, target: Path) -> int:
    """The hand-written baseline: one page at a time until ``total`` or an empty page."""
    people = 0
    client = httpx.Client(base_url=url, headers={"x-api-key": api_key}, timeout=30)
    with client, target.open("wb") as out:
        while True:
            response = client.get(
                f"{ORBIT}/{audience_id}/runs/{run_id}/results", params={"limit": PAGE_SIZE, "offset": people}
            )
            data = response.raise_for_status().json()["data"]
            rows = data["results"]
            if not rows:
                break
            out.write("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode())
            people += len(rows)
            if people >= data["total"]:
                break
    return people


def export_whole(url: str, api_key: str, audience_id: str, run_id: str, target: Path) -> int:
    """The naive export baseline: the whole CSV in memory, then written."""
    response = httpx.get(
        f"{url}{ORBIT}/{audience_id}/runs/{run_id}/export.csv", headers={"x-api-key": api_key}, timeout=300
    )
    body = response.raise_for_status().content
    target.write_bytes(body)
    return body.count(b"\n") - 1


def operator(audience_id: str, run_id: str, target: Path, method: str) -> int:
    from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator

    op = LeadpipeAudienceResultsToStorageOperator(
        task_id="bench_audiences",
        audience_id=audience_id,
        audience_run_id=run_id,
        path=str(target),
        leadpipe_conn_id=CONN_ID,
        method=method,
        format="csv" if method == "export" else "jsonl",
    )
    return int(op.execute(context={})["records"])  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=IMPLS, required=True)
    parser.add_argument("--people", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    import airflow_provider_leadpipe.operators.audiences  # noqa: F401 -- same imports for every case
    from leadpipe_sandbox import Fault

    with api_sandbox() as sandbox, tempfile.TemporaryDirectory() as tmp:
        audience = sandbox.create_audience("Bench audience", people=args.people)
        run = sandbox.add_daily_run(audience["id"])
        sandbox.set_export_row_cap(max(args.people, 300_000))
        results_path = f"{ORBIT}/*/runs/*/results"  # a fault glob
        latency = 0.0
        if args.impl in ("operator", "sequential"):
            latency = args.latency_ms
            pages = -(-args.people // PAGE_SIZE)
            sandbox.queue_faults(Fault.slow(latency / 1000, count=pages + 2, path=results_path))
        api_key = sandbox.api_key
        conn = {"conn_type": "leadpipe", "host": sandbox.url, "password": api_key}
        with env_connections({CONN_ID: conn}):
            warm_up_object_storage(Path(tmp) / "warm-up")
            target = Path(tmp) / ("people.csv" if args.impl.startswith("export") else "people.jsonl")
            rss_before = current_rss_mb()
            started = time.perf_counter()
            if args.impl == "operator":
                people = operator(audience["id"], run["id"], target, "results")
            elif args.impl == "export":
                people = operator(audience["id"], run["id"], target, "export")
            elif args.impl == "sequential":
                people = sequential(sandbox.url, api_key, audience["id"], run["id"], target)
            else:
                people = export_whole(sandbox.url, api_key, audience["id"], run["id"], target)
            seconds = time.perf_counter() - started
            lines = sum(1 for _ in target.open("rb")) - (1 if args.impl.startswith("export") else 0)
    result: dict[str, Any] = {
        "bench": "audiences",
        "impl": args.impl,
        "people": args.people,
        "written": lines,
        "latency_ms": latency,
        "seconds": seconds,
        "people_per_s": people / seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }
    if people != args.people or lines != args.people:
        result["error"] = f"expected {args.people} people, got {people} ({lines} rows written)"
    emit(result)


if __name__ == "__main__":
    main()
