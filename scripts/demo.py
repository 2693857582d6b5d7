"""The README demo: the credit-gated example DAG, two credit reports and an Orbit audience run, on
the sandbox, with real Airflow.

Run through ``bash scripts/demo.sh`` (which sets up the venv). It uses a fresh Airflow home
(SQLite) under ``.airflow-demo/`` (or ``$LEADPIPE_DEMO_HOME``), starts the API sandbox on a free
loopback port with an account that has NO credits until the third account call, and runs with
``airflow dags test``:

1. ``leadpipe_credit_gated_pull``: the deferrable sensor waits, the trigger sees the credits come
   back, the visitors are pulled to a file;
2. ``leadpipe_daily_credit_report``: the first report, nothing to compare with yet;
3. the sandbox spends credits, as identifications would;
4. ``leadpipe_intent_audience_daily``: an Orbit audience upserted, run through queued -> running ->
   completed while deferred, its people landed in a file;
5. ``leadpipe_daily_credit_report`` again: usage since the first report, a burn rate and when the
   credits run out at that rate, which is before the next reset (the reports are seconds apart), so
   its ``check_runway`` task fails the run: the alert the report exists for.

It prints what the runs pushed to XCom, the two reports as the Leadpipe credits page charts them
(and that page's card, rendered to ``leadpipe-credits.html`` in the Airflow home), and stops the
sandbox. Exits non-zero unless every run ended as described.
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

import pendulum

from leadpipe_sandbox import LeadpipeSandbox

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
    "credits run out",
)
#: Credits the sandbox spends between the two credit reports (as this many identifications would).
SPENT_BETWEEN_REPORTS = 120
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


def dag_runs(dag_id: str) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    """(state, task states, return values) of each run of the DAG, oldest first, from the demo's DB."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.xcom import XComModel

        value_of = XComModel.deserialize_value
    except ImportError:  # Airflow 2.x: the ORM class is XCom itself, deserialized when loaded
        from airflow.models.xcom import XCom as XComModel

        def value_of(row: Any) -> Any:
            return row.value

    found = []
    with create_session() as session:
        for run in session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id)):
            tasks = session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
            )
            rows = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_id,
                    XComModel.run_id == run.run_id,
                    XComModel.key == "return_value",
                )
            )
            found.append(
                (
                    str(run.state),
                    {ti.task_id: str(ti.state) for ti in tasks},
                    {row.task_id: value_of(row) for row in rows},
                )
            )
    return found


def latest_xcoms(dag_id: str) -> tuple[str, dict[str, Any]]:
    """State and return values of the DAG's latest run."""
    state, _, xcoms = dag_runs(dag_id)[-1]
    return state, xcoms


def runway_alert(log: Path) -> str | None:
    """The message ``check_runway`` failed with, from a run's log."""
    found = re.search(r"Leadpipe credits run out at [^\n]*?credits/day", log.read_text())
    return found[0] if found else None


def credits_page(home: Path, conn_id: str, account: dict[str, Any]) -> tuple[list[Any], Path | None]:
    """The credit reports the Leadpipe page charts for ``conn_id``, and its card as an HTML file.

    Read from the demo's metadata DB with the page's own code (Airflow 3.1+), for the demo's report
    DAG (the page itself charts only DAGs whose XCom the signed-in user may read); ``account`` is
    the status the latest report saw (the page itself asks the API live).
    """
    try:
        from airflow_provider_leadpipe.plugins import data, render
    except ImportError:  # the page needs Airflow 3.1+
        return [], None
    try:
        points = data.credit_reports(["leadpipe_daily_credit_report"]).get(conn_id, [])
    except ImportError:  # Airflow 2.x has no XComModel
        return [], None
    card = render.Card(conn_id=conn_id, account=account, reports=points)
    footer = "Written by scripts/demo.py from the demo's credit reports; in Airflow: Browse > Leadpipe."
    path = home / "leadpipe-credits.html"
    path.write_text(render.page([card], title="Leadpipe credits (demo)", footer=footer))
    return points, path


