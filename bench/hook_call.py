"""Benchmark 3: ``LeadpipeHook.get_account_status()`` in a loop vs a raw keep-alive ``httpx.Client``.

The baseline is the least a caller can do: ``client.get("/v1/data/account").json()`` on one open
client. The hook adds the connection's settings, retries, error classification and a validated
``AccountStatus``. Rounds alternate between the two so drift on a busy machine hits both; the
result is the median of the per-round ratios. The async pair (``aget_account_status()`` vs a raw
``httpx.AsyncClient``) is measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.harness import api_sandbox, emit, env_connections

PATH = "/v1/data/account"


def timed(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


async def atimed(fn: Callable[[], Awaitable[Any]], calls: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


#: Per round: ((hook wall, hook CPU), (raw wall, raw CPU)), seconds per call.
Rounds = list[tuple[tuple[float, float], tuple[float, float]]]


def summarize(kind: str, rounds: Rounds) -> dict[str, Any]:
    hook_wall = statistics.median(h[0] for h, _ in rounds)
    raw_wall = statistics.median(r[0] for _, r in rounds)
    return {
        "bench": "hook_call",
        "kind": kind,
        "hook_us": 1e6 * hook_wall,
        "raw_us": 1e6 * raw_wall,
        "ratio": statistics.median(h[0] / r[0] for h, r in rounds),
        "hook_cpu_us": 1e6 * statistics.median(h[1] for h, _ in rounds),
        "raw_cpu_us": 1e6 * statistics.median(r[1] for _, r in rounds),
        "cpu_ratio": statistics.median(h[1] / r[1] for h, r in rounds),
    }


def sync_rounds(url: str, api_key: str, rounds: int, calls: int) -> Rounds:
    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook

    hook = LeadpipeHook("bench_hook")
    raw = httpx.Client(base_url=url, headers={"X-API-Key": api_key})
    timed(hook.get_account_status, 50)
    timed(lambda: raw.get(PATH).json(), 50)
    out = []
    for _ in range(rounds):
        h = timed(hook.get_account_status, calls)
        r = timed(lambda: raw.get(PATH).json(), calls)
        out.append((h, r))
    hook.close()
    raw.close()
    return out


async def async_rounds(url: str, api_key: str, rounds: int, calls: int) -> Rounds:
    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook

    hook = LeadpipeHook("bench_hook")
    raw = httpx.AsyncClient(base_url=url, headers={"X-API-Key": api_key})

    async def raw_call() -> Any:
        return (await raw.get(PATH)).json()

    await atimed(hook.aget_account_status, 50)
    await atimed(raw_call, 50)
    out = []
    for _ in range(rounds):
        h = await atimed(hook.aget_account_status, calls)
        r = await atimed(raw_call, calls)
        out.append((h, r))
    await hook.aclose()
    await raw.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    with api_sandbox() as sandbox:
        conn = {"conn_type": "leadpipe", "host": sandbox.url, "password": sandbox.api_key}
        with env_connections({"bench_hook": conn}):
            emit(summarize("sync", sync_rounds(sandbox.url, sandbox.api_key, args.rounds, args.calls)))
            rounds = asyncio.run(async_rounds(sandbox.url, sandbox.api_key, args.rounds, args.calls))
            emit(summarize("async", rounds))


if __name__ == "__main__":
    main()
