"""LeadpipePlugin: the "Leadpipe" credits page in Airflow's navigation (Airflow >= 3.1).

Loaded through the ``airflow.plugins`` entry point (with ``[core] lazy_discover_providers``, the
default, Airflow does not load the ``plugins`` list of provider info, which only lists it).

* ``fastapi_apps``: the page's app, mounted by the API server under ``/leadpipe``. It is built on
  the first request, so the scheduler, the triggerer and task processes, which load plugins too,
  never import FastAPI or the page's code for it.
* ``external_views``: "Leadpipe" in the Browse menu, shown inside Airflow (an iframe), and a
  "Leadpipe credits" tab on task instances that shows the report a credit report task pushed.

Below 3.1 (no ``external_views``) the plugin registers nothing: no app, no view.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_leadpipe.plugins.links import URL_PREFIX, base_path


class _LazyApp:
    """An ASGI app that builds the real FastAPI app on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_provider_leadpipe.plugins.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class LeadpipePlugin(AirflowPlugin):
    """The Leadpipe credits page (see the module docstring)."""

    name = "leadpipe"
    if AIRFLOW_V_3_1_PLUS:
        fastapi_apps = [{"app": _LazyApp(), "url_prefix": URL_PREFIX, "name": "Leadpipe credits"}]
        external_views = [
            {
                "name": "Leadpipe",
                "href": base_path(f"{URL_PREFIX}/credits"),
                "destination": "nav",
                "category": "browse",
                "url_route": "leadpipe",
            },
            {
                "name": "Leadpipe credits",
                "href": base_path(
                    f"{URL_PREFIX}/credits/report?dag_id={{DAG_ID}}&run_id={{RUN_ID}}"
                    "&task_id={TASK_ID}&map_index={MAP_INDEX}"
                ),
                "destination": "task_instance",
                "url_route": "leadpipe_credit_report",
            },
        ]
