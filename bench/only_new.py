"""Benchmark 7: ``only_new`` visitor pulls against a state of 10k-1M remembered fingerprints.

One process per case: ``python -m bench.only_new --impl only_new --remembered 1000000``. Each case
pulls ``--records`` visitors from the sandbox (no added latency) with the visitors-to-storage
operator to a local file: ``plain`` without ``only_new``, ``only_new`` against a state object
that already remembers ``--remembered`` fingerprints (written through the provider's own state
code, in a child process, before timing; none of them matches, so every record is written and
the state grows).
Peak RSS is the process's high-water mark (``ru_maxrss``), Airflow and all; ``state MB`` is the
state object's size after the pull.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.harness import api_sandbox, emit, env_connections, peak_rss_mb
from bench.visitors import current_rss_mb, warm_up_object_storage

CONN_ID = "bench_only_new"


def seed_state(folder: Path, context: dict[str, Any], remembered: int) -> None:
    """A state beside the target remembering ``remembered`` random fingerprints (an earlier run)."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_leadpipe.utils import seen

    target = ObjectStoragePath(f"file://{folder}/visitors.jsonl")
    state = seen.SeenState.open(seen.default_state_path(target, seen.task_key(context)), None, "seed")
    blob = os.urandom(remembered * seen.FINGERPRINT)
    state.new = {blob[i : i + seen.FINGERPRINT] for i in range(0, len(blob), seen.FINGERPRINT)}
    del blob
    state.prepare(target.with_name("seed.jsonl"), "0" * 64)
    state.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("plain", "only_new", "seed"), required=True)
    parser.add_argument("--folder", help="with --impl seed: where to write the state")
    parser.add_argument("--remembered", type=int, default=0)
    parser.add_argument("--records", type=int, default=10000)
    args = parser.parse_args()
    ti = SimpleNamespace(dag_id="bench", task_id="pull", run_id="today", map_index=-1)
    context: dict[str, Any] = {"ti": ti, "run_id": "today"}
    if args.impl == "seed":  # a child of a case: its memory is not the case's
        seed_state(Path(args.folder), context, args.remembered)
        return
    from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

    with api_sandbox(visitors=args.records) as sandbox, tempfile.TemporaryDirectory() as tmp:
        conn = {"conn_type": "leadpipe", "host": sandbox.url, "password": sandbox.api_key}
        with env_connections({CONN_ID: conn}):
            warm_up_object_storage(Path(tmp) / "warm-up")
            if args.impl == "only_new":
                seed = ["--impl", "seed", "--folder", tmp, "--remembered", str(args.remembered)]
                subprocess.run([sys.executable, "-m", "bench.only_new", *seed], check=True)
            target = Path(tmp) / "visitors.jsonl"
            rss_before = current_rss_mb()
            started = time.perf_counter()
            op = LeadpipeVisitorsToStorageOperator(
                task_id="pull", path=str(target), leadpipe_conn_id=CONN_ID, only_new=args.impl == "only_new"
            )
            result = op.execute(context=context)  # type: ignore[arg-type]
            seconds = time.perf_counter() - started
            lines = sum(1 for _ in target.open("rb"))
            state = sum(p.stat().st_size for p in Path(tmp).glob(".leadpipe-only-new.*.state"))
    out: dict[str, Any] = {
        "bench": "only_new",
        "impl": args.impl,
        "remembered": args.remembered if args.impl == "only_new" else 0,
        "records": args.records,
        "written": lines,
        "seconds": seconds,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "state_mb": state / 2**20,
        "state_size": result.get("state_size", 0),
    }
    if lines != args.records:
        out["error"] = f"expected {args.records} records written, got {lines}"
    emit(out)


if __name__ == "__main__":
    main()
