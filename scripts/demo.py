"""The README demo: the credit-gated example DAG, a credit report and an Orbit audience run, on the
sandbox, with real Airflow.

Run through ``bash scripts/demo.sh`` (which sets up the venv). It uses a fresh Airflow home
(SQLite) under ``.airflow-demo/`` (or ``$LEADPIPE_DEMO_HOME``), starts the API sandbox on a free
loopback port with an account that has NO credits until the third account call, runs
``airflow dags test leadpipe_credit_gated_pull`` (the deferrable sensor waits, the trigger sees the
credits come back, the visitors are pulled to a file) and ``airflow dags test
leadpipe_daily_credit_report`` and ``airflow dags test leadpipe_intent_audience_daily`` (an Orbit
audience upserted, run through queued -> running -> completed while deferred, its people landed in
a file), prints what the runs pushed to XCom, and stops the sandbox.
Exits non-zero if a run did not succeed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_leadpipe.testing import LeadpipeSandbox

REPO = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("LEADPIPE_DEMO_HOME", REPO / ".airflow-demo")).resolve()
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
#: Log lines worth showing from `airflow dags test` (the rest is in HOME/<dag_id>.log).
HIGHLIGHTS = (
    "waiting:",
    "ready:",
    "running trigger in line",
    "Trigger completed",
    "Leadpipe",
    "Wrote",
    "audience",
    "Audience",
    "Marking run",
)
#: A structlog console line: "<timestamp> [<level>] <message> [<logger>] loc=..."; we show the message.
TRAILER = re.compile(r"\s+\[[\w.]+\] loc=.*$")
LOG_LINE = re.compile(r"^\S+ \[\w+\s*\] (?P<message>.*?)(?:\s+\[[\w.]+\].*)?$")


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def airflow(*args: str, env: dict[str, str], log: Path | None = None) -> int:
    """Run the Airflow CLI; with ``log``, keep its full output there and echo the highlights."""
    if log is None:
        return subprocess.run([AIRFLOW, *args], env=env, stdout=subprocess.DEVNULL, check=True).returncode
    with log.open("w") as out:
        proc = subprocess.Popen(
            [AIRFLOW, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        echoing = False  # a highlighted message's continuation lines (e.g. the credit report block)
        for line in proc.stdout:
            out.write(line)
            match = LOG_LINE.match(line.rstrip())
            if match:
                line = match["message"]
                echoing = any(mark in line for mark in HIGHLIGHTS)
            elif not line.startswith("  "):
                echoing = False
            if echoing:
                line = TRAILER.sub("", line.rstrip())
                print("   ", line[:160], flush=True)
        return proc.wait()


def latest_xcoms(dag_id: str) -> tuple[str, dict[str, Any]]:
    """State and return values of the DAG's latest run, read from the demo's metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.xcom import XComModel

        value_of = XComModel.deserialize_value
    except ImportError:  # Airflow 2.x: the ORM class is XCom itself, deserialized when loaded
        from airflow.models.xcom import XCom as XComModel

        def value_of(row: Any) -> Any:
            return row.value

    with create_session() as session:
        run = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        ).one()
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
            )
        )
        return str(run.state), {row.task_id: value_of(row) for row in rows}


def main() -> int:
    started = time.monotonic()
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},  # nothing leaks in
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "LEADPIPE_EXAMPLE_POKE_INTERVAL": "1",
        "LEADPIPE_EXAMPLE_POLL_INTERVAL": "0.5",
    }
    os.environ.update(env)  # for reading XCom from this process at the end

    say(f"Airflow home {HOME} (SQLite): airflow db migrate")
    airflow("db", "migrate", env=env)

    with LeadpipeSandbox(seed=42, visitors=5000) as sandbox:
        sandbox.exhaust_credits(recover_after_account_calls=3)
        env.update(sandbox.connection_env("leadpipe_default"))
        say(
            f"Leadpipe API sandbox on {sandbox.url}: 0 of 500 credits left until the 3rd account call "
            "(connection leadpipe_default, an env var; no real key)"
        )

        say("airflow dags test leadpipe_credit_gated_pull (deferrable sensor >> visitor pull >> status)")
        conf = json.dumps({"output_dir": str(HOME / "output"), "timeframe": "7d", "min_credits": 100})
        gated = HOME / "leadpipe_credit_gated_pull.log"
        airflow("dags", "test", "leadpipe_credit_gated_pull", "-c", conf, env=env, log=gated)

        say("airflow dags test leadpipe_daily_credit_report")
        report_log = HOME / "leadpipe_daily_credit_report.log"
        airflow("dags", "test", "leadpipe_daily_credit_report", env=env, log=report_log)
        say("airflow dags test leadpipe_intent_audience_daily (upsert >> deferrable run >> people to a file)")
        sandbox.set_run_schedule(queued_polls=1, running_polls=2)
        orbit_log = HOME / "leadpipe_intent_audience_daily.log"
        orbit_conf = json.dumps({"output_dir": str(HOME / "output")})
        airflow("dags", "test", "leadpipe_intent_audience_daily", "-c", orbit_conf, env=env, log=orbit_log)
        account_calls = sandbox.request_count("/v1/data/account")
        visitor_pages = sandbox.request_count("/v1/data")

    gated_state, gated_xcom = latest_xcoms("leadpipe_credit_gated_pull")
    report_state, report_xcom = latest_xcoms("leadpipe_daily_credit_report")
    orbit_state, orbit_xcom = latest_xcoms("leadpipe_intent_audience_daily")

    say("Results, read back from XCom")
    account = gated_xcom.get("wait_for_credits") or {}
    credits = account.get("credits", {})
    print(f"    leadpipe_credit_gated_pull: {gated_state}")
    print(
        f"      sensor released with {credits.get('remaining')} of {credits.get('limit')} credits left "
        f"(organization {account.get('organization', {}).get('name')!r}, healthy={account.get('healthy')})"
    )
    summary = gated_xcom.get("summary") or {}
    pulled = f"{summary.get('records')} visitor records in {summary.get('pages')} pages"
    print(f"      pulled {pulled} -> {summary.get('path')}")
    print(f"    leadpipe_daily_credit_report: {report_state}")
    report = report_xcom.get("credit_report") or {}
    for key in ("observed_at", "remaining", "credits_used", "daily_burn_rate", "runs_out_before_reset"):
        print(f"      {key}: {report.get(key)}")
    print(f"      check_runway: {report_xcom.get('check_runway')}")
    print(f"    leadpipe_intent_audience_daily: {orbit_state}")
    audience = orbit_xcom.get("upsert_audience") or {}
    landed = orbit_xcom.get("summary") or {}
    print(f"      audience {audience.get('name')!r} ({audience.get('id')}) is {audience.get('status')}")
    print(
        f"      run {landed.get('audience_run_id')} (dataDate {landed.get('data_date')}): "
        f"landed {landed.get('people')} people -> {landed.get('path')}"
    )
    print(f"    sandbox saw {account_calls} account calls and {visitor_pages} visitor-page requests")
    print(f"    full logs: {gated}, {report_log} and {orbit_log}")
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s.")
    ok = gated_state == report_state == orbit_state == "success"
    if not ok:
        print("A demo run did not succeed; see the logs above.", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
