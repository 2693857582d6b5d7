"""leadpipe_visitors_to_postgres with dag.test() against the sandbox and a real PostgreSQL server.

Three daily runs with overlapping windows land each visitor once: the table holds one row per
distinct e-mail pulled, its first record, computed here from the sandbox's own data over plain
HTTP and read back with psycopg2 (not through the provider or the DAG's counts). A re-run of a day
lands its file again and changes no row. No e-mail reaches the XCom or the output.
"""

from __future__ import annotations

import gzip
import importlib.util
import inspect
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pendulum
import pytest
from airflow.exceptions import AirflowException

from tests.conftest import REPO
from tests.distributed.services import Postgres, postgres_bindir
from tests.integration.dag_runs import (
    EXAMPLE_DAGS,
    api_records,
    dag_run_output,
    dagbag,
    example_task_ids,
    load_dag,
    task_log_to_this_tests_stdout,
    task_states,
    xcom_value,
)
from tests.integration.test_visitors_only_new_dag import new_by_email

pytestmark = pytest.mark.integration

DAG_ID = "leadpipe_visitors_to_postgres"
TASKS = {"create_table", "pull_new_visitors", "load_into_postgres"}
TABLE = "leadpipe_visitors"
HAS_PROVIDER = importlib.util.find_spec("airflow.providers.postgres") is not None
needs_provider = pytest.mark.skipif(
    not HAS_PROVIDER,
    reason="needs apache-airflow-providers-postgres (the `distributed` extra, installed in the "
    "Airflow 3.3.2 venv by scripts/test.sh, not in the version-matrix venvs)",
)


@needs_provider
def test_parses_without_import_errors():
    assert example_task_ids(DAG_ID) == TASKS


def test_without_the_postgres_provider_the_file_parses_and_defines_no_dag(monkeypatch):
    # A None entry in sys.modules makes `import` of that module raise ImportError.
    for module in ("airflow.providers.postgres.hooks.postgres", "airflow.providers.common.sql.operators.sql"):
        monkeypatch.setitem(sys.modules, module, None)
    bag = dagbag(EXAMPLE_DAGS / f"{DAG_ID}.py")
    assert not bag.import_errors, bag.import_errors
    assert DAG_ID not in bag.dag_ids


