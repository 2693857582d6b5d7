"""Where the Leadpipe credits page lives: its URL prefix, and paths under Airflow's base URL."""

from __future__ import annotations

#: The page's app is mounted here by the API server.
URL_PREFIX = "/leadpipe"


def base_path(path: str) -> str:
    """``path`` under Airflow's ``[api] base_url`` path (as the edge3 provider builds its links)."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="/") or "/"
    prefix = urlparse(base).path if base.startswith(("http://", "https://")) else base
    return prefix.rstrip("/") + path
