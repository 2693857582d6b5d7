"""What the credits page shows, read inside the API server: connections, live status, reports.

* :func:`leadpipe_conn_ids`: every ``leadpipe`` connection in the metadata DB and in
  ``AIRFLOW_CONN_*`` variables of the API server's environment (secrets backends cannot be
  listed, so connections that live only there do not appear).
* :func:`fetch_statuses`: the account status of every connection at once, each with a short
  timeout and no retries, cached for :data:`CACHE_SECONDS`; a connection that fails shows its
  typed, redacted error (the hook redacts the key from every message it raises).
* :func:`credit_reports`: the XCom of ``LeadpipeCreditReportOperator`` tasks of the DAGs the
  caller names (:func:`report_dag_ids` lists those that have any), newest first.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeError
from airflow_provider_leadpipe.plugins.render import ReportPoint

#: How long one connection's answer is reused (the page says so).
CACHE_SECONDS = 15.0
#: Per-request timeout for the page's account calls, and the most one card may take in all.
REQUEST_TIMEOUT = 1.5
CARD_TIMEOUT = 1.8
#: How many reports per connection the chart shows.
MAX_REPORTS = 60
REPORT_OPERATOR = "LeadpipeCreditReportOperator"

# The hook's calls are synchronous (its connection lookup is the one the API server itself uses
# for the Test button); a dedicated pool runs them side by side without starving the server's
# own default executor.
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="leadpipe-credits")


@dataclass(frozen=True)
class Status:
    """One connection's live answer: the account dict, or a typed error."""

    account: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None


_cache: dict[str, tuple[float, Status]] = {}
_cache_lock = threading.Lock()


def leadpipe_conn_ids() -> list[str]:
    """Sorted ids of the ``leadpipe`` connections in the metadata DB and the environment."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ids = set(session.scalars(select(Connection.conn_id).where(Connection.conn_type == "leadpipe")))
    ids.update(_env_conn_ids(os.environ))
    return sorted(ids)


def _env_conn_ids(environ: dict[str, str] | os._Environ[str]) -> Iterable[str]:
    for name, value in environ.items():
        if not name.startswith("AIRFLOW_CONN_"):
            continue
        text = value.strip()
        if text.startswith("{"):
            try:
                conn_type = json.loads(text).get("conn_type")
            except (ValueError, AttributeError):
                continue
        else:
            conn_type = text.split("://", 1)[0] if "://" in text else None
        if conn_type == "leadpipe":
            yield name.removeprefix("AIRFLOW_CONN_").lower()


def _fetch_one(conn_id: str) -> Status:
    from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook

    try:
        with LeadpipeHook(leadpipe_conn_id=conn_id, timeout=REQUEST_TIMEOUT, max_retries=0) as hook:
            return Status(account=hook.get_account_status().to_dict())
    except LeadpipeError as exc:
        return Status(error=str(exc), error_type=type(exc).__name__)
    except Exception as exc:  # the connection lookup itself (Airflow's errors): name, never echo
        return Status(error=f"could not use the connection ({type(exc).__name__})", error_type="Error")


async def fetch_statuses(conn_ids: list[str], *, now: float | None = None) -> dict[str, Status]:
    """Every connection's status, concurrently; fresh cache entries are reused."""
    now = time.monotonic() if now is None else now
    result: dict[str, Status] = {}
    with _cache_lock:
        for conn_id in conn_ids:
            cached = _cache.get(conn_id)
            if cached and now - cached[0] < CACHE_SECONDS:
                result[conn_id] = cached[1]
    missing = [conn_id for conn_id in conn_ids if conn_id not in result]
    loop = asyncio.get_running_loop()

    async def one(conn_id: str) -> Status:
        try:
            return await asyncio.wait_for(loop.run_in_executor(_POOL, _fetch_one, conn_id), CARD_TIMEOUT)
        except asyncio.TimeoutError:
            return Status(error=f"no answer within {CARD_TIMEOUT:g} s", error_type="Timeout")

    for conn_id, status in zip(missing, await asyncio.gather(*(one(c) for c in missing)), strict=True):
        result[conn_id] = status
        with _cache_lock:
            _cache[conn_id] = (now, status)
    return result


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def report_dag_ids() -> list[str]:
    """Sorted ids of the DAGs that have pushed a credit report."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return sorted(set(session.scalars(_report_query(select(_xcom_model().dag_id)).distinct())))


def credit_reports(dag_ids: Collection[str], limit: int = 2000) -> dict[str, list[ReportPoint]]:
    """Reports of the DAGs ``dag_ids`` per connection id, oldest first, at most
    :data:`MAX_REPORTS` each (the page passes only the DAGs whose XCom the user may read)."""
    rows = _report_rows(limit=limit, dag_ids=list(dag_ids)) if dag_ids else []
    per_conn: dict[str, list[ReportPoint]] = defaultdict(list)
    for row in rows:
        value = _xcom_value(row.value)
        if not isinstance(value, dict) or not value.get("leadpipe_conn_id"):
            continue
        try:
            point = ReportPoint.from_report(value)
        except ValueError:
            continue
        points = per_conn[str(value["leadpipe_conn_id"])]
        if len(points) < MAX_REPORTS:
            points.append(point)
    return {conn_id: sorted(points, key=lambda p: p.observed_at) for conn_id, points in per_conn.items()}


def task_report(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any] | None:
    """The report one credit report task instance pushed, or None."""
    rows = _report_rows(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, limit=1)
    value = _xcom_value(rows[0].value) if rows else None
    return value if isinstance(value, dict) else None


def _xcom_model() -> Any:
    from airflow.models.xcom import XComModel

    return XComModel


def _report_query(query: Any) -> Any:
    """``query`` limited to the return values of credit report tasks."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import and_

    xcom = _xcom_model()
    return query.join(
        TaskInstance,
        and_(
            TaskInstance.dag_id == xcom.dag_id,
            TaskInstance.run_id == xcom.run_id,
            TaskInstance.task_id == xcom.task_id,
            TaskInstance.map_index == xcom.map_index,
        ),
    ).where(xcom.key == "return_value", TaskInstance.operator == REPORT_OPERATOR)


def _report_rows(limit: int, dag_ids: list[str] | None = None, **where: Any) -> list[Any]:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    xcom = _xcom_model()
    query = _report_query(select(xcom.value))
    if dag_ids is not None:
        query = query.where(xcom.dag_id.in_(dag_ids))
    for name, value in where.items():
        query = query.where(getattr(xcom, name) == value)
    query = query.order_by(xcom.timestamp.desc()).limit(limit)
    with create_session() as session:
        return list(session.execute(query))


def _xcom_value(raw: Any) -> Any:
    # Values set through the Task Execution API are stored as JSON and come back decoded; values
    # stored through XComModel.serialize_value come back as a JSON string.
    if isinstance(raw, (str, bytes)):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw
