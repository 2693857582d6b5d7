"""New visitors landed in a PostgreSQL table, one row per person, without duplicates on a re-run.

1. `create_table` (common.sql's `SQLExecuteQueryOperator`) creates `leadpipe_visitors` if it is
   missing: `email` (the key), `visited_at`, the whole `record` as `jsonb`, and `landed_at`. It
   runs first, so an unreachable database stops the run before anything is pulled.
2. `pull_new_visitors` writes the visitors of `params.timeframe` this task has not landed before
   (`only_new=True`, one per e-mail: `dedupe_keys=["email"]`) as gzipped JSON Lines to
   `params.output_dir`, named after the run id. Its XCom holds the file's path and counts only.
3. `load_into_postgres` (the Postgres hook) reads that path from the XCom -- never the records --
   and, in one transaction, COPYs the file into a temporary staging table, then upserts it into
   `leadpipe_visitors` (`INSERT ... ON CONFLICT (email) DO UPDATE`, only where the record changed).
   A record without an e-mail is not loaded (counted in `skipped`); a `visitedAt` that is not a
   time PostgreSQL reads leaves `visited_at` empty. A failed load leaves the table as it was and raises
   `VisitorsLoadError` (no database text: PostgreSQL quotes the failing row, e-mail included).
   Its XCom: `{"path", "staged", "skipped", "inserted", "updated", "table"}`.

Daily pulls with overlapping windows (a 7-day window every day) therefore land each person once.
Re-running the load alone changes nothing. A cleared run pulls its window again (from the time it
runs) into the same file: it adds no duplicate row, and may update rows with newer visits.

**A load that fails for good** (its retries spent): the pull has already recorded those visitors
as landed, so later runs will not pull them again. Their file stays at the pulled path: clear
`load_into_postgres` of that run once the cause is fixed, and it loads the same file.
Runs triggered through the REST API (no logical date) work: nothing depends on the logical date.

Needs a `leadpipe` connection named `leadpipe_default` and a `postgres` connection named
`leadpipe_postgres` (`AIRFLOW_CONN_LEADPIPE_POSTGRES=postgresql://user:pass@host:5432/db` will
do), and the Postgres provider (`pip install apache-airflow-providers-postgres`, which brings
common.sql). Without that provider this file defines no DAG, and says so in the parse log.
`output_dir` must be a folder the load task can read (a local path on a single machine; an
object store such as `s3://...`, with its connection in `STORAGE_CONN_ID`, used by both tasks).
"""

from __future__ import annotations

import gzip
import logging
from contextlib import suppress
from datetime import timedelta
from typing import Any

import pendulum

try:
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task

from airflow.exceptions import AirflowException
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator

try:
    from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
    from airflow.providers.postgres.hooks.postgres import PostgresHook
except ImportError:  # the Postgres provider is not installed: no DAG (see the docstring)
    SQLExecuteQueryOperator = PostgresHook = None

POSTGRES_CONN_ID = "leadpipe_postgres"
#: The object store's connection for reading the pulled file (None: local files, or the default).
STORAGE_CONN_ID: str | None = None
TABLE = "leadpipe_visitors"
#: The load's temporary staging table (a temporary table lives in no schema of yours).
STAGE_TABLE = "leadpipe_visitors_stage"

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    email      text PRIMARY KEY,
    visited_at timestamptz,
    record     jsonb NOT NULL,
    landed_at  timestamptz NOT NULL DEFAULT now()
)
"""
# One JSON document per line: CSV with a quote and a delimiter that JSON never leaves unescaped
# (control characters), so COPY takes each line whole, without quote or backslash processing.
STAGE = f"""
CREATE TEMPORARY TABLE {STAGE_TABLE} (
    n    bigint GENERATED ALWAYS AS IDENTITY,
    line jsonb NOT NULL
) ON COMMIT DROP
"""
# The file is UTF-8 whatever the database's own encoding: said, so nothing is decoded as LATIN1.
COPY = (
    f"COPY {STAGE_TABLE} (line) FROM STDIN "
    "WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02', ENCODING 'UTF8')"
)
# The record schema is not published: a visitedAt that is not a time PostgreSQL reads is stored as
# NULL rather than failing the whole day's load. A function of this session only (pg_temp), as
# PostgreSQL < 16 has no pg_input_is_valid.
SAFE_TIMESTAMP = """
CREATE FUNCTION pg_temp.leadpipe_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$
"""
# The first record of a key in the file wins (only_new writes each key once anyway); a record
# without an e-mail is skipped; a row whose record is unchanged is not touched. RETURNING tells
# inserted rows (xmax = 0) from updated ones.
UPSERT = f"""
INSERT INTO {TABLE} AS target (email, visited_at, record)
SELECT DISTINCT ON (line ->> 'email')
       line ->> 'email', pg_temp.leadpipe_timestamptz(line -> 'visit' ->> 'visitedAt'), line
FROM {STAGE_TABLE}
WHERE line ->> 'email' IS NOT NULL
ORDER BY line ->> 'email', n
ON CONFLICT (email) DO UPDATE
    SET visited_at = EXCLUDED.visited_at, record = EXCLUDED.record, landed_at = now()
    WHERE target.record IS DISTINCT FROM EXCLUDED.record
