"""Benchmarks 1 and 2: N triggers in one asyncio event loop, as the triggerer runs them.

One process per case: ``python -m bench.triggerer --impl leadpipe --n 1000 --conns 1``.
The API server runs in its own process, so CPU time measured here is the client's alone.

Each trigger is driven like Airflow's TriggerRunner drives it (``async for event in trigger.run()``
in its own task); start times are spread evenly over the first interval (``--spread 1``, the
default), or all started in one pass (``--spread 0``) as Airflow's triggerer creates the triggers
handed to it since its last loop iteration (``TriggerRunner.create_triggers``: one after the
other, yielding to the event loop between two). After a warm-up, two windows of ``--duration``
seconds are measured. In the first, the triggers run alone in the loop (no loop-lag ticker): its
process CPU per evaluation is the "alone" figure. The second measures per-trigger evaluation
timestamps, process CPU again ("raw"; "net" subtracts the ticker), a 10 ms loop-lag ticker, and
the server's request count. Then, for implementations with a condition, the account changes and
the time until every trigger has fired its event is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import httpx

from bench.harness import (
    GcPauses,
    LoopLag,
    Window,
    api_sandbox,
    emit,
    env_connections,
    percentile,
    request_total,
)

clock = time.perf_counter


class Impl:
    """One way of waiting on the account; subclasses build the N waiters and count evaluations."""

    has_condition = True
    #: Sandbox configuration of every connection's API key (a healthy trial account by default).
    key_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, n: int, conns: int, interval: float, url: str) -> None:
        self.n, self.conns, self.interval, self.url = n, conns, interval, url
        self.stamps: list[list[float]] = [[] for _ in range(n)]

    def conn_id(self, i: int) -> str:
        return f"bench_{i % self.conns}"

    def api_key(self, i: int) -> str:
        return f"sk_bench_{i % self.conns:05d}"

    def prepare(self, sandbox: Any) -> None:
        """One sandbox organisation per connection."""
        for c in range(self.conns):
            sandbox.configure_key(self.api_key(c), self.key_config)

    def change(self, sandbox: Any) -> None:
        """Make every trigger's condition true (implementations with a condition)."""

    def connections(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def install(self) -> None:
        """Patch counting instrumentation in (never changes what the code under test does)."""

    def run(self, i: int) -> AsyncIterator[Any]:
        raise NotImplementedError


class HttpSensorImpl(Impl):
    """``HttpSensorTrigger`` from apache-airflow-providers-http, polling a URL that answers 404.

    An evaluation is one completed poll (``HttpAsyncHook.run`` returning or raising).
    """

    has_condition = False

    def connections(self) -> dict[str, dict[str, Any]]:
        # The key goes in as a header from the extra, as HttpAsyncHook does it; Airflow masks it
        # (the name contains "api_key") on lookup, a cost the Leadpipe connections pay too.
        return {
            self.conn_id(i): {"conn_type": "http", "host": self.url, "extra": {"X-API-Key": self.api_key(i)}}
            for i in range(self.conns)
        }

    def install(self) -> None:
        from airflow.providers.http.hooks.http import HttpAsyncHook
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        stamps = self.stamps
        original_run = HttpAsyncHook.run
        original_get_hook = HttpSensorTrigger._get_async_hook

        async def counted_run(hook: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await original_run(hook, *args, **kwargs)
            finally:
                stamps[hook.bench_index].append(clock())

        def get_hook(trigger: Any) -> Any:
            hook = original_get_hook(trigger)
            hook.bench_index = trigger.bench_index
            return hook

        HttpAsyncHook.run = counted_run  # type: ignore[method-assign]
        HttpSensorTrigger._get_async_hook = get_hook  # type: ignore[method-assign]

    def run(self, i: int) -> AsyncIterator[Any]:
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        trigger = HttpSensorTrigger(
            endpoint="/bench/not-there",
            http_conn_id=self.conn_id(i),
            method="GET",
            poke_interval=self.interval,
        )
        trigger.bench_index = i  # type: ignore[attr-defined]
        return trigger.run()


class LeadpipeTriggerImpl(Impl):
    """``LeadpipeAccountTrigger`` waiting until the account has credits again.

    An evaluation is one ``Subscription.deliver`` call: one trigger judging one (shared) answer.
    Ten distinct conditions (``min_credits`` 1..10) are spread over the triggers, so the poller's
    per-condition memo does not reduce the work to a single evaluation. The account starts with
    all 500 credits used; the status change sets 20 used (480 left).
    """

    key_config: ClassVar[dict[str, Any]] = {"credits": {"used": 500, "limit": 500}}

    def connections(self) -> dict[str, dict[str, Any]]:
        return {
            self.conn_id(i): {"conn_type": "leadpipe", "host": self.url, "password": self.api_key(i)}
            for i in range(self.conns)
        }

    def change(self, sandbox: Any) -> None:
        for c in range(self.conns):
            sandbox.set_credits(used=20, api_key=self.api_key(c))

    def install(self) -> None:
        from airflow_provider_leadpipe.triggers.poller import Subscription

        stamps = self.stamps
        index = self.index = contextvars.ContextVar[int]("bench_index")
        owner: dict[Any, int] = {}
        original_init = Subscription.__init__
        original_deliver = Subscription.deliver

        def init(subscription: Any, *args: Any, **kwargs: Any) -> None:
            original_init(subscription, *args, **kwargs)
            owner[subscription] = index.get()  # built in its trigger's task (every revision)

        def deliver(subscription: Any, answer: Any) -> None:
            if subscription.result is None:
                stamps[owner[subscription]].append(clock())
            original_deliver(subscription, answer)

        Subscription.__init__ = init  # type: ignore[method-assign,assignment]
        Subscription.deliver = deliver  # type: ignore[method-assign,assignment]

    def run(self, i: int) -> AsyncIterator[Any]:
        from airflow_provider_leadpipe.conditions.account import AccountCondition
        from airflow_provider_leadpipe.triggers.account import LeadpipeAccountTrigger

        self.index.set(i)  # drive() runs each trigger in its own task, hence its own context
        trigger = LeadpipeAccountTrigger(
            leadpipe_conn_id=self.conn_id(i),
            **AccountCondition(min_credits=1 + i % 10).to_dict(),
            poll_interval=self.interval,
            deadline=time.time() + 3600,
        )
        return trigger.run()


class RawHttpxImpl(Impl):
    """Reference, not a trigger: one bare poll loop per connection on ``httpx.AsyncClient``
    (GET + ``json()`` every interval, start to start), to choose a client layout by measurement.
    ``per-connection``: each connection its own client. ``shared``: one client, pool size N.
    """

    has_condition = False
    shared = False
    #: httpx's default; see ReadConnectionHttpxImpl.
    timeout = 5.0

    def connections(self) -> dict[str, dict[str, Any]]:
        return {}

    def client(self) -> httpx.AsyncClient:
        # One SSL context for all clients, as the provider's hook does (building one costs ~30 ms).
        if not hasattr(self, "_ssl"):
            self._ssl = httpx.create_ssl_context()
        if not self.shared:
            return httpx.AsyncClient(base_url=self.url, verify=self._ssl, timeout=self.timeout)
        if not hasattr(self, "_client"):
            limits = httpx.Limits(max_connections=self.n, max_keepalive_connections=self.n)
            self._client = httpx.AsyncClient(
                base_url=self.url, verify=self._ssl, limits=limits, timeout=self.timeout
            )
        return self._client

    async def run(self, i: int) -> AsyncIterator[Any]:  # type: ignore[override]
        client, stamps = self.client(), self.stamps[i]
        headers = {"X-API-Key": self.api_key(i)}
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            (await client.get("/v1/data/account", headers=headers)).json()
            stamps.append(clock())
            await asyncio.sleep(max(0.0, started + self.interval - loop.time()))
        yield  # pragma: no cover -- makes this an async generator like trigger.run()


class SharedHttpxImpl(RawHttpxImpl):
    shared = True


class ReadConnectionHttpxImpl(RawHttpxImpl):
    """Reference, not a trigger: :class:`RawHttpxImpl` with one client per connection, each loop
    reading its Airflow connection first (``BaseHook.aget_connection``, the key from its password),
    as any trigger must. Start-up then includes what Airflow does per connection read, e.g. its
    secrets masker registering the key. Its requests time out after 30 s, the Leadpipe hook's
    default: the connection reads block the event loop for seconds, so httpx's default of 5 s
    would end loops whose first request waited behind them."""

    timeout = 30.0

    def connections(self) -> dict[str, dict[str, Any]]:
        return {
            self.conn_id(i): {"conn_type": "http", "host": self.url, "password": self.api_key(i)}
            for i in range(self.conns)
        }

    async def run(self, i: int) -> AsyncIterator[Any]:  # type: ignore[override]
        from airflow.sdk import BaseHook

        conn = await BaseHook.aget_connection(self.conn_id(i))
        client, stamps = self.client(), self.stamps[i]
        headers = {"X-API-Key": conn.password}
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            (await client.get("/v1/data/account", headers=headers)).json()
            stamps.append(clock())
            await asyncio.sleep(max(0.0, started + self.interval - loop.time()))
        yield  # pragma: no cover -- makes this an async generator like trigger.run()


IMPLS: dict[str, Callable[..., Impl]] = {
    "http": HttpSensorImpl,
    "leadpipe": LeadpipeTriggerImpl,
    "httpx-per-connection": RawHttpxImpl,
    "httpx-shared": SharedHttpxImpl,
    "httpx-read-connection": ReadConnectionHttpxImpl,
}


def per_trigger_fraction(stamps: list[float], start: float, end: float, interval: float) -> float:
    """Evaluations achieved by one trigger in [start, end) as a fraction of one per interval.

    The rate comes from the spacing of its evaluations, which avoids the +-1 quantisation of a
    plain count in a short window; a trigger that went quiet for more than 1.5 intervals at
    either edge of the window is judged by its plain count instead.
    """
    inside = [t for t in stamps if start <= t < end]
    expected = (end - start) / interval
    if len(inside) >= 2 and inside[0] - start <= 1.5 * interval and end - inside[-1] <= 1.5 * interval:
        return (len(inside) - 1) * interval / (inside[-1] - inside[0])
    return len(inside) / expected


async def propagate(
    impl: Impl, sandbox: Any, events: dict[int, float], lag: LoopLag, settle: float
) -> dict[str, Any]:
    """Change the account so every trigger's condition holds; time until all N have their event.

    The change is made at the worst moment, just after an answer arrived, so the next poll is a
    whole interval away. Reported: the delay to the last trigger's event, the spread between the
    first and the last delivery of the answer that carried the change (fan-out), and the number of
    polls per connection that were needed (1 = every trigger got it from the first poll after it).
    """
    early = len(events)
    window_lag = lag.samples
    lag.samples = []
    seen = sum(map(len, impl.stamps))
    waited = clock()
    while sum(map(len, impl.stamps)) == seen and clock() - waited < 3 * impl.interval:
        await asyncio.sleep(0.001)
    requests_before = await asyncio.to_thread(request_total, sandbox)
    await asyncio.to_thread(impl.change, sandbox)
    changed = clock()
    lag.record()
    while len(events) < impl.n and clock() < changed + settle:
        await asyncio.sleep(0.01)
    lag.record(False)
    polls = (await asyncio.to_thread(request_total, sandbox)) - requests_before
    delays = [t - changed for t in events.values() if t >= changed]
    delivered = [s[-1] - changed for s in impl.stamps if s and s[-1] >= changed]
    fanout_lag = max(lag.samples, default=0.0)
    lag.samples = window_lag
    return {
        "fired_before_change": early,
        "fired": len(delays),
        "propagation_max_s": max(delays, default=float("nan")),
        "propagation_p50_s": percentile(delays, 50),
        "delivery_spread_ms": 1000 * (max(delivered) - min(delivered)) if delivered else float("nan"),
        "event_spread_ms": 1000 * (max(delays) - min(delays)) if delays else float("nan"),
        "polls_per_conn_to_propagate": polls / impl.conns,
        "fanout_lag_max_ms": 1000 * fanout_lag,
    }


async def measure(
    impl: Impl,
    sandbox: Any,
    warmup: float,
    duration: float,
    settle: float,
    calibrate: float = 2.0,
    max_startup: float = 300.0,
    spread: float = 1.0,
) -> dict[str, Any]:
    events: dict[int, float] = {}
    errors: list[str] = []

    async def drive(i: int) -> None:
        await asyncio.sleep(spread * impl.interval * i / impl.n)
        try:
            async for event in impl.run(i):
                events[i] = clock()
                status = getattr(event, "payload", {})
                if isinstance(status, dict) and status.get("status") not in (None, "success"):
                    errors.append(f"event:{status.get('status')}")
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            errors.append(type(exc).__name__)

    lag = LoopLag()
    lag.start()
    # The harness's own CPU: the loop-lag ticker alone, before any trigger exists (subtracted
    # from the window's CPU for the "net" figures; both are reported).
    await asyncio.sleep(0.2)
    idle = Window().start()
    await asyncio.sleep(calibrate)
    idle.stop()
    harness_cpu_per_s = idle.cpu / idle.wall
    gc_pauses = GcPauses().__enter__()
    startup_gc = GcPauses().__enter__()
    startup_gc.record()
    began, began_cpu = clock(), time.process_time()
    tasks = [asyncio.create_task(drive(i)) for i in range(impl.n)]
    # Warm-up: until every trigger has evaluated once (connection lookups, clients), then `warmup` more.
    while clock() - began < max_startup and not all(impl.stamps) and not errors:
        await asyncio.sleep(0.05)
    startup, startup_cpu = clock() - began, time.process_time() - began_cpu
    if all(impl.stamps):  # to the last trigger's first evaluation, not to the 50 ms check after it
        startup = max(stamps[0] for stamps in impl.stamps) - began
    startup_gc.__exit__()
    heap_objects = len(gc.get_objects())
    if os.environ.get("BENCH_GC_FREEZE"):  # a what-if (see README): Airflow's triggerer does not
        gc.freeze()
    await asyncio.sleep(warmup)

    # CPU per evaluation with the loop-lag ticker stopped ("alone"): the ticker costs 0.3-2 % of a
    # core (machines differ) and varies between runs by more than 100-1000 coalesced evaluations
    # per second cost, so "raw" and "net" below cannot resolve a 10 % change at N <= 1000; this
    # window can.
    await lag.stop()
    alone = Window().start()
    alone_start = clock()
    await asyncio.sleep(duration)
    alone_end = clock()
    alone.stop()
    lag.start()

    requests_before = await asyncio.to_thread(request_total, sandbox)
    window = Window()
    lag.record()
    gc_pauses.record()
    window.start()
    start = clock()
    await asyncio.sleep(duration)
    end = clock()
    window.stop()
    lag.record(False)
    gc_pauses.record(False)
    gc_pauses.__exit__()
    requests_after = await asyncio.to_thread(request_total, sandbox)

    result: dict[str, Any] = {}
    if impl.has_condition and impl.conns == 1 and not errors:
        result.update(await propagate(impl, sandbox, events, lag, settle))

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await lag.stop()

    evaluations = sum(1 for stamps in impl.stamps for t in stamps if start <= t < end)
    evaluations_alone = sum(1 for stamps in impl.stamps for t in stamps if alone_start <= t < alone_end)
    net_cpu = max(0.0, window.cpu - harness_cpu_per_s * window.wall)
    expected = impl.n * (end - start) / impl.interval
    fractions = [per_trigger_fraction(s, start, end, impl.interval) for s in impl.stamps]
    gaps = [b - a for s in impl.stamps for a, b in itertools.pairwise(s) if start <= b < end]
    result.update(
        startup_s=startup,
        startup_cpu_s=startup_cpu,
        **{f"startup_{k}": v for k, v in startup_gc.summary().items()},
        heap_objects=heap_objects,
        evaluations=evaluations,
        evals_pct=100 * evaluations / expected,
        evals_min_pct=100 * min(fractions),
        evals_p1_pct=100 * percentile(fractions, 1),
        max_gap_intervals=max(gaps, default=float("nan")) / impl.interval,
        cpu_s=window.cpu,
        cpu_per_eval_ms=1000 * window.cpu / evaluations if evaluations else float("nan"),
        harness_cpu_pct=100 * harness_cpu_per_s,
        cpu_net_per_eval_ms=1000 * net_cpu / evaluations if evaluations else float("nan"),
        cpu_alone_per_eval_ms=1000 * alone.cpu / evaluations_alone if evaluations_alone else float("nan"),
        cpu_util_pct=100 * window.cpu / window.wall,
        requests_per_interval=(requests_after - requests_before) / ((end - start) / impl.interval),
        errors=len(errors),
        error_kinds=sorted(set(errors)),
        **lag.summary(),
        **gc_pauses.summary(),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=sorted(IMPLS), required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--conns", type=int, default=1, help="number of distinct connections (1 or N)")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds after every trigger's first evaluation"
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0, help="longest wait for the status change")
    parser.add_argument(
        "--calibrate", type=float, default=2.0, help="seconds measuring the harness's own CPU, first"
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=1.0,
        help="start times spread over this many intervals (0: all in one pass, as Airflow's triggerer)",
    )
    args = parser.parse_args()

    # Every case carries what a triggerer process has loaded (Airflow, both providers' triggers),
    # so the garbage collector walks a comparable heap whatever is measured.
    import airflow.providers.http.triggers.http
    import airflow.sdk  # noqa: F401

    import airflow_provider_leadpipe.triggers.account  # noqa: F401

    with api_sandbox() as sandbox:
        impl = IMPLS[args.impl](args.n, args.conns, args.interval, sandbox.url)
        impl.prepare(sandbox)
        with env_connections(impl.connections()):
            impl.install()
            result = asyncio.run(
                measure(
                    impl, sandbox, args.warmup, args.duration, args.settle, args.calibrate, spread=args.spread
                )
            )
    emit(
        {
            "bench": "triggerer",
            "impl": args.impl,
            "n": args.n,
            "conns": args.conns,
            "interval": args.interval,
            "duration": args.duration,
            **result,
        }
    )


if __name__ == "__main__":
    main()
