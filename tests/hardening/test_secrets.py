"""The API key never leaves the hook: every example DAG, run for real at DEBUG level, leaks it nowhere.

The sandbox gets a distinctive key (a canary). Each example DAG runs with ``dag.test()`` against
the sandbox -- tasks, the deferrable sensor and its trigger (inline), XCom, serialization -- once
successfully and once with every request answered by an error whose body echoes the key (as a
careless proxy or API might). Then every place Airflow keeps or prints anything is searched for
the key: task logs and any other file under AIRFLOW_HOME, the metadata DB file byte for byte, the
XCom, trigger, task-instance and serialized-DAG tables row by row, captured stdout/stderr, all log
records, and the text and repr of every exception raised. Zero hits is the only pass.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from leadpipe_sandbox import Fault
from tests.conftest import DAGS_FOLDER, REPO
from tests.hardening.figures import record
from tests.integration.dag_runs import NO_LOGICAL_DATE, dag_run_output, load_dag, task_states

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

#: The canary. Padded in the connection so the stripped key the hook sends is what must be masked.
CANARY = "sk_live_CANARY_b7e2c91d4fa8063e5d1c"
#: Not leadpipe_visitors_to_postgres: it needs a PostgreSQL server (and defines no DAG without the
#: Postgres provider); integration/test_example_visitors_to_postgres.py searches its output.
EXAMPLE_DAGS = sorted(
    path.stem for path in (REPO / "example_dags").glob("*.py") if path.stem != "leadpipe_visitors_to_postgres"
)


def _run_conf(dag_id: str, tmp_path: Path) -> dict[str, Any]:
    if dag_id == "leadpipe_credit_gated_pull":
        return {"output_dir": str(tmp_path / "out"), "timeframe": "24h", "min_credits": 1}
    if dag_id in ("leadpipe_intent_audience_daily", "leadpipe_audience_as_code", "leadpipe_credit_alerts"):
        return {"output_dir": str(tmp_path / "out")}
    return {}


def _occurrences(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return text.count(CANARY.encode()) + text.count(CANARY.encode("utf-16-le"))
    # The test itself drives the sandbox through its control API, whose URLs name the key
    # (``/_sandbox/keys/<key>/faults``), and httpx logs those calls: they are not the provider's.
    return sum(line.count(CANARY) for line in text.splitlines() if "/_sandbox/" not in line)


def _files_under(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path


def _tables() -> dict[str, list[str]]:
    """Every row of the tables that could hold a value derived from a task's work, as text."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        from airflow.models.xcom import XComModel as XComRow
    except ImportError:  # Airflow 2.x
        from airflow.models.xcom import BaseXCom as XComRow

    texts: dict[str, list[str]] = {"xcom": [], "trigger": [], "task_instance": [], "serialized_dag": []}
    with create_session() as session:
        for row in session.scalars(select(XComRow)):
            texts["xcom"].append(f"{row.task_id} {row.key} {row.value!r}")
        for row in session.scalars(select(Trigger)):
            texts["trigger"].append(f"{row.classpath} {row.kwargs!r} {row.encrypted_kwargs!r}")
        for row in session.scalars(select(TaskInstance)):
            texts["task_instance"].append(f"{row.task_id} {row.next_method} {row.next_kwargs!r} {row.state}")
        for row in session.scalars(select(SerializedDagModel)):
            texts["serialized_dag"].append(json.dumps(row.data, default=str))
    return texts


class Collected:
    """Every exception, and every log record with its arguments, seen while the DAGs ran."""

    def __init__(self) -> None:
        self.exceptions: list[BaseException] = []
        self.records: list[str] = []


class _Everything(logging.Handler):
    def __init__(self, collected: Collected) -> None:
        super().__init__(logging.DEBUG)
        self.collected = collected

    def emit(self, record: logging.LogRecord) -> None:
        self.collected.records.append(f"{record.getMessage()} {record.args!r} {record.exc_text or ''}")
        if record.exc_info and record.exc_info[1] is not None:
            self.collected.exceptions.append(record.exc_info[1])


@pytest.fixture
def canary_sandbox(leadpipe_sandbox, monkeypatch):
    leadpipe_sandbox.configure_key(CANARY, scenario="sandbox")
    leadpipe_sandbox.api_key = CANARY  # the fixture restores the default key afterwards
    conn = json.loads(leadpipe_sandbox.connection_json(CANARY))
    conn["password"] = f"  {CANARY}\n"  # as pasted from a password manager
    conn["extra"] = {"max_retries": 0}  # error runs fail at once instead of backing off
    monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("LEADPIPE_EXAMPLE_POKE_INTERVAL", "0.2")
    monkeypatch.setenv("LEADPIPE_EXAMPLE_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("LEADPIPE_EXAMPLE_RETRY_DELAY", "0")  # leadpipe_credit_alerts' pull retries
    return leadpipe_sandbox


@pytest.fixture
def example_audience(canary_sandbox, monkeypatch):
    """The audience leadpipe_audience_on_new_run lands a completed run of (read at parse time)."""
    audience = canary_sandbox.create_audience("Example audience", people=3, api_key=CANARY)
    canary_sandbox.add_daily_run(audience["id"], api_key=CANARY)
    monkeypatch.setenv("LEADPIPE_EXAMPLE_AUDIENCE_ID", audience["id"])


@pytest.fixture
def debug_everything(monkeypatch) -> Iterator[Collected]:
    """DEBUG on every logger (Airflow's, httpx's, httpcore's, ours), and a handler keeping it all."""
    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG")
    collected = Collected()
    handler = _Everything(collected)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    loggers = [
        logging.getLogger(name) for name in ("airflow", "httpx", "httpcore", "airflow.providers.leadpipe")
    ]
    old = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield collected
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for logger, level in zip(loggers, old, strict=True):
            logger.setLevel(level)


def test_example_dags_never_leak_the_key(
    airflow_db, canary_sandbox, example_audience, debug_everything, capfd, caplog, tmp_path
):
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    runs: list[str] = []
    hits: dict[str, int] = {}
    rows: dict[str, int] = {}

    def search_tables() -> None:
        # After every run: dag.test() without a logical date deletes the previous such run (and
        # its XCom), so the tables are read while each run's rows still exist.
        for table, texts in _tables().items():
            hits[f"table {table}"] = hits.get(f"table {table}", 0) + sum(_occurrences(t) for t in texts)
            rows[table] = max(rows.get(table, 0), len(texts))

    for dag_id in EXAMPLE_DAGS:
        dag = load_dag(dag_id)
        # 1. A good run: every task succeeds (deferrable sensor included).
        run = dag.test(run_conf=_run_conf(dag_id, tmp_path), **NO_LOGICAL_DATE)
        assert run.state == "success", (dag_id, task_states(run))
        runs.append(run.state)
        search_tables()
        # 2. A failing run: the API answers with error bodies quoting the key -- two 500s (transient:
        #    the sensor defers and its trigger logs the reason), then 401s (fail fast).
        canary_sandbox.queue_faults(
            Fault.error(status=500, count=2, message=f"internal error for key {CANARY}"),
            Fault.error(status=401, count=100, message=f"Invalid API key {CANARY}"),
        )
        try:
            run = dag.test(run_conf=_run_conf(dag_id, tmp_path), **NO_LOGICAL_DATE)
        except Exception as exc:  # dag.test may re-raise the task's error
            debug_everything.exceptions.append(exc)
        else:
            assert run.state == "failed", (dag_id, task_states(run))
            runs.append(run.state)
        search_tables()
        canary_sandbox.clear_faults()

    requests = canary_sandbox.request_count(api_key=CANARY)
    # The key-quoting error bodies really reached the client (so redaction was exercised).
    assert canary_sandbox.request_count(api_key=CANARY, status=500) > 0
    assert canary_sandbox.request_count(api_key=CANARY, status=401) > 0
    # The searched tables were not empty: XCom of the good runs, the sensor's trigger, the DAGs.
    # (Airflow 2.x's dag.test() runs the trigger in line without a trigger row; dag.test() writes
    # serialized DAGs from 3.1 on.)
    assert rows["xcom"] > 0, rows
    if AIRFLOW_V_3_0_PLUS:
        assert rows["trigger"] > 0, rows
    if AIRFLOW_V_3_1_PLUS:
        assert rows["serialized_dag"] >= len(EXAMPLE_DAGS), rows

    captured = capfd.readouterr()  # dag.test() prints task logs (structlog) to stdout
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        # Airflow 3.0's task supervisor prints each masked secret in clear at DEBUG (its own lines).
        captured = type(captured)(dag_run_output(captured.out), dag_run_output(captured.err))
    hits["stdout/stderr (task logs)"] = _occurrences(captured.out) + _occurrences(captured.err)
    hits["caplog"] = _occurrences(caplog.text)
    hits["log records"] = sum(_occurrences(text) for text in debug_everything.records)
    hits["exceptions"] = sum(_occurrences(f"{exc}\n{exc!r}") for exc in debug_everything.exceptions)
    home = Path(os.environ["AIRFLOW_HOME"])
    files = [path for path in _files_under(home) if path.parent != DAGS_FOLDER]
    hits["files under AIRFLOW_HOME (log files, metadata DB + WAL)"] = sum(
        _occurrences(path.read_bytes()) for path in files
    )
    hits["files under tmp (pulled data)"] = sum(_occurrences(p.read_bytes()) for p in _files_under(tmp_path))

    assert hits == dict.fromkeys(hits, 0), hits
    assert any(path.suffix == ".db" for path in files), "the metadata DB file was searched"
    record(
        "secrets",
        f"{len(EXAMPLE_DAGS)} example DAGs x (ok + key-quoting 500/401), DEBUG: {len(hits)} places searched",
        requests=requests,
        hits=sum(hits.values()),
        events=len(runs),
        elapsed=time.monotonic() - started,
    )


def test_the_key_sent_is_registered_with_the_secrets_masker(leadpipe_sandbox, monkeypatch):
    """The stripped key the hook sends (not only the padded password Airflow itself masks) is
    registered with the secrets masker as soon as the hook reads the connection, sync and async."""
    import asyncio

    from airflow.providers.common.compat.sdk import redact

    for path in ("sync", "async"):
        key = f"sk_live_MASK_{path}_{uuid.uuid4().hex}"  # fresh: the masker is process-wide
        leadpipe_sandbox.configure_key(key, scenario="sandbox")
        conn = {**json.loads(leadpipe_sandbox.connection_json(key)), "password": f" {key}\t"}
        monkeypatch.setenv("AIRFLOW_CONN_LEADPIPE_MASK", json.dumps(conn))
        # Not masked as a whole before the hook read it (other tests' short secrets, e.g. a JSON
        # string extra on Airflow 2.11, may mask a few characters inside it: not the point here).
        assert redact(f"key={key}") != "key=***"
        hook = LeadpipeHook("leadpipe_mask")
        settings = hook.settings if path == "sync" else asyncio.run(hook.aget_settings())
        assert settings.api_key == key
        assert redact(f"x-api-key: {key}") == "x-api-key: ***", path


def test_orbit_people_reach_only_the_file_never_logs_xcom_trigger_rows_or_exceptions(
    airflow_db, canary_sandbox, debug_everything, capfd, caplog, tmp_path
):
    """The people of an audience run are personal data: their e-mail addresses must appear in the
    landed file and nowhere else (nor may the key), for a good run and for a run that fails."""
    from tests.integration.dag_runs import xcom_value
    from tests.orbit import api_people

    caplog.set_level(logging.DEBUG)
    canary_sandbox.set_run_schedule(queued_polls=1, running_polls=1, api_key=CANARY)
    dag = load_dag("leadpipe_intent_audience_daily")
    run = dag.test(run_conf={"output_dir": str(tmp_path / "out")}, **NO_LOGICAL_DATE)
    assert run.state == "success", task_states(run)
    audience_id = xcom_value(run, "upsert_audience")["id"]
    run_id = xcom_value(run, "run_audience", key="audience_run_id")
    tables = _tables()  # before the next dag.test() replaces this run's rows
    people = api_people(canary_sandbox, audience_id, run_id, api_key=CANARY)
    emails = sorted(
        {p[field] for p in people for field in ("email", "businessEmail", "personalEmail") if p.get(field)}
    )
    assert len(emails) > 10

    # A failing run too: the next run fails, and its error message travels through the trigger.
    canary_sandbox.fail_next_run(audience_id, error_code="MATERIALIZATION_FAILED", api_key=CANARY)
    try:
        failed = dag.test(run_conf={"output_dir": str(tmp_path / "out2")}, **NO_LOGICAL_DATE)
    except Exception as exc:  # dag.test may re-raise the task's error
        debug_everything.exceptions.append(exc)
    else:
        assert failed.state == "failed", task_states(failed)
    for table, texts in _tables().items():
        tables[table] = tables[table] + texts

    def hits(text: str) -> int:
        return sum(text.count(email) for email in emails) + _occurrences(text)

    captured = capfd.readouterr()
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        # Airflow 3.0's task supervisor prints each masked secret in clear at DEBUG (its own lines).
        captured = type(captured)(dag_run_output(captured.out), dag_run_output(captured.err))
    places = {
        "stdout/stderr (task logs)": hits(captured.out + captured.err),
        "caplog": hits(caplog.text),
        "log records": sum(hits(text) for text in debug_everything.records),
        "exceptions": sum(hits(f"{exc}\n{exc!r}") for exc in debug_everything.exceptions),
        **{f"table {table}": sum(hits(text) for text in texts) for table, texts in tables.items()},
    }
    home = Path(os.environ["AIRFLOW_HOME"])
    places["files under AIRFLOW_HOME"] = sum(
        hits(path.read_bytes().decode("utf-8", "replace"))
        for path in _files_under(home)
        if path.parent != DAGS_FOLDER
    )
    assert places == dict.fromkeys(places, 0), places
    assert tables["xcom"], "the XCom rows were searched"
    if AIRFLOW_V_3_0_PLUS:
        assert tables["trigger"], "the trigger rows were searched"
    [landed] = (tmp_path / "out" / "orbit").iterdir()
    import gzip

    assert all(email in gzip.decompress(landed.read_bytes()).decode() for email in emails[:5])
