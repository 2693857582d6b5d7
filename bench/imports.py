"""Benchmark 4: import cost of the provider's modules on top of ``import airflow.sdk``.

Every sample is a fresh interpreter that imports ``airflow.sdk`` first (untimed), then times the
import of the modules under test, with bytecode caches written (one untimed interpreter first).
The result is the median over ``--repeats`` interpreters. The HTTP provider's hook, operator,
sensor and trigger modules are measured the same way, as a reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from bench.harness import ROOT, emit

PROVIDER_KINDS = ("hooks", "sensors", "operators", "triggers")
HTTP_MODULES = [
    f"airflow.providers.http.{kind}.http" for kind in ("hooks", "operators", "sensors", "triggers")
]

_PROBE = """
import json, sys, time
import airflow.sdk
t0 = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps(time.perf_counter() - t0))
"""


def provider_modules() -> list[str]:
    """Every module in the provider's hooks/, sensors/, operators/ and triggers/ packages."""
    package = ROOT / "airflow_provider_leadpipe"
    return [
        f"airflow_provider_leadpipe.{kind}.{path.stem}"
        for kind in PROVIDER_KINDS
        for path in sorted((package / kind).glob("*.py"))
        if path.stem != "__init__"
    ]


def one_sample(modules: list[str]) -> float:
    # Bytecode caches as in a deployment (pip writes them at install, Python on first import);
    # without them every sample would time the compiler.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    ours = provider_modules()
    sets = {"leadpipe": ours, "http": HTTP_MODULES}
    samples: dict[str, list[float]] = {name: [] for name in sets}
    for modules in sets.values():  # untimed: writes the bytecode caches
        one_sample(modules)
    for _ in range(args.repeats):  # interleaved, so machine-load drift hits both sets alike
        for name, modules in sets.items():
            samples[name].append(one_sample(modules))
    for name, modules in sets.items():
        emit(
            {
                "bench": "imports",
                "set": name,
                "modules": modules,
                "median_ms": 1000 * statistics.median(samples[name]),
                "min_ms": 1000 * min(samples[name]),
                "max_ms": 1000 * max(samples[name]),
                "repeats": args.repeats,
            }
        )


if __name__ == "__main__":
    main()
