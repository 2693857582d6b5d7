"""Shared measuring tools: loop-lag ticker, CPU/wall windows, the API server, result output."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_MARK = "BENCH-RESULT "


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class LoopLag:
    """A 10 ms ticker task; each tick records how much later than asked it woke up (seconds)."""

    def __init__(self, tick: float = 0.010) -> None:
        self.tick = tick
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._recording = False

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            start = clock()
            await asyncio.sleep(self.tick)
            if self._recording:
                self.samples.append(max(0.0, clock() - start - self.tick))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(self, on: bool = True) -> None:
        self._recording = on

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def summary(self) -> dict[str, float]:
        ms = [s * 1000 for s in self.samples]
        return {
            "lag_p50_ms": percentile(ms, 50),
            "lag_p99_ms": percentile(ms, 99),
            "lag_max_ms": max(ms, default=0.0),
        }


class GcPauses:
    """Durations of the garbage collector's runs (``gc.callbacks``), by generation, while recording."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0
        self._recording = False

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._recording:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def record(self, on: bool = True) -> None:
        self._recording = on

    def summary(self) -> dict[str, float]:
        return {
            "gc_total_ms": 1000 * sum(p for _, p in self.pauses),
            "gc_max_ms": 1000 * max((p for _, p in self.pauses), default=0.0),
            "gc_full_runs": sum(1 for g, _ in self.pauses if g == 2),
        }


@dataclass
class Window:
    """Wall clock and this process's CPU time (all threads) between start() and stop()."""

    wall: float = 0.0
    cpu: float = 0.0
    _t: tuple[float, float] = field(default=(0.0, 0.0), repr=False)

    def start(self) -> Window:
        self._t = (time.perf_counter(), time.process_time())
        return self

    def stop(self) -> Window:
        self.wall = time.perf_counter() - self._t[0]
        self.cpu = time.process_time() - self._t[1]
        return self


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def api_sandbox(**options: Any) -> Any:
    """The provider's API sandbox (``LeadpipeSandbox``), which serves from its own process."""
    from leadpipe_sandbox import LeadpipeSandbox

    return LeadpipeSandbox(**options)


def request_total(sandbox: Any) -> int:
    """Data API requests the sandbox has answered so far (control calls are not counted)."""
    return int(sandbox.stats()["total"])


def emit(result: dict[str, Any]) -> None:
    """Print one scenario's result as a marked JSON line for ``bench/run.py``."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def run_child(
    module: str, args: Iterable[str], timeout: float = 600, root: Path = ROOT
) -> list[dict[str, Any]]:
    """Run ``python -m bench.<module> args`` in a fresh process; return the results it emitted.

    ``root`` is the directory the child imports ``airflow_provider_leadpipe`` and ``bench`` from
    (another checkout: see ``--compare`` in bench/run.py)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results = [
        json.loads(line[len(RESULT_MARK) :])
        for line in proc.stdout.splitlines()
        if line.startswith(RESULT_MARK)
    ]
    if proc.returncode != 0 or not results:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"bench.{module} {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return results


@contextmanager
def env_connections(connections: dict[str, dict[str, Any]]):
    """Airflow connections as ``AIRFLOW_CONN_*`` environment variables (checked before any DB)."""
    names = [f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in connections]
    for name, conn in zip(names, connections.values(), strict=True):
        os.environ[name] = json.dumps(conn)
    try:
        yield
    finally:
        for name in names:
            os.environ.pop(name, None)


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()  # noqa: E731
    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)
