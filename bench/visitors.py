"""Benchmark 5: visitor pulls, the visitors-to-storage operator vs a sequential page loop.

One process per case: ``python -m bench.visitors --impl operator --records 10000``. The sandbox
answers each ``GET /v1/data`` page ``--latency-ms`` late (a queued ``Fault.slow`` per page; default
50 ms, the low end of what real APIs take per page: a lower latency favours the sequential loop),
on top of its own ~1.5 ms per page. The operator runs with its
default settings, writing JSON Lines to a local file; the baseline is the loop a user would write
by hand: one keep-alive ``httpx.Client``, page after page, each page's records appended to a file.
Peak RSS is the process's high-water mark (``ru_maxrss``), Airflow and all.
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

CONN_ID = "bench_visitors"
PAGE_SIZE = 50


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def warm_up_object_storage(path: Path) -> None:
    """Airflow loads its plugins on the first ObjectStoragePath write (hook lineage, ~1 s here):
    a once-per-process cost, paid before timing so the figures are the pull's own."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    with ObjectStoragePath(f"file://{path}").open("wb") as out:
        out.write(b"")


def sequential(url: str, api_key: str, target: Path) -> int:
    """The hand-written baseline: one page at a time until an empty page or ``meta.total``."""
    records = 0
    client = httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=30)
    with client, target.open("wb") as out:
        page = 1
        while True:
            body = client.get("/v1/data", params={"page": page}).raise_for_status().json()
            rows = body["data"]
            if not rows:
                break
            out.write("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode())
            records += len(rows)
            if records >= body.get("meta", {}).get("total", float("inf")):
                break
            page += 1
    return records


def operator(target: Path) -> int:
    from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

    op = LeadpipeVisitorsToStorageOperator(
        task_id="bench_visitors", path=str(target), leadpipe_conn_id=CONN_ID
    )
    return int(op.execute(context={})["records"])  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("operator", "sequential"), required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    import airflow_provider_leadpipe.operators.visitors  # noqa: F401 -- same imports for both pulls
    from leadpipe_sandbox import Fault

    with api_sandbox(visitors=args.records) as sandbox, tempfile.TemporaryDirectory() as tmp:
        pages = -(-args.records // PAGE_SIZE)
        sandbox.queue_faults(Fault.slow(args.latency_ms / 1000, count=pages + 1, path="/v1/data"))
        api_key = sandbox.api_key
        conn = {"conn_type": "leadpipe", "host": sandbox.url, "password": api_key}
        with env_connections({CONN_ID: conn}):
            warm_up_object_storage(Path(tmp) / "warm-up")
            target = Path(tmp) / "visitors.jsonl"
            rss_before = current_rss_mb()
            started = time.perf_counter()
            records = (
                operator(target) if args.impl == "operator" else sequential(sandbox.url, api_key, target)
            )
            seconds = time.perf_counter() - started
            lines = sum(1 for _ in target.open("rb"))
    result: dict[str, Any] = {
        "bench": "visitors",
        "impl": args.impl,
        "records": args.records,
        "written": lines,
        "latency_ms": args.latency_ms,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }
    if records != args.records or lines != args.records:
        result["error"] = f"expected {args.records} records, got {records} ({lines} lines written)"
    emit(result)


if __name__ == "__main__":
    main()
