"""Deliberate breakages: each mutant breaks one behaviour on purpose and must turn its tests red.

    .venv/bin/python scripts/mutants.py            # every mutant
    .venv/bin/python scripts/mutants.py redact     # the mutants whose name contains "redact"
    .venv/bin/python scripts/mutants.py --list

The repository is copied to a temporary directory (tracked and untracked, non-ignored files);
each mutant edits that copy, runs its tests there (the copy comes first on ``PYTHONPATH``, so the
installed editable package is not used), and the edit is undone before the next mutant. The
working tree is never touched. First, the tests of every selected mutant run once unbroken (they
must pass, or "caught" would mean nothing). Exit status 1 if a mutant is not caught or no longer
applies (its text is not found exactly once: update the table after a refactor).

Adding a mutant is one line in ``MUTANTS``: name, file, exact text, replacement, tests to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
RETRY = "airflow_provider_leadpipe/hooks/retry.py"
REDACTION = "airflow_provider_leadpipe/hooks/redaction.py"
SETTINGS = "airflow_provider_leadpipe/hooks/settings.py"
CONDITIONS = "airflow_provider_leadpipe/conditions/account.py"
RETRY_TESTS = ("tests/unit/hooks", "tests/hardening/test_retry_policy.py")
CONDITION_TESTS = ("tests/unit/conditions", "tests/unit/sensors", "tests/unit/operators")
NETWORK_TESTS = ("tests/unit/hooks/test_network_settings.py", "tests/hardening/test_corporate_network.py")
SHARING_TESTS = (
    "tests/unit/triggers",
    "tests/integration/test_sensor_key_rotation.py",
    "tests/integration/test_sensor_coalescing.py",
)


class Mutant(NamedTuple):
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


# fmt: off
MUTANTS = [
    Mutant("retry predicate: transient failures never retried", RETRY, "    if not isinstance(exc, TRANSIENT_ERRORS):\n        return False", "    if True:\n        return False", RETRY_TESTS),  # noqa: E501
    Mutant("retry predicate: a POST retried after it was sent", RETRY, "return not exc.request_sent", "return True", RETRY_TESTS),  # noqa: E501
    Mutant("Retry-After: delta-seconds ignored", RETRY, "        return float(value)\n", "        return None\n", RETRY_TESTS),  # noqa: E501
    Mutant("Retry-After: HTTP-date ignored", RETRY, "    return max(0.0, when.timestamp() - (time.time() if now is None else now))", "    return None", RETRY_TESTS),  # noqa: E501
    Mutant("Retry-After: cap raised from a minute to an hour", RETRY, "MAX_RETRY_AFTER = 60.0", "MAX_RETRY_AFTER = 3600.0", RETRY_TESTS),  # noqa: E501
    Mutant("auth failure: retried by Airflow (not an AirflowFailException)", "airflow_provider_leadpipe/exceptions.py", "class LeadpipeAuthError(LeadpipeError, AirflowFailException):", "class LeadpipeAuthError(LeadpipeError):", ("tests/integration/test_task_retries.py",)),  # noqa: E501
    Mutant("condition: min_credits boundary (< becomes <=)", CONDITIONS, "credits.remaining < self.min_credits", "credits.remaining <= self.min_credits", CONDITION_TESTS),  # noqa: E501
    Mutant("condition: max_percent_used boundary (> becomes >=)", CONDITIONS, "credits.percent_used > self.max_percent_used", "credits.percent_used >= self.max_percent_used", CONDITION_TESTS),  # noqa: E501
    Mutant("condition: min_audience_slots boundary (< becomes <=)", CONDITIONS, "if available < self.min_audience_slots:", "if available <= self.min_audience_slots:", CONDITION_TESTS),  # noqa: E501
    Mutant("idempotency key: the try number always added (a retry starts a second run)", "airflow_provider_leadpipe/operators/audiences.py", "    if new_run_on_retry:\n        key = f\"{key}:try{ti.try_number}\"", "    if True:\n        key = f\"{key}:try{ti.try_number}\"", ("tests/unit/operators/test_audiences.py", "tests/integration/test_audience_runs_dag.py")),  # noqa: E501
    Mutant("idempotency key: the run id left out (two DAG runs share one audience run)", "airflow_provider_leadpipe/operators/audiences.py", "[\"airflow\", ti.dag_id, ti.run_id, ti.task_id,", "[\"airflow\", ti.dag_id, ti.task_id,", ("tests/unit/operators/test_audiences.py",)),  # noqa: E501
    Mutant("redaction: redact() returns the text unchanged", REDACTION, "def redact(text: str, settings: ApiSettings) -> str:\n", "def redact(text: str, settings: ApiSettings) -> str:\n    return text\n", ("tests/unit/hooks", "tests/hardening/test_secrets.py", "tests/hardening/test_fuzz_responses.py")),  # noqa: E501
    Mutant("corporate network: the ca_bundle extra ignored (default trust store)", SETTINGS, "\"verify\": ssl_context(settings.ca_bundle),", "\"verify\": ssl_context(None),", NETWORK_TESTS),  # noqa: E501
    Mutant("corporate network: the proxy extra ignored", SETTINGS, "    elif settings.proxy is not None:\n        kwargs[\"proxy\"] = settings.proxy", "    elif False:\n        kwargs[\"proxy\"] = settings.proxy", NETWORK_TESTS),  # noqa: E501
    Mutant("corporate network: plain http:// sent through the proxy", SETTINGS, "    if httpx.URL(url).scheme == \"http\":\n        kwargs[\"trust_env\"] = False", "    if False:\n        kwargs[\"trust_env\"] = False", NETWORK_TESTS),  # noqa: E501
    Mutant("sharing: the API key left out of the sharing key (one id, two accounts)", SETTINGS, "        settings.api_key,\n        settings.proxy or \"\",", "        settings.proxy or \"\",", SHARING_TESTS),  # noqa: E501
]
# fmt: on


def copy_repository(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = REPO / os.fsdecode(raw)
        if source.is_file():  # deleted but still in the index: skip
            destination = target / os.fsdecode(raw)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def run_tests(copy: Path, tests: tuple[str, ...], label: str) -> tuple[int, list[str], float]:
    """Run ``tests`` in the copy: (pytest exit code, ids of failed tests, seconds)."""
    report = copy / f".mutants-{label}.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    failed = []
    if report.exists():
        for case in ET.parse(report).iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                module = case.get("classname", "").replace(".", "/")
                name = case.get("name")
                failed.append(f"{module}.py::{name}" if module else f"{name} (collection)")
        report.unlink()
    elif done.returncode:
        failed.append("(pytest produced no report)\n" + done.stdout[-2000:] + done.stderr[-2000:])
    return done.returncode, failed, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only mutants whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unbroken run")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.names or any(n.lower() in m.name.lower() for n in args.names)]
    if args.list or not chosen:
        for mutant in MUTANTS:
            print(f"{mutant.name}  [{mutant.path}; tests: {' '.join(mutant.tests)}]")
        return 0 if args.list else 2

    problems = 0
    with tempfile.TemporaryDirectory(prefix="leadpipe-mutants-") as tmp:
        copy = Path(tmp)
        copy_repository(copy)
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            code, failed, seconds = run_tests(copy, tests, "baseline")
            print(f"baseline (unbroken): {'green' if code == 0 else 'RED'} in {seconds:.0f} s", flush=True)
            if code != 0:
                print("the unbroken tests fail; fix them first:\n  " + "\n  ".join(failed))
                return 1
        for index, mutant in enumerate(chosen):
            target = copy / mutant.path
            original = target.read_text()
            found = original.count(mutant.old)
            if found != 1:
                print(f"- {mutant.name}: DOES NOT APPLY ({mutant.old!r}: {found} times in {mutant.path})")
                problems += 1
                continue
            target.write_text(original.replace(mutant.old, mutant.new))
            try:
                code, failed, seconds = run_tests(copy, mutant.tests, str(index))
            finally:
                target.write_text(original)
            if failed:
                more = f"\n    ... and {len(failed) - 8} more" if len(failed) > 8 else ""
                shown = "\n    ".join(failed[:8]) + more
                print(f"- {mutant.name}: caught by {len(failed)} test(s) in {seconds:.0f} s:\n    {shown}")
            else:
                print(f"- {mutant.name}: NOT CAUGHT (pytest exit {code}; ran {' '.join(mutant.tests)})")
                problems += 1
            sys.stdout.flush()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
