"""Throughput of the Leadpipe API sandbox: requests per second over keep-alive loopback connections.

The sandbox runs in its own process (``LeadpipeSandbox``); this script is the client process.

    python bench/bench_sandbox.py                       # raw client, 64 connections, 5 s, account endpoint
    python bench/bench_sandbox.py --client httpx -c 8   # httpx.AsyncClient, as the provider's hook uses it
    python bench/bench_sandbox.py --client httpx -p 2   # two httpx client processes
    python bench/bench_sandbox.py --path "/v1/data?page=3" --min-rps 200
    python bench/bench_sandbox.py --orbit-people 100000 --min-rps 100   # Orbit results pages of 100
    python bench/bench_sandbox.py --url http://127.0.0.1:8765   # an already running sandbox

Two clients, because they measure different things. ``raw`` writes HTTP/1.1 requests on asyncio
streams and parses answers with httptools (both already in the sandbox's dependency tree); it costs
little CPU, so it measures the server. ``httpx`` costs ~0.5 ms of client CPU per request, so with
one client process it measures httpx more than the server - useful to see what a hook can get;
``--processes`` runs several client processes in step. Exit status 1 below ``--min-rps``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from multiprocessing import get_context
from urllib.parse import urlsplit

import httptools
import httpx

from leadpipe_sandbox import DEFAULT_API_KEY, LeadpipeSandbox


class _Answer:
    """httptools callback object: notes when a response is complete."""

    def __init__(self) -> None:
        self.complete = False

    def on_message_complete(self) -> None:
        self.complete = True


async def _raw_connection(url: str, path: str, api_key: str, stop_at: float, statuses: Counter[int]) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nX-API-Key: {api_key}\r\n\r\n".encode()
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            answer = _Answer()
            parser = httptools.HttpResponseParser(answer)
            while not answer.complete:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("the sandbox closed the connection")
                parser.feed_data(data)
            statuses[parser.get_status_code()] += 1
    finally:
        writer.close()


async def _httpx_worker(client: httpx.AsyncClient, path: str, stop_at: float, statuses: Counter[int]) -> None:
    while time.perf_counter() < stop_at:
        statuses[(await client.get(path)).status_code] += 1


async def measure(
    url: str, *, client: str, connections: int, seconds: float, path: str, api_key: str
) -> Counter[int]:
    """Run ``connections`` concurrent request loops for ``seconds``; count answers by status."""
    statuses: Counter[int] = Counter()
    stop_at = time.perf_counter() + seconds
    if client == "raw":
        await asyncio.gather(
            *(_raw_connection(url, path, api_key, stop_at, statuses) for _ in range(connections))
        )
        return statuses
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": api_key}, limits=limits, trust_env=False
    ) as http:
        await asyncio.gather(*(_httpx_worker(http, path, stop_at, statuses) for _ in range(connections)))
    return statuses


def client_process(
    url: str, client: str, connections: int, start_at: float, seconds: float, path: str, api_key: str
) -> tuple[Counter[int], float]:
    """One client process: warm up, wait for the common start (wall clock), measure; (statuses, elapsed)."""
    asyncio.run(measure(url, client=client, connections=connections, seconds=0.3, path=path, api_key=api_key))
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    statuses = asyncio.run(
        measure(url, client=client, connections=connections, seconds=seconds, path=path, api_key=api_key)
    )
    return statuses, time.perf_counter() - started


def _orbit_results_path(sandbox: LeadpipeSandbox, people: int, api_key: str) -> str:
    """A completed run with ``people`` people; the path of a page of 100 from its middle."""
    sandbox.set_intent({"audienceSlots": 1, "audienceSlotsUsed": 0}, api_key=api_key)
    audience = sandbox.create_audience("Benchmark", people=people, api_key=api_key)["id"]
    runs = f"/v1/intent/audiences/{audience}/runs"
    run = httpx.post(sandbox.url + runs, json={"runType": "manual"}, headers={"x-api-key": api_key})
    run.raise_for_status()
    return f"{runs}/{run.json()['data']['id']}/results?limit=100&offset={people // 2}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("-c", "--connections", type=int, default=64, help="in total, over all processes")
    parser.add_argument("-p", "--processes", type=int, default=1, help="client processes (default 1)")
    parser.add_argument("-s", "--seconds", type=float, default=5.0)
    parser.add_argument("--path", default="/v1/data/account")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument(
        "--orbit-people",
        type=int,
        help="benchmark an Orbit results page (limit 100, mid-run) of a completed run with this many people",
    )
    parser.add_argument("--url", help="benchmark this running sandbox instead of starting one")
    parser.add_argument("--min-rps", type=float, default=1000.0)
    args = parser.parse_args()

    per_process = max(1, args.connections // args.processes)
    with ExitStack() as stack:
        if args.url:
            url = args.url
        else:
            schedule = {"queued_polls": 0, "running_polls": 0}
            sandbox = stack.enter_context(LeadpipeSandbox(visitors=args.visitors, run_schedule=schedule))
            url = sandbox.url
            if args.orbit_people is not None:
                args.path = _orbit_results_path(sandbox, args.orbit_people, args.api_key)
        pool = stack.enter_context(ProcessPoolExecutor(args.processes, mp_context=get_context("spawn")))
        start_at = time.time() + 2.0 + 0.5 * args.processes  # time to spawn, import and warm up
        jobs = [
            pool.submit(
                client_process, url, args.client, per_process, start_at, args.seconds, args.path, args.api_key
            )
            for _ in range(args.processes)
        ]
        results = [job.result() for job in jobs]
    statuses = sum((counts for counts, _ in results), Counter())
    elapsed = max(seconds for _, seconds in results)
    total = sum(statuses.values())
    rate = total / elapsed
    print(
        f"{rate:,.0f} req/s  ({total:,} requests in {elapsed:.2f} s; client={args.client}, "
        f"processes={args.processes}, connections={per_process * args.processes}, path={args.path}, "
        f"statuses={dict(statuses)})"
    )
    if rate < args.min_rps:
        print(f"below --min-rps {args.min_rps:,.0f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
