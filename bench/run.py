"""Run every benchmark, each case in a fresh process, and print one table per benchmark plus a
summary of their targets. ``bench/run.sh`` prepares the environment and calls this.

    python -m bench.run                     # everything (a few minutes)
    python -m bench.run --only hook,imports # some benchmarks
    python -m bench.run --quick             # smaller N and shorter windows: a smoke test, not figures
    python -m bench.run --markdown bench/RESULTS.md
    python -m bench.run --only triggerer,many --compare main  # before/after, in the same run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import io
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import ROOT, render_table, run_child

BENCHMARKS = ("sandbox", "triggerer", "many", "hook", "imports", "visitors", "audiences", "only_new")


@dataclass
class Target:
    name: str
    measured: str
    baseline: str
    met: bool | None  # None: could not be judged (e.g. a case failed)


@dataclass
class Section:
    title: str
    header: list[str]
    rows: list[list[Any]]
    notes: list[str]


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


# -- the server's headroom ---------------------------------------------------------------------------


def bench_sandbox(args: argparse.Namespace) -> tuple[Section, list[Target]]:
    """bench/bench_sandbox.py (the sandbox author's throughput script), both of its clients.

    Shows that the loopback server is not what limits the triggerer figures: the raw client
    measures the server, the httpx client what one httpx process gets out of it.
    """
    seconds = "2" if args.quick else "5"
    rows = []
    for client, conns in (("raw", 64), ("httpx", 8)):
        print(f"[bench] sandbox throughput: {client} client", file=sys.stderr, flush=True)
        cli = ["--client", client, "-c", str(conns), "-s", seconds, "--visitors", "1000", "--min-rps", "0"]
        proc = subprocess.run(
            [sys.executable, "-m", "bench.bench_sandbox", *cli],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        found = re.search(r"^([\d,]+) req/s", proc.stdout, re.MULTILINE)
        rate = found.group(1) if found else f"FAILED (exit {proc.returncode})"
        rows.append([client, conns, rate])
    section = Section(
        f"0. Sandbox capacity (bench/bench_sandbox.py, GET /v1/data/account, {seconds} s)",
        ["client", "connections", "req/s"],
        rows,
        [
            "The raw client costs little CPU, so its figure is the server's capacity on this machine;"
            " the httpx figure is what one client process can drive. The triggerer benchmarks ask"
            " for at most N requests per interval."
        ],
    )
    return section, []


# -- benchmark 1 and 2 -----------------------------------------------------------------------------


#: The Leadpipe trigger as of ``--compare REF``: the same harness, that revision's package.
BEFORE = "leadpipe-before"


def default_impls(args: argparse.Namespace) -> tuple[str, ...]:
    return ("leadpipe", BEFORE, "http") if args.compare else ("leadpipe", "http")


def checkout(ref: str, into: Path) -> Path:
    """``ref``'s package with this checkout's ``bench/`` next to it, for a child to import."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "airflow_provider_leadpipe"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "bench").symlink_to(ROOT / "bench", target_is_directory=True)
    return into


def trigger_cases(
    ns: list[int], many: bool, args: argparse.Namespace, impls: tuple[str, ...] | None = None
) -> dict[tuple[str, int], dict[str, Any]]:
    """One child process per case; with ``--repeat K``, this tree's trigger and ``--compare``'s
    run K times each, interleaved, and every figure is the median of the K runs."""
    results = {}
    for n in ns:
        runs: dict[str, list[dict[str, Any]]] = {}
        for rep in range(args.repeat):
            for impl in impls or default_impls(args):
                if rep and impl not in ("leadpipe", BEFORE):
                    continue  # the other implementations are a yardstick, not a comparison
                root = args.compare_root if impl == BEFORE else ROOT
                cli = ["--impl", "leadpipe" if impl == BEFORE else impl, "--n", str(n)]
                cli += ["--conns", str(n if many else 1)]
                cli += ["--duration", str(args.duration), "--interval", str(args.interval)]
                cli += ["--warmup", str(args.warmup), "--calibrate", str(args.calibrate)]
                cli += ["--spread", str(args.spread)]
                label = f"{impl} N={n}{' conns=N' if many else ''}"
                if args.repeat > 1:
                    label += f" (run {rep + 1} of {args.repeat})"
                print(f"[bench] triggerer: {label}", file=sys.stderr, flush=True)
                try:
                    runs.setdefault(impl, []).append(run_child("triggerer", cli, timeout=900, root=root)[0])
                except Exception as exc:
                    print(f"[bench] FAILED {label}: {exc}", file=sys.stderr)
                    runs.setdefault(impl, []).append({"failed": str(exc).splitlines()[0]})
        for impl, done in runs.items():
            results[impl, n] = median_run(done)
    return results


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each numeric figure over ``runs`` (any failed run makes the case failed)."""
    failed = [r for r in runs if "failed" in r]
    if failed:
        return failed[0]
    merged = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[key] = statistics.median(r[key] for r in runs)
    merged["errors"] = sum(r["errors"] for r in runs)  # every error counts
    merged["error_kinds"] = sorted({kind for r in runs for kind in r["error_kinds"]})
    return merged


def harness_note(*groups: dict[tuple[str, int], dict[str, Any]]) -> str:
    shares = [r["harness_cpu_pct"] for g in groups for r in g.values() if "harness_cpu_pct" in r]
    if not shares:
        return ""
    return (
        f"net CPU = raw minus the harness's own loop-lag ticker, measured alone in each case: "
        f"{min(shares):.1f}-{max(shares):.1f} % of a core."
    )


def trigger_rows(results: dict[tuple[str, int], dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for (impl, n), r in results.items():
        name = IMPL_NAMES.get(impl) or f"LeadpipeAccountTrigger at {COMPARE_REF[0]}"
        if "failed" in r:
            rows.append([n, name, "FAILED: " + r["failed"], *[""] * 8])
            continue
        rows.append(
            [
                n,
                name,
                fmt(r["requests_per_interval"], 1),
                f"{fmt(r['evals_pct'], 1)} / {fmt(r['evals_min_pct'], 1)}",
                f"{cpu_ms(r['cpu_per_eval_ms'])} / {cpu_ms(r['cpu_net_per_eval_ms'])} / "
                f"{cpu_ms(r['cpu_alone_per_eval_ms'])}",
                fmt(r["cpu_util_pct"], 0),
                f"{fmt(r['lag_p99_ms'], 1)} / {fmt(r['lag_max_ms'], 0)}",
                f"{fmt(r['gc_total_ms'], 0)} ({r['gc_full_runs']})",
                propagation(r),
                f"{fmt(r['startup_s'], 2)} / {fmt(r['startup_cpu_s'], 2)} "
                f"({fmt(r['startup_gc_total_ms'], 0)})",
                f"{r['errors']} ({', '.join(r.get('error_kinds', []))})" if r["errors"] else "",
            ]
        )
    return rows


#: The ``--compare`` revision, for row labels.
COMPARE_REF = [""]
IMPL_NAMES = {
    "leadpipe": "LeadpipeAccountTrigger",
    "http": "HttpSensorTrigger",
    "httpx-per-connection": "httpx, client per connection",
    "httpx-shared": "httpx, one client, pool N",
    "httpx-read-connection": "httpx, client per connection, connection read",
}
TRIGGER_HEADER = [
    "N",
    "trigger",
    "requests/interval",
    "evals % mean / min",
    "CPU ms/eval raw / net / alone",
    "CPU %",
    "lag p99 / max ms",
    "GC ms (full)",
    "change->all: s (polls, fan-out ms)",
    "startup s / CPU s (GC ms)",
    "errors",
]


def cpu_ms(value: float) -> str:
    return fmt(value, 4 if value < 0.01 else 3)


def propagation(r: dict[str, Any]) -> str:
    if "fired" not in r:
        return "-"
    return (
        f"{fmt(r['propagation_max_s'])} ({fmt(r['polls_per_conn_to_propagate'], 0)}, "
        f"{fmt(r['event_spread_ms'], 0)})"
    )


def ok(r: dict[str, Any]) -> bool:
    return "failed" not in r


def triggerer_targets(results: dict[tuple[str, int], dict[str, Any]], interval: float) -> list[Target]:
    targets = []
    for n in sorted({n for _, n in results}):
        ours, base = results.get(("leadpipe", n), {}), results.get(("http", n), {})
        if not ok(ours):
            targets.append(Target(f"1. N={n}: trigger ran", "failed", "", False))
            continue
        targets.append(
            Target(
                f"1. N={n}: API requests per interval <= 1",
                fmt(ours["requests_per_interval"], 2),
                fmt(base.get("requests_per_interval", float("nan")), 1),
                ours["requests_per_interval"] <= 1.0,
            )
        )
        targets.append(
            Target(
                f"1. N={n}: every trigger's evaluations >= 99 %",
                f"min {fmt(ours['evals_min_pct'], 1)} %",
                f"min {fmt(base.get('evals_min_pct', float('nan')), 1)} %",
                ours["evals_min_pct"] >= 99.0,
            )
        )
        if ok(base) and base.get("cpu_net_per_eval_ms"):
            ratio = ours["cpu_net_per_eval_ms"] / base["cpu_net_per_eval_ms"]
            raw = ours["cpu_per_eval_ms"] / base["cpu_per_eval_ms"]
            targets.append(
                Target(
                    f"1. N={n}: CPU per evaluation <= 0.1x HttpSensorTrigger's per poll",
                    f"{ratio:.3f}x net ({cpu_ms(ours['cpu_net_per_eval_ms'])} ms); {raw:.3f}x raw",
                    f"{cpu_ms(base['cpu_net_per_eval_ms'])} ms net",
                    ratio <= 0.1,
                )
            )
        if n == max(n for _, n in results):
            targets.append(
                Target(
                    f"1. N={n}: loop lag p99 < 50 ms",
                    f"{fmt(ours['lag_p99_ms'], 1)} ms",
                    f"{fmt(base.get('lag_p99_ms', float('nan')), 1)} ms",
                    ours["lag_p99_ms"] < 50,
                )
            )
        polls = ours.get("polls_per_conn_to_propagate", float("nan"))
        targets.append(
            Target(
                f"1. N={n}: a status change reaches all N within one interval",
                f"{ours.get('fired', 0)}/{n} from {fmt(polls, 0)} poll; last event "
                f"{fmt(ours.get('propagation_max_s', float('nan')))} s after the change",
                "",
                ours.get("fired") == n and polls <= 1,
            )
        )
    return targets


def many_targets(results: dict[tuple[str, int], dict[str, Any]]) -> list[Target]:
    n = max(n for _, n in results)
    ours, base = results.get(("leadpipe", n), {}), results.get(("http", n), {})
    if not ok(ours):
        return [Target(f"2. N={n}: trigger ran", "failed", "", False)]
    targets = [
        Target(
            f"2. N={n} connections: >= 99 % of expected polls",
            f"{fmt(ours['evals_pct'], 1)} %",
            f"{fmt(base.get('evals_pct', float('nan')), 1)} %",
            ours["evals_pct"] >= 99.0,
        )
    ]
    if ok(base):
        ratio = ours["cpu_net_per_eval_ms"] / base["cpu_net_per_eval_ms"]
        raw = ours["cpu_per_eval_ms"] / base["cpu_per_eval_ms"]
        targets.append(
            Target(
                f"2. N={n} connections: CPU per poll <= HttpSensorTrigger's",
                f"{ratio:.2f}x net ({cpu_ms(ours['cpu_net_per_eval_ms'])} ms); {raw:.2f}x raw",
                f"{cpu_ms(base['cpu_net_per_eval_ms'])} ms net",
                ratio <= 1.0,
            )
        )
    targets.append(
        Target(
            f"2. N={n} connections: loop lag p99 < 100 ms",
            f"{fmt(ours['lag_p99_ms'], 1)} ms",
            f"{fmt(base.get('lag_p99_ms', float('nan')), 1)} ms",
            ours["lag_p99_ms"] < 100,
        )
    )
    return targets


#: Bare httpx poll loops measured next to the triggers on N connections (bench/triggerer.py).
LAYOUTS = ("httpx-per-connection", "httpx-shared", "httpx-read-connection")


def startup_targets(
    results: dict[tuple[str, int], dict[str, Any]], layouts: dict[tuple[str, int], dict[str, Any]]
) -> list[Target]:
    """Start-up on N connections within 2x of bare httpx loops at the largest N: one client per
    connection, and the same reading its Airflow connection first (what Airflow costs per read)."""
    if not layouts:
        return []
    n = max(n for _, n in layouts)
    ours = results.get(("leadpipe", n))
    if ours is None or not ok(ours):
        return []
    targets = []
    for impl in ("httpx-per-connection", "httpx-read-connection"):
        base = layouts.get((impl, n))
        if base is None or not ok(base):
            continue
        ratio = ours["startup_s"] / base["startup_s"]
        targets.append(
            Target(
                f"2. N={n} connections: start-up <= 2x {IMPL_NAMES[impl]}",
                f"{ratio:.2f}x ({fmt(ours['startup_s'], 1)} s, CPU {fmt(ours['startup_cpu_s'], 1)} s)",
                f"{fmt(base['startup_s'], 1)} s, CPU {fmt(base['startup_cpu_s'], 1)} s",
                ratio <= 2.0,
            )
        )
    return targets


def regression_targets(
    results: dict[tuple[str, int], dict[str, Any]], args: argparse.Namespace, kind: str
) -> list[Target]:
    """``--compare``: start-up and CPU per evaluation may not grow by more than 10 % over REF's.

    CPU per evaluation is judged on the "alone" figure (no loop-lag ticker in the loop); the table
    shows raw and net too, but at N <= 1000 the ticker's own run-to-run variation exceeds 10 % of
    what the evaluations cost."""
    targets = []
    for n in sorted({n for _, n in results}):
        # Without --compare there is no "before" case: nothing to judge (a missing case is not
        # an empty one that passes ``ok``).
        ours, before = results.get(("leadpipe", n)), results.get((BEFORE, n))
        if ours is None or before is None or not (ok(ours) and ok(before)):
            continue
        for key, what, fmt_value in (
            ("startup_s", "start-up (wall)", lambda v: f"{fmt(v)} s"),
            ("startup_cpu_s", "start-up CPU", lambda v: f"{fmt(v)} s"),
            ("cpu_alone_per_eval_ms", "CPU per evaluation (alone)", lambda v: f"{cpu_ms(v)} ms"),
        ):
            ratio = ours[key] / before[key] if before[key] else float("nan")
            shown = f"{ratio:.3f}x" if before[key] else "n/a"  # a zero baseline has no ratio
            targets.append(
                Target(
                    f"{kind}. N={n}: {what} <= 1.10x {args.compare}'s",
                    f"{shown} ({fmt_value(ours[key])})",
                    fmt_value(before[key]),
                    ratio <= 1.10 if ratio == ratio else None,
                )
            )
    return targets


def bench_triggerer(args: argparse.Namespace) -> tuple[Section, list[Target]]:
    ns = [200] if args.quick else [100, 1000, 5000]
    results = trigger_cases(ns, False, args)
    section = Section(
        f"1. Triggerer, one connection ({args.interval:g} s interval, {args.duration:g} s window)",
        TRIGGER_HEADER,
        trigger_rows(results),
        [harness_note(results)],
    )
    return section, triggerer_targets(results, args.interval) + regression_targets(results, args, "1")


def bench_many(args: argparse.Namespace) -> tuple[Section, list[Target]]:
    ns = [100] if args.quick else [100, 500, 1000]
    results = trigger_cases(ns, True, args)
    # The client layout, measured rather than assumed: bare httpx poll loops at the largest N.
    layouts = {}
    if not args.quick:
        layouts = trigger_cases([ns[-1]], True, args, impls=LAYOUTS)
    section = Section(
        f"2. Triggerer, N connections ({args.interval:g} s interval, {args.duration:g} s window)",
        TRIGGER_HEADER,
        trigger_rows(results) + trigger_rows(layouts),
        [
            "httpx rows: not triggers but bare poll loops (GET + json() each interval), one "
            "AsyncClient per connection vs one shared AsyncClient with a pool of N; the third reads "
            "its Airflow connection first, as every trigger must (start-up then includes Airflow's "
            "per-read work, e.g. its secrets masker registering each key)."
        ]
        if layouts
        else [],
    )
    section.notes.append(harness_note(results, layouts))
    targets = many_targets(results) + startup_targets(results, layouts)
    return section, targets + regression_targets(results, args, "2")


# -- benchmark 3 and 4 -----------------------------------------------------------------------------


def bench_hook(args: argparse.Namespace) -> tuple[Section, list[Target]]:
    print("[bench] hook call overhead", file=sys.stderr, flush=True)
    cli = ["--rounds", "3", "--calls", "200"] if args.quick else []
    results = {r["kind"]: r for r in run_child("hook_call", cli)}
    rows = [
        [
            kind,
            fmt(r["hook_us"], 0),
            fmt(r["raw_us"], 0),
            f"{r['ratio']:.3f}x",
            fmt(r["hook_cpu_us"], 0),
            fmt(r["raw_cpu_us"], 0),
            f"{r['cpu_ratio']:.3f}x",
        ]
        for kind, r in results.items()
    ]
    section = Section(
        "3. Hook call overhead (get_account_status() vs raw keep-alive httpx GET + json())",
        ["path", "hook us/call", "raw us/call", "ratio", "hook CPU us", "raw CPU us", "CPU ratio"],
        rows,
        [],
    )
    sync = results["sync"]
    target = Target(
        "3. get_account_status() <= 1.15x raw httpx.Client GET + json()",
        f"{sync['ratio']:.3f}x",
        f"{fmt(sync['raw_us'], 0)} us/call",
        sync["ratio"] <= 1.15,
    )
    return section, [target]


def bench_imports(args: argparse.Namespace) -> tuple[Section, list[Target]]:
    print("[bench] import overhead", file=sys.stderr, flush=True)
    results = {r["set"]: r for r in run_child("imports", ["--repeats", "3" if args.quick else "7"])}
    rows = [
        [
            "airflow-provider-leadpipe" if name == "leadpipe" else "apache-airflow-providers-http",
            len(r["modules"]),
            fmt(r["median_ms"], 1),
            f"{fmt(r['min_ms'], 1)} - {fmt(r['max_ms'], 1)}",
        ]
        for name, r in results.items()
    ]
    ours = results["leadpipe"]
    notes = ["Modules: " + ", ".join(m.removeprefix("airflow_provider_leadpipe.") for m in ours["modules"])]
    section = Section(
        f"4. Import overhead on top of `import airflow.sdk` (median of {ours['repeats']} fresh interpreters)",
        ["provider", "modules", "median ms", "range ms"],
        rows,
        notes,
    )
    target = Target(
        "4. provider modules on top of airflow.sdk <= 50 ms",
        f"{fmt(ours['median_ms'], 1)} ms",
        f"{fmt(results['http']['median_ms'], 1)} ms (HTTP provider)",
        ours["median_ms"] <= 50,
    )
    return section, [target]


def bench_visitors(args: argparse.Namespace) -> tuple[Section, list[Target]]:
    print("[bench] visitor pulls", file=sys.stderr, flush=True)
    cases = [("sequential", 2000), ("operator", 2000)]
    if not args.quick:
        cases = [(impl, n) for n in (1000, 10000) for impl in ("sequential", "operator")]
        cases.append(("operator", 100000))
    results = []
    for impl, records in cases:
        print(f"[bench] visitors: {impl} {records} records", file=sys.stderr, flush=True)
        results += run_child("visitors", ["--impl", impl, "--records", str(records)], timeout=900)
    rows = [
        [
            r["records"],
            r["impl"],
            fmt(r["records_per_s"], 0),
            fmt(r["seconds"], 2),
            fmt(r["rss_before_mb"], 1),
            fmt(r["peak_rss_mb"], 1),
            r.get("error", ""),
        ]
        for r in results
    ]
    latency = results[0]["latency_ms"]
    section = Section(
        f"5. Visitor pulls ({latency:g} ms per page, 50 records per page)",
        ["records", "pull", "records/s", "seconds", "RSS before MB", "peak RSS MB", "errors"],
        rows,
        [],
    )
    targets = []
    ops = {r["records"]: r for r in results if r["impl"] == "operator"}
    seqs = {r["records"]: r for r in results if r["impl"] == "sequential"}
    for records in sorted(set(ops) & set(seqs)):
        ratio = ops[records]["records_per_s"] / seqs[records]["records_per_s"]
        targets.append(
            Target(
                f"5. {records} records: operator throughput >= 3x sequential",
                f"{ratio:.2f}x",
                f"{fmt(seqs[records]['records_per_s'], 0)} records/s",
                ratio >= 3.0,
            )
        )
    if len(ops) >= 2:
        small, large = ops[min(ops)], ops[max(ops)]
        growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
        targets.append(
            Target(
                f"5. peak RSS flat from {min(ops)} to {max(ops)} records (within 10 %)",
                f"{100 * growth:+.1f} %",
                f"{fmt(small['peak_rss_mb'], 1)} MB",
                growth <= 0.10,
            )
        )
    return section, targets


def bench_audiences(args: argparse.Namespace) -> tuple[Section, list[Target]]:
    print("[bench] Orbit audience pulls", file=sys.stderr, flush=True)
    if args.quick:
        cases = [(impl, 2000) for impl in ("sequential", "operator", "export-whole", "export")]
    else:
        cases = [(impl, n) for n in (1000, 100_000) for impl in ("sequential", "operator")]
        cases += [(impl, n) for n in (1000, 300_000) for impl in ("export-whole", "export")]
    results = []
    for impl, people in cases:
        print(f"[bench] audiences: {impl} {people} people", file=sys.stderr, flush=True)
        results += run_child("audiences", ["--impl", impl, "--people", str(people)], timeout=1800)
    rows = [
        [
            r["people"],
            r["impl"],
            fmt(r["latency_ms"], 0),
            fmt(r["people_per_s"], 0),
            fmt(r["seconds"], 2),
            fmt(r["rss_before_mb"], 1),
            fmt(r["peak_rss_mb"], 1),
            r.get("error", ""),
        ]
        for r in results
    ]
    section = Section(
        "6. Orbit audience pulls (results: 100 people per page, ms late per page as shown; export.csv)",
        ["people", "pull", "ms/page", "people/s", "seconds", "RSS before MB", "peak RSS MB", "errors"],
        rows,
        [],
    )
    by = {(r["impl"], r["people"]): r for r in results}
    targets = []
    # The target is the large pull; at 1,000 people (10 pages) fixed costs dominate both sides.
    for people in sorted({n for impl, n in by if impl == "operator"})[-1:]:
        if ("sequential", people) in by:
            ratio = by[("operator", people)]["people_per_s"] / by[("sequential", people)]["people_per_s"]
            targets.append(
                Target(
                    f"6. {people} people: results operator throughput >= 3x sequential",
                    f"{ratio:.2f}x",
                    f"{fmt(by[('sequential', people)]['people_per_s'], 0)} people/s",
                    ratio >= 3.0,
                )
            )
    for impl, label in (("operator", "results pull"), ("export", "export.csv stream")):
        sizes = sorted(n for i, n in by if i == impl)
        if len(sizes) >= 2:
            small, large = by[(impl, sizes[0])], by[(impl, sizes[-1])]
            growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
            whole = by.get(("export-whole", sizes[-1])) if impl == "export" else None
            baseline = f"{fmt(small['peak_rss_mb'], 1)} MB at {sizes[0]}"
            if whole is not None:
                baseline += f"; read whole: {fmt(whole['peak_rss_mb'], 1)} MB at {sizes[-1]}"
            targets.append(
                Target(
                    f"6. {label}: peak RSS flat from {sizes[0]} to {sizes[-1]} people (within 10 %)",
                    f"{100 * growth:+.1f} %",
                    baseline,
                    abs(growth) <= 0.10,
                )
            )
    return section, targets


def bench_only_new(args: argparse.Namespace) -> tuple[Section, list[Target]]:
    """bench/only_new.py: a 10k-record pull, plain and with only_new against 10k-1M fingerprints."""
    print("[bench] only_new visitor pulls", file=sys.stderr, flush=True)
    sizes = (10000,) if args.quick else (10000, 100000, 1000000)
    cases = [["--impl", "plain"]] + [["--impl", "only_new", "--remembered", str(n)] for n in sizes]
    results = []
    for case in cases:
        print(f"[bench] only_new: {' '.join(case)}", file=sys.stderr, flush=True)
        results += run_child("only_new", case, timeout=900)
    rows = [
        [
            r["impl"],
            r["remembered"],
            r["records"],
            fmt(r["seconds"], 2),
            fmt(r["peak_rss_mb"], 1),
            fmt(r["state_mb"], 1),
            r.get("error", ""),
        ]
        for r in results
    ]
    section = Section(
        "7. only_new visitor pulls (10,000 records, no added latency)",
        ["pull", "remembered", "records", "seconds", "peak RSS MB", "state MB", "errors"],
        rows,
        ["The state costs 20 bytes per fingerprint in memory and on the store; no record is kept."],
    )
    plain, largest = results[0], results[-1]
    growth = largest["peak_rss_mb"] - plain["peak_rss_mb"]
    budget = 3 * largest["state_mb"] + 10  # the state read, the merged state written, slack
    target = Target(
        f"7. only_new with {largest['remembered']:,} fingerprints: peak RSS over the plain pull "
        f"within 3x the state's size + 10 MB ({budget:.0f} MB)",
        f"{growth:+.1f} MB",
        f"{fmt(plain['peak_rss_mb'], 1)} MB",
        growth <= budget,
    )
    return section, [target]


RUNNERS: dict[str, Callable[[argparse.Namespace], tuple[Section, list[Target]]]] = {
    "sandbox": bench_sandbox,
    "triggerer": bench_triggerer,
    "many": bench_many,
    "hook": bench_hook,
    "imports": bench_imports,
    "visitors": bench_visitors,
    "audiences": bench_audiences,
    "only_new": bench_only_new,
}


# -- output ----------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu, mem = "unknown CPU", "unknown"
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        lines = Path("/proc/meminfo").read_text().splitlines()
        mem_kb = next(int(line.split()[1]) for line in lines if line.startswith("MemTotal"))
        mem = f"{mem_kb / 1024**2:.0f} GiB"
    versions = []
    for dist in (
        "apache-airflow-core",
        "apache-airflow-task-sdk",
        "apache-airflow-providers-http",
        "httpx",
        "aiohttp",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    return {
        "machine": f"{cpu}, {os.cpu_count()} cores, {mem} RAM, {platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}, default asyncio loop",
        "versions": ", ".join(versions),
    }


def rev(ref: str) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def render(sections: list[Section], targets: list[Target], meta: dict[str, str], markdown: bool) -> str:
    out = []
    for section in sections:
        out.append(f"### {section.title}" if markdown else f"\n== {section.title}")
        out.append(
            md_table(section.header, section.rows) if markdown else render_table(section.header, section.rows)
        )
        out.extend(f"\n{note}" if markdown else note for note in section.notes)
        out.append("")
    rows = [[t.name, t.measured, t.baseline, {True: "yes", False: "NO", None: "?"}[t.met]] for t in targets]
    header = ["target", "measured", "baseline", "met"]
    out.append("### Targets" if markdown else "\n== Targets")
    out.append(md_table(header, rows) if markdown else render_table(header, rows))
    out.append("")
    out.extend(f"- {k}: {v}" if markdown else f"{k}: {v}" for k, v in meta.items())
    return "\n".join(out)


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}"
    )
    parser.add_argument("--quick", action="store_true", help="smaller N, shorter windows (smoke test)")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval of the triggers (s)")
    parser.add_argument("--duration", type=float, default=None, help="measured window per trigger case (s)")
    parser.add_argument("--warmup", type=float, default=None, help="settling time before each window (s)")
    parser.add_argument(
        "--calibrate", type=float, default=None, help="seconds measuring the harness's own CPU per case"
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=1.0,
        help="trigger start times spread over this many intervals (0: all in one pass, as Airflow's "
        "triggerer creates the triggers handed to it)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="triggerer benchmarks: run this tree's trigger and --compare's K times each, interleaved, "
        "and report medians (start-up figures at small N vary by +-30 %% between single runs)",
    )
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown to PATH")
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="also run LeadpipeAccountTrigger as of git REF (e.g. main) in the triggerer benchmarks, "
        "as a before/after baseline measured in the same run",
    )
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 4.0 if args.quick else 15.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    if args.calibrate is None:
        args.calibrate = 1.0 if args.quick else 2.0
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}")

    started = time.time()
    load_before = os.getloadavg()
    sections, targets = [], []
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as scratch:
        if args.compare:
            COMPARE_REF[0] = args.compare
            args.compare_commit = rev(args.compare)  # when exported: the ref may move during the run
            args.compare_root = checkout(args.compare_commit, Path(scratch))
        for name in BENCHMARKS:
            if name in chosen:
                section, found = RUNNERS[name](args)
                sections.append(section)
                targets.extend(found)
    load_after = os.getloadavg()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **machine(),
        "load average (1 min) before / after": f"{load_before[0]:.2f} / {load_after[0]:.2f}",
        **({"compared with": f"{args.compare} ({args.compare_commit})"} if args.compare else {}),
        "trigger start times": f"spread over {args.spread:g} interval(s)" if args.spread else "one pass",
        **({"triggerer figures": f"medians of {args.repeat} interleaved runs"} if args.repeat > 1 else {}),
        "run time": f"{time.time() - started:.0f} s",
    }
    print(render(sections, targets, meta, markdown=False))
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(render(sections, targets, meta, markdown=True) + "\n")
        print(f"\nwrote {args.markdown}", file=sys.stderr)


if __name__ == "__main__":
    main()