def _when(value: Any) -> str:
    return "-" if value is None else pendulum.parse(str(value)).format("YYYY-MM-DD HH:mm:ss [UTC]")


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

        # A reset date, as a paid plan has: the report compares the projection with it.
        resets_at = pendulum.now("UTC").start_of("month").add(months=1)
        sandbox.set_credits(resets_at=resets_at)
        say("airflow dags test leadpipe_daily_credit_report (the first report: nothing to compare with yet)")
        report_log = HOME / "leadpipe_daily_credit_report.log"
        airflow("dags", "test", "leadpipe_daily_credit_report", env=env, log=report_log)

        sandbox.consume_credits(SPENT_BETWEEN_REPORTS)
        say(f"The sandbox spends {SPENT_BETWEEN_REPORTS} credits, as that many identified visitors would")

        say("airflow dags test leadpipe_intent_audience_daily (upsert >> deferrable run >> people to a file)")
        sandbox.set_run_schedule(queued_polls=1, running_polls=2)
        orbit_log = HOME / "leadpipe_intent_audience_daily.log"
        orbit_conf = json.dumps({"output_dir": str(HOME / "output")})
        airflow("dags", "test", "leadpipe_intent_audience_daily", "-c", orbit_conf, env=env, log=orbit_log)

        say("airflow dags test leadpipe_daily_credit_report (the second report: usage, burn rate, runway)")
        second_log = HOME / "leadpipe_daily_credit_report-2.log"
        airflow("dags", "test", "leadpipe_daily_credit_report", env=env, log=second_log)
        account_calls = sandbox.request_count("/v1/data/account")
        visitor_pages = sandbox.request_count("/v1/data")

    gated_state, gated_xcom = latest_xcoms("leadpipe_credit_gated_pull")
    orbit_state, orbit_xcom = latest_xcoms("leadpipe_intent_audience_daily")
    reports = dag_runs("leadpipe_daily_credit_report")

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
    print(f"    leadpipe_intent_audience_daily: {orbit_state}")
    audience = orbit_xcom.get("upsert_audience") or {}
    landed = orbit_xcom.get("summary") or {}
    print(f"      audience {audience.get('name')!r} ({audience.get('id')}) is {audience.get('status')}")
    print(
        f"      run {landed.get('audience_run_id')} (dataDate {landed.get('data_date')}): "
        f"landed {landed.get('people')} people -> {landed.get('path')}"
    )

    (first_state, _, first_xcom), (second_state, second_tasks, second_xcom) = reports[-2:]
    first = first_xcom.get("credit_report") or {}
    second = second_xcom.get("credit_report") or {}
    alert = runway_alert(second_log)
    print(f"    leadpipe_daily_credit_report, first run: {first_state}")
    print(
        f"      {first.get('remaining')} credits left, burn rate {first.get('daily_burn_rate')} "
        f"(one report, nothing to compare with); check_runway: {first_xcom.get('check_runway')}"
    )
    check = second_tasks.get("check_runway")
    print(f"    leadpipe_daily_credit_report, second run: {second_state} (check_runway {check})")
    rate = second.get("daily_burn_rate")
    elapsed = second.get("elapsed_seconds") or 0
    print(
        f"      credits_used: {second.get('credits_used')} in {elapsed:.0f} s since the first report "
        f"-> daily_burn_rate: {rate:,.0f} credits/day"
        if isinstance(rate, (int, float))
        else f"      daily_burn_rate: {rate}"
    )
    print(
        f"      projected_exhaustion_at: {_when(second.get('projected_exhaustion_at'))}, "
        f"resets_at: {_when(second.get('resets_at'))}, "
        f"runs_out_before_reset: {second.get('runs_out_before_reset')}"
    )
    print(f"      check_runway's alert (your failure notifications send it): {alert}")
    print(
        "      (the reports are seconds apart, so a day's burn is huge; scheduled daily, it is a real rate)"
    )
    points, card = credits_page(HOME, "leadpipe_default", second.get("account") or {})
    if card is not None:
        print(
            f"    the Leadpipe credits page (Airflow 3.1+: Browse > Leadpipe) charts {len(points)} reports:"
        )
        for point in points:
            print(
                f"      {_when(point.observed_at)}: {point.remaining:,.0f} of {point.limit:,.0f} credits left"
            )
        print(f"      its card, rendered from them: {card}")
    print(f"    sandbox saw {account_calls} account calls and {visitor_pages} visitor-page requests")
    print(f"    full logs: {gated}, {report_log}, {orbit_log} and {second_log}")
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s.")
    ok = (
        gated_state == first_state == orbit_state == "success"
        and second_state == "failed"
        and second_tasks.get("credit_report") == "success"
        and second_tasks.get("check_runway") == "failed"
        and alert is not None
    )
    if not ok:
        print("A demo run did not end as described above; see the logs.", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
