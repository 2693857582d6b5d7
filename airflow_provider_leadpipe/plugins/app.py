"""The credits page's FastAPI app, mounted by Airflow's API server under ``/leadpipe``.

Mounted plugin apps inherit no authentication from Airflow, so every route here declares its
own: Airflow's user (JWT cookie or bearer token) with read access to connections; the
task-instance view also needs read access to the DAG's XCom. Cards are limited to the
connections the user may read, and chart only the reports of DAGs whose XCom the user may read
(the task-instance view's rule, asked of the auth manager for each DAG). Only GET exists: the
page changes nothing. ``/credits?conn_id=...`` shows that one connection (the tasks' extra link
leads there). Every parameter is checked by its declared type before a route runs: a bad
value answers 422 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pendulum
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import (
    ConnectionDetails,
    DagAccessEntity,
    DagDetails,
)
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_connection, requires_access_dag
from fastapi import Depends, FastAPI, Query
from fastapi.responses import HTMLResponse
from pydantic import Field

from airflow_provider_leadpipe.plugins import data, render
from airflow_provider_leadpipe.plugins.links import URL_PREFIX, base_path

TITLE = "Leadpipe credits"

#: What the UI sends for ``map_index`` on a task that is not mapped: it fills the placeholder only
#: for mapped tasks, so the placeholder itself arrives.
UNMAPPED = "{MAP_INDEX}"
#: The largest map index a database's INTEGER column holds (PostgreSQL's, the smallest of Airflow's).
MAX_MAP_INDEX = 2**31 - 1
#: Airflow's dag, run and task ids: 1 to 250 characters (its ``ID_LEN``), no control characters.
AirflowId = Annotated[str, Query(min_length=1, max_length=250, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: A connection id to show alone (the tasks' "Leadpipe connection" link): Airflow's id rule, as above.
ConnIdFilter = Annotated[str | None, Query(min_length=1, max_length=250, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: -1 (not mapped) or a map index, as ASCII digits; or the unfilled placeholder (-1).
MapIndex = Annotated[Annotated[int, Field(ge=-1, le=MAX_MAP_INDEX)] | Literal["{MAP_INDEX}"], Query()]


def create_app() -> FastAPI:
    app = FastAPI(
        title=TITLE,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(requires_access_connection("GET"))],
    )

    @app.get("/credits", response_class=HTMLResponse)
    async def credits_page(user: GetUserDep, conn_id: ConnIdFilter = None) -> HTMLResponse:
        # ``conn_id``: that connection's card alone, if it is listed and the user may read it.
        conn_ids = [c for c in data.leadpipe_conn_ids() if conn_id in (None, c) and _may_read(c, user)]
        statuses = await data.fetch_statuses(conn_ids)
        reports = data.credit_reports([d for d in data.report_dag_ids() if _may_read_reports(d, user)])
        docs_href = base_path(f"/dags/{render.EXAMPLE_DAG_ID}")
        cards = [
            render.Card(
                conn_id=shown,
                account=statuses[shown].account,
                error=statuses[shown].error,
                error_type=statuses[shown].error_type,
                reports=reports.get(shown, ()),
                docs_href=docs_href,
            )
            for shown in conn_ids
        ]
        footer = render.live_footer(pendulum.now("UTC"), data.CACHE_SECONDS)
        if conn_id is None:
            return _html(render.page(cards, title=TITLE, footer=footer))
        empty = render.no_such_connection(conn_id, base_path(f"{URL_PREFIX}/credits"))
        return _html(render.page(cards, title=TITLE, footer=footer, empty=empty, subtitle=conn_id))

    @app.get(
        "/credits/report",
        response_class=HTMLResponse,
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.XCOM))],
    )
    async def task_instance_report(
        dag_id: AirflowId, run_id: AirflowId, task_id: AirflowId, map_index: MapIndex = -1
    ) -> HTMLResponse:
        # Each parameter is checked by its type before this runs: a bad value answers 422.
        index = -1 if map_index == UNMAPPED else int(map_index)
        report = data.task_report(dag_id, run_id, task_id, index)
        cards = []
        try:
            point = render.ReportPoint.from_report(report) if report else None
        except ValueError:
            point = None
        if report and point:
            observed = point.observed_at.format("YYYY-MM-DD HH:mm [UTC]")
            cards.append(
                render.Card(
                    conn_id=str(report.get("leadpipe_conn_id") or "?"),
                    account=report.get("account"),
                    reports=[point],
                    caption=f"Credit report of {task_id}, observed {observed}: "
                    + render.report_caption(report),
                    docs_href=base_path(f"/dags/{render.EXAMPLE_DAG_ID}"),
                )
            )
        footer = "The account as this task saw it when it ran. Read-only."
        subtitle = f"{dag_id} / {task_id}"
        return _html(
            render.page(cards, title=TITLE, footer=footer, empty=render.NO_REPORT, subtitle=subtitle)
        )

    return app


def _may_read(conn_id: str, user: Any) -> bool:
    return get_auth_manager().is_authorized_connection(
        method="GET", details=ConnectionDetails(conn_id=conn_id), user=user
    )


def _may_read_reports(dag_id: str, user: Any) -> bool:
    """Whether ``user`` may read ``dag_id``'s XCom: the check the task-instance view's
    ``requires_access_dag("GET", DagAccessEntity.XCOM)`` makes, with the DAG's team."""
    from airflow.models.dag import DagModel

    return get_auth_manager().is_authorized_dag(
        method="GET",
        access_entity=DagAccessEntity.XCOM,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
        user=user,
    )


def _html(document: str) -> HTMLResponse:
    # The page is shown in Airflow's iframe (same origin); nothing else may frame it.
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'self'",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(document, headers=headers)