@pytest.fixture(scope="module")
def postgres(request, tmp_path_factory) -> Iterator[Postgres]:
    """A throwaway PostgreSQL server (Debian's binaries) for this module, stopped at its end."""
    if not HAS_PROVIDER:
        pytest.skip("needs apache-airflow-providers-postgres (see test_parses_without_import_errors)")
    if postgres_bindir() is None:  # as tests/distributed does: Debian's package, when it can
        subprocess.run(["bash", str(REPO / "scripts" / "install_services.sh")], check=False)
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server installed (scripts/install_services.sh installs Debian's)")
    server = Postgres(tmp_path_factory.mktemp("postgres") / "postgres.log", bindir)
    request.addfinalizer(server.stop)
    server.start()
    yield server


def execute(server: Postgres, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` with psycopg2 directly (not through the provider), committed; its rows if any."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=server.port, user="airflow", dbname="postgres")
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def table_rows(server: Postgres) -> dict[str, tuple[Any, ...]]:
    """``{email: (record, landed_at)}`` of every row."""
    rows = execute(server, f"SELECT email, record, landed_at FROM {TABLE}")
    return {email: (record, landed_at) for email, record, landed_at in rows}


@pytest.fixture
def db(postgres, monkeypatch) -> Iterator[Postgres]:
    """The server, without the table, as the DAG's ``leadpipe_postgres`` connection."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEADPIPE_POSTGRES", f"postgresql://airflow@127.0.0.1:{postgres.port}/postgres"
    )
    execute(postgres, f"DROP TABLE IF EXISTS {TABLE}")
    yield postgres
    execute(postgres, f"DROP TABLE IF EXISTS {TABLE}")


def run_of_day(dag: Any, day: int, timeframe: str, out_dir: Any) -> Any:
    """The DAG run of 2026-03-<day>; its run id depends on the day only, as a cleared run keeps it."""
    when = pendulum.datetime(2026, 3, day, tz="UTC")
    parameters = inspect.signature(dag.test).parameters
    after = {"run_after": when} if "run_after" in parameters else {}
    date = "logical_date" if "logical_date" in parameters else "execution_date"  # 2.x: execution_date
    conf = {"output_dir": str(out_dir), "timeframe": timeframe}
    return dag.test(**{date: when}, run_conf=conf, **after)


def test_three_overlapping_daily_runs_land_each_visitor_once_and_a_rerun_adds_nothing(
    airflow_db, leadpipe_sandbox, db, monkeypatch, tmp_path, capsys
):
    task_log_to_this_tests_stdout(monkeypatch)
    postgres = db
    # 6,000 visits of 2,000 people over 180 days: people come back, within a window and across them.
    # The windows end at a frozen time: every pull and the test's own reads see the same records
    # (with the clock running, a visit 43 minutes apart from the next can leave a window mid-test).
    leadpipe_sandbox.update_key({"visitors": 6_000, "visitorsAsOf": pendulum.now("UTC").isoformat()})
    dag = load_dag(DAG_ID)
    expected: dict[str, dict] = {}  # email -> the first record pulled for it
    pulls, loads, xcoms = [], [], []
    # Each window holds the last; 90 days hold people who came twice in it (past the first 60 days).
    for day, timeframe in ((1, "7d"), (2, "14d"), (3, "90d")):
        run = run_of_day(dag, day, timeframe, tmp_path)
        assert run.state == "success", task_states(run)
        pulled, loaded = xcom_value(run, "pull_new_visitors"), xcom_value(run, "load_into_postgres")
        kept, _, _ = new_by_email(api_records(leadpipe_sandbox, timeframe=timeframe), set(expected))
        expected |= {record["email"]: record for record in kept}
        rows = table_rows(postgres)
        assert {email: record for email, (record, _) in rows.items()} == expected
        assert loaded["inserted"] == pulled["records"] == len(kept) and loaded["updated"] == 0
        pulls.append(pulled)
        loads.append(loaded)
        xcoms += [pulled, loaded]
    # The overlap is real: repeats within a pull and people landed by an earlier day were skipped.
    assert pulls[2]["duplicates_skipped"] > 0
    assert pulls[1]["seen_before"] > 0 and pulls[2]["seen_before"] > 0
    assert all(p["records"] > 0 for p in pulls)
    before = table_rows(postgres)

    # Day 2 again (as when cleared): the same file is pulled and loaded again, and no row changes.
    again = run_of_day(dag, 2, "14d", tmp_path)
    assert again.state == "success", task_states(again)
    pulled, loaded = xcom_value(again, "pull_new_visitors"), xcom_value(again, "load_into_postgres")
    assert pulled["records"] == loaded["staged"] == pulls[1]["records"] > 0
    assert (loaded["inserted"], loaded["updated"]) == (0, 0)
    assert table_rows(postgres) == before  # landed_at included: no row was even rewritten
    xcoms += [pulled, loaded]

    # Paths and counts only: no e-mail in any XCom or in the run's output, nor the API key.
    stored = json.dumps(xcoms)
    assert not [email for email in expected if email in stored]
    captured = capsys.readouterr()
    output = dag_run_output(captured.out + captured.err)
    assert "load_into_postgres" in output
    assert not [email for email in expected if email in output]
    assert leadpipe_sandbox.api_key not in output


def test_a_load_the_table_refuses_changes_nothing_and_quotes_no_record(
    airflow_db, leadpipe_sandbox, db, monkeypatch, tmp_path, capsys
):
    """PostgreSQL quotes the failing row in its error ("Failing row contains (...)"): not in the log."""
    task_log_to_this_tests_stdout(monkeypatch)
    emails = sorted({record["email"] for record in api_records(leadpipe_sandbox, timeframe="7d")}, key=len)
    # The user's own rule on the table, which the longer half of the e-mail addresses break.
    limit = len(emails[len(emails) // 2])
    assert len(emails[0]) < limit, "some rows pass the rule (and must be rolled back)"
    execute(
        db,
        f"CREATE TABLE {TABLE} (email text PRIMARY KEY, visited_at timestamptz, record jsonb NOT NULL,"
        f" landed_at timestamptz NOT NULL DEFAULT now(), CHECK (length(email) < {limit}))",
    )
    dag = load_dag(DAG_ID)
    dag.get_task("load_into_postgres").retries = 0  # its 3 retries wait 5 minutes each
    run = run_of_day(dag, 10, "7d", tmp_path)
    assert task_states(run) == {
        "create_table": "success",
        "pull_new_visitors": "success",
        "load_into_postgres": "failed",
    }
    assert table_rows(db) == {}  # the rows before the failing one were rolled back too
    captured = capsys.readouterr()
    output = dag_run_output(captured.out + captured.err)
    assert not [email for email in emails if email in output]
    assert f"into {TABLE} failed (CheckViolation, SQLSTATE 23514); the table is unchanged" in output
    assert "VisitorsLoadError" in output


def example_module() -> Any:
    spec = importlib.util.spec_from_file_location("visitors_to_postgres", EXAMPLE_DAGS / f"{DAG_ID}.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def jsonl_gz(path: Any, records: list[dict]) -> str:
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    return str(path)


def test_a_record_without_email_is_skipped_and_an_odd_visit_time_left_empty(db, tmp_path):
    """The record schema is not published: one odd record must not fail the day's load."""
    example = example_module()
    execute(db, example.CREATE_TABLE)
    path = jsonl_gz(
        tmp_path / "day.jsonl.gz",
        [
            {"email": "a@example.com", "visit": {"visitedAt": "2026-03-01T10:00:00Z"}},
            {"email": None, "visit": {"visitedAt": "2026-03-01T11:00:00Z"}},
            {"name": "no e-mail key"},
            {"email": "b@example.com", "visit": {"visitedAt": "last Tuesday"}},
            {"email": "c@example.com", "visit": {"visitedAt": "2026-02-30T10:00:00Z"}},  # no such day
        ],
    )
    loaded = example.load_file(path)
    assert (loaded["staged"], loaded["skipped"], loaded["inserted"], loaded["updated"]) == (5, 2, 3, 0)
    rows = dict(execute(db, f"SELECT email, visited_at IS NOT NULL FROM {TABLE}"))
    assert rows == {"a@example.com": True, "b@example.com": False, "c@example.com": False}


def test_a_refused_load_raises_a_typed_error_chained_to_nothing(db, tmp_path):
    """The database's error quotes the failing row: it is neither the message, nor the cause, nor
    the context of the error the task fails with (a traceback prints all three)."""
    example = example_module()
    execute(
        db,
        f"CREATE TABLE {TABLE} (email text PRIMARY KEY, visited_at timestamptz, record jsonb NOT NULL,"
        " landed_at timestamptz NOT NULL DEFAULT now(), CHECK (email <> 'secret.person@example.com'))",
    )
    path = jsonl_gz(tmp_path / "day.jsonl.gz", [{"email": "secret.person@example.com"}])
    with pytest.raises(example.VisitorsLoadError) as caught:
        example.load_file(path)
    error = caught.value
    assert isinstance(error, AirflowException)
    assert error.__cause__ is None and error.__context__ is None
    assert "secret.person" not in str(error) and "SQLSTATE 23514" in str(error)
    assert execute(db, f"SELECT count(*) FROM {TABLE}") == [(0,)]


def test_the_copy_reads_each_json_line_whole_with_psycopg2_too(db):
    """The load's COPY through psycopg2's ``copy_expert`` (the hook's driver with SQLAlchemy 1.4,
    as on Airflow 2.11; the DAG runs above use psycopg 3): quotes, backslashes, tabs, commas and
    non-ASCII text arrive as written."""
    import psycopg2

    example = example_module()
    records = [
        {"email": "a@example.com", "note": 'say "hi",\tthen \\ leave', "name": "Zoë 😀"},
        {"email": "b@example.com", "note": "line\nbreak; \u0001\u0002 control", "n": [1, 2.5, None]},
    ]
    data = gzip.compress("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
    connection = psycopg2.connect(host="127.0.0.1", port=db.port, user="airflow", dbname="postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute(example.STAGE)
            example.copy_into(cursor, example.COPY, gzip.GzipFile(fileobj=io.BytesIO(data)))
            cursor.execute(f"SELECT line FROM {example.STAGE_TABLE} ORDER BY n")
            assert [line for (line,) in cursor.fetchall()] == records
    finally:
        connection.rollback()
        connection.close()
