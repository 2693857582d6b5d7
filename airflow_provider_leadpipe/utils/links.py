"""Links to the Leadpipe credits page: its URL prefix, paths under Airflow's base URL, and
:class:`LeadpipeCreditsLink`, the extra link every Leadpipe operator and sensor carries.

The link's URL depends only on the task's ``leadpipe_conn_id``: Airflow 3 computes it when the task
stops (deferred, failed or done) and keeps it in XCom under :attr:`LeadpipeCreditsLink.xcom_key`,
so it is there while the task waits in the triggerer and after it failed. It is attached on Airflow
3.1 and later only, where the page exists (see docs/compatibility.md).

Leadpipe documents no stable dashboard URL for an audience or a pixel, so no link leads there.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.providers.common.compat.sdk import BaseOperatorLink
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_leadpipe.utils.validation import has_template

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

#: The page's app is mounted here by the API server.
URL_PREFIX = "/leadpipe"


def base_path(path: str) -> str:
    """``path`` under Airflow's ``[api] base_url`` path (as the edge3 provider builds its links)."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="/") or "/"
    prefix = urlparse(base).path if base.startswith(("http://", "https://")) else base
    return prefix.rstrip("/") + path


def credits_url(conn_id: str) -> str:
    """The credits page showing only the connection ``conn_id`` (its id percent-encoded)."""
    return base_path(f"{URL_PREFIX}/credits") + "?" + urlencode({"conn_id": conn_id}, quote_via=quote)


class LeadpipeCreditsLink(BaseOperatorLink):
    """The "Leadpipe connection" link: the credits page's card of the task's ``leadpipe_conn_id``."""

    name = "Leadpipe connection"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """The page for the task's (rendered) connection id; empty when there is none to show
        (an id not rendered because the task failed before rendering, or not a string)."""
        conn_id = getattr(operator, "leadpipe_conn_id", None)
        if not isinstance(conn_id, str) or not conn_id.strip() or has_template(conn_id):
            return ""
        return credits_url(conn_id)


#: What the Leadpipe operators and sensors put in ``operator_extra_links``: the link on Airflow
#: 3.1+, nothing before (no credits page to link to).
EXTRA_LINKS: Collection[BaseOperatorLink] = (LeadpipeCreditsLink(),) if AIRFLOW_V_3_1_PLUS else ()
