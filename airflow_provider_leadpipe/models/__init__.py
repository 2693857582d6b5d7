"""Validated models of Leadpipe API responses, one module per API area.

- :mod:`~airflow_provider_leadpipe.models.account`: the account status, visitor pages and pixels
  (the Identification API).
- :mod:`~airflow_provider_leadpipe.models.audiences`: Orbit intent audiences, their runs, result
  pages, run stats and stored exports.
"""

from __future__ import annotations

from airflow_provider_leadpipe.models.account import (
    AccountStatus,
    Boolean,
    Count,
    Credits,
    DateTime,
    Intent,
    ListMeta,
    Number,
    Organization,
    PageMeta,
    Pixel,
    Pixels,
    String,
    VisitorPage,
    parse_model,
)
from airflow_provider_leadpipe.models.audiences import (
    Audience,
    AudienceExport,
    AudienceResultsPage,
    AudienceRun,
    AudienceRunStats,
    AudienceRunStatus,
)

__all__ = [
    "AccountStatus",
    "Audience",
    "AudienceExport",
    "AudienceResultsPage",
    "AudienceRun",
    "AudienceRunStats",
    "AudienceRunStatus",
    "Boolean",
    "Count",
    "Credits",
    "DateTime",
    "Intent",
    "ListMeta",
    "Number",
    "Organization",
    "PageMeta",
    "Pixel",
    "Pixels",
    "String",
    "VisitorPage",
    "parse_model",
]
