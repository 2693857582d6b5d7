"""bench/run.py's report and target code over synthetic results: the harness is tested like the
product. No benchmark runs here; every case below is the shape a child process emits."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench import run


def trigger_result(**overrides: Any) -> dict[str, Any]:
    """One bench/triggerer.py result, as emitted (only the fields bench/run.py reads)."""
    result: dict[str, Any] = {
        "requests_per_interval": 1.0,
        "evals_pct": 100.0,
        "evals_min_pct": 99.9,
        "cpu_per_eval_ms": 0.02,
        "cpu_net_per_eval_ms": 0.01,
        "cpu_alone_per_eval_ms": 0.01,
        "cpu_util_pct": 1.0,
        "lag_p99_ms": 0.5,
        "lag_max_ms": 2.0,
        "gc_total_ms": 0.0,
        "gc_full_runs": 0,
        "startup_s": 1.0,
        "startup_cpu_s": 0.2,
        "startup_gc_total_ms": 10.0,
        "errors": 0,
        "error_kinds": [],
        "fired": 100,
        "polls_per_conn_to_propagate": 1.0,
        "propagation_max_s": 1.0,
        "event_spread_ms": 1.0,
        "harness_cpu_pct": 0.5,
    }
    result.update(overrides)
    return result


def args(**overrides: Any) -> argparse.Namespace:
    values = {"quick": False, "interval": 1.0, "duration": 15.0, "compare": None, "repeat": 1}
    values.update(overrides)
    return argparse.Namespace(**values)


def full_run_results(impls: tuple[str, ...]) -> dict[tuple[str, int], dict[str, Any]]:
    """Benchmark 1's cases at the full run's N; HttpSensorTrigger polls at 50x the CPU."""
    http = {"cpu_per_eval_ms": 1.0, "cpu_net_per_eval_ms": 0.5, "requests_per_interval": 600.0}
    return {
        (impl, n): trigger_result(fired=n, **(http if impl == "http" else {}))
        for n in (100, 1000, 5000)
        for impl in impls
    }


def rendered(section: run.Section, targets: list[run.Target]) -> str:
    text = run.render([section], targets, {"date": "today"}, markdown=False)
    markdown = run.render([section], targets, {"date": "today"}, markdown=True)
    assert markdown.count("| N | trigger |") == 1
    return text


def test_full_run_without_compare_judges_no_regression(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented full run (no ``--compare``): there is no "before" case, hence no regression
    target, and the report renders (it raised KeyError 'startup_s')."""
    results = full_run_results(("leadpipe", "http"))
    monkeypatch.setattr(run, "trigger_cases", lambda ns, many, a, impls=None: results)

    section, targets = run.bench_triggerer(args())

    assert not [t for t in targets if "1.10x" in t.name]
    assert all(t.met for t in targets), targets
    assert "LeadpipeAccountTrigger" in rendered(section, targets)


def test_many_connections_without_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    """Benchmark 2, full-run shape: two trigger sets and the two bare-httpx layout rows."""
    calls: list[tuple[str, ...] | None] = []

    def cases(ns: list[int], many: bool, a: argparse.Namespace, impls: tuple[str, ...] | None = None):
        calls.append(impls)
        if impls:
            return {(impl, ns[-1]): trigger_result() for impl in impls}
        return {(impl, n): trigger_result() for n in ns for impl in ("leadpipe", "http")}

    monkeypatch.setattr(run, "trigger_cases", cases)

    section, targets = run.bench_many(args())

    assert calls == [None, run.LAYOUTS]
    assert not [t for t in targets if "1.10x" in t.name]
    startup = [t for t in targets if "start-up <= 2x" in t.name]
    assert [t.met for t in startup] == [True, True]  # equal start-up: 1.00x of each
    text = rendered(section, targets)
    for name in ("httpx, client per connection", "httpx, one client, pool N", "connection read"):
        assert name in text


def test_start_up_on_many_connections_is_judged_against_bare_httpx() -> None:
    results = {("leadpipe", 1000): trigger_result(startup_s=30.0), ("http", 1000): trigger_result()}
    layouts = {
        ("httpx-per-connection", 1000): trigger_result(startup_s=5.0),
        ("httpx-read-connection", 1000): trigger_result(startup_s=25.0),
    }
    targets = run.startup_targets(results, layouts)
    assert [(t.measured.split(" ")[0], t.met) for t in targets] == [("6.00x", False), ("1.20x", True)]
    assert run.startup_targets(results, {}) == []  # --quick measures no layouts


def test_compare_judges_each_figure_against_the_before_case(monkeypatch: pytest.MonkeyPatch) -> None:
    results = full_run_results(("leadpipe", run.BEFORE, "http"))
    results["leadpipe", 1000]["startup_cpu_s"] = 0.3  # 1.5x the before case's 0.2 s
    results[run.BEFORE, 5000]["cpu_alone_per_eval_ms"] = 0.0  # a zero baseline has no ratio
    monkeypatch.setattr(run, "trigger_cases", lambda ns, many, a, impls=None: results)
    monkeypatch.setattr(run, "COMPARE_REF", ["main"])

    section, targets = run.bench_triggerer(args(compare="main"))

    regression = {t.name: t.met for t in targets if "1.10x" in t.name}
    assert len(regression) == 9  # three figures at three N
    assert regression["1. N=1000: start-up CPU <= 1.10x main's"] is False
    assert regression["1. N=5000: CPU per evaluation (alone) <= 1.10x main's"] is None
    assert sum(met is True for met in regression.values()) == 7
    assert "LeadpipeAccountTrigger at main" in rendered(section, targets)


def test_a_failed_case_is_a_missed_target_and_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    results = full_run_results(("leadpipe", run.BEFORE, "http"))
    results["leadpipe", 100] = {"failed": "bench.triggerer --n 100 failed (exit 1):"}
    monkeypatch.setattr(run, "trigger_cases", lambda ns, many, a, impls=None: results)

    section, targets = run.bench_triggerer(args(compare="main"))

    assert run.Target("1. N=100: trigger ran", "failed", "", False) in targets
    assert not [t for t in targets if t.name.startswith("1. N=100:") and "1.10x" in t.name]
    assert "FAILED: bench.triggerer --n 100" in rendered(section, targets)


def test_median_run_keeps_every_error() -> None:
    runs = [
        trigger_result(startup_s=1.0, errors=1, error_kinds=["ReadTimeout"]),
        trigger_result(startup_s=3.0, errors=0),
        trigger_result(startup_s=2.0, errors=2, error_kinds=["ConnectError"]),
    ]
    merged = run.median_run(runs)
    assert merged["startup_s"] == 2.0
    assert merged["errors"] == 3
    assert merged["error_kinds"] == ["ConnectError", "ReadTimeout"]
    assert run.median_run([*runs, {"failed": "boom"}]) == {"failed": "boom"}
