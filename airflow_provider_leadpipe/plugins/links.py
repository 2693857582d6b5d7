"""Where the Leadpipe credits page lives: its URL prefix, and paths under Airflow's base URL
(defined in :mod:`airflow_provider_leadpipe.utils.links`, which the tasks' extra link shares)."""

from __future__ import annotations

from airflow_provider_leadpipe.utils.links import URL_PREFIX, base_path, credits_url

__all__ = ["URL_PREFIX", "base_path", "credits_url"]