RETURNING (xmax = 0) AS inserted
"""

log = logging.getLogger(__name__)


class VisitorsLoadError(AirflowException):
    """The pulled file could not be loaded; the table is unchanged."""


def plain_cursor(connection: Any) -> Any:
    """A cursor whose rows are tuples, whatever ``cursor`` the connection's extra asks for."""
    if hasattr(connection, "row_factory"):  # psycopg 3
        from psycopg.rows import tuple_row

        return connection.cursor(row_factory=tuple_row)
    import psycopg2.extensions

    return connection.cursor(cursor_factory=psycopg2.extensions.cursor)


def copy_into(cursor: Any, sql: str, stream: Any) -> None:
    """COPY ... FROM STDIN from a binary stream, with psycopg2 or psycopg 3 (the hook uses either)."""
    if hasattr(cursor, "copy_expert"):  # psycopg2
        cursor.copy_expert(sql, stream)
        return
    with cursor.copy(sql) as copy:  # psycopg 3
        while chunk := stream.read(1 << 16):
            copy.write(chunk)


def load_file(path: str) -> dict[str, Any]:
    """COPY the JSON Lines file at ``path`` into staging and upsert it into TABLE, in one transaction.

    A database error becomes a :class:`VisitorsLoadError` naming its class and SQLSTATE only, raised
    outside the handler so the error (whose text quotes the offending row) is not chained to it.
    """
    source = ObjectStoragePath(path, conn_id=STORAGE_CONN_ID)
    connection = PostgresHook(postgres_conn_id=POSTGRES_CONN_ID).get_conn()
    failure: str | None = None
    try:
        cursor = plain_cursor(connection)
        with source.open("rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if source.name.endswith(".gz") else raw
            try:
                cursor.execute(STAGE)
                cursor.execute(SAFE_TIMESTAMP)
                copy_into(cursor, COPY, stream)
                cursor.execute(f"SELECT count(*) FROM {STAGE_TABLE}")
                (staged,) = cursor.fetchone()
                cursor.execute(f"SELECT count(*) FROM {STAGE_TABLE} WHERE line ->> 'email' IS NULL")
                (skipped,) = cursor.fetchone()
                cursor.execute(UPSERT)
                changed = [bool(inserted) for (inserted,) in cursor.fetchall()]
            except Exception as error:
                state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
                failure = f"{type(error).__name__}, SQLSTATE {state}"
                with suppress(Exception):  # the rollback's own error would quote nothing new
                    connection.rollback()
        if failure is None:
            try:
                connection.commit()
            except Exception as error:  # e.g. the connection dropped: the outcome is unknown
                failure = f"commit: {type(error).__name__}"
    finally:
        connection.close()
    if failure is not None:
        outcome = (
            "whether the table has it is unknown; loading the file again is safe"
            if failure.startswith("commit:")
            else "the table is unchanged"
        )
        raise VisitorsLoadError(f"Loading {path} into {TABLE} failed ({failure}); {outcome}")
    inserted = sum(changed)
    return {
        "path": path,
        "staged": staged,
        "skipped": skipped,
        "inserted": inserted,
        "updated": len(changed) - inserted,
    }


@dag(
    dag_id="leadpipe_visitors_to_postgres",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"timeframe": "7d", "output_dir": "/tmp/leadpipe-example"},
    tags=["leadpipe", "example"],
    doc_md=__doc__,
)
def leadpipe_visitors_to_postgres():
    create_table = SQLExecuteQueryOperator(
        task_id="create_table", conn_id=POSTGRES_CONN_ID, sql=CREATE_TABLE, do_xcom_push=False
    )
    pull = LeadpipeVisitorsToStorageOperator(
        task_id="pull_new_visitors",
        # Named after the run: a cleared run writes (and loads) the same file again.
        path="{{ params.output_dir }}/visitors/{{ run_id | replace(':', '-') | replace('+', '_') }}.jsonl.gz",
        timeframe="{{ params.timeframe }}",
        storage_conn_id=STORAGE_CONN_ID,
        only_new=True,
        dedupe_keys=["email"],  # the visitor's natural key, and the table's
    )

    # A database that is briefly away: the load tries again (the pulled file is kept).
    @task(multiple_outputs=False, retries=3, retry_delay=timedelta(minutes=5))
    def load_into_postgres(pulled: dict[str, Any]) -> dict[str, Any]:
        """The pulled file into TABLE: the path and counts come through XCom, the records never do."""
        loaded = load_file(pulled["path"])
        log.info(
            "%s: %d staged, %d skipped (no e-mail), %d inserted, %d updated",
            TABLE,
            loaded["staged"],
            loaded["skipped"],
            loaded["inserted"],
            loaded["updated"],
        )
        return {**loaded, "table": TABLE}

    create_table >> pull
    load_into_postgres(pull.output)


if PostgresHook is not None:
    leadpipe_visitors_to_postgres()
else:
    log.warning("leadpipe_visitors_to_postgres is not defined: install apache-airflow-providers-postgres")
