"""Validated models of Leadpipe API responses, one module per API area.

- :mod:`~airflow_provider_leadpipe.models.base`: the model base, the JSON types and
  :func:`parse_model`.
- :mod:`~airflow_provider_leadpipe.models.account`: the account status.
- :mod:`~airflow_provider_leadpipe.models.visitors`: a page of visitors.
- :mod:`~airflow_provider_leadpipe.models.pixels`: a tracking pixel.
- :mod:`~airflow_provider_leadpipe.models.audiences`: Orbit intent audiences, their runs, result
  pages, run stats and stored exports.
- :mod:`~airflow_provider_leadpipe.models.audience_configs`: a config's check and preview, the
  filter catalog and topics.
"""

from __future__ import annotations

from airflow_provider_leadpipe.models.account import AccountStatus, Credits, Intent, Organization, Pixels
from airflow_provider_leadpipe.models.audience_configs import (
    AudienceConfigCheck,
    AudiencePreview,
    ConfigProblem,
    FilterCatalog,
    Topic,
)
from airflow_provider_leadpipe.models.audiences import (
    Audience,
    AudienceExport,
    AudienceResultsPage,
    AudienceRun,
    AudienceRunStats,
    AudienceRunStatus,
)
from airflow_provider_leadpipe.models.base import (
    Boolean,
    Count,
    DateTime,
    ListMeta,
    Number,
    String,
    parse_model,
)
from airflow_provider_leadpipe.models.pixels import Pixel
from airflow_provider_leadpipe.models.visitors import PageMeta, VisitorPage

__all__ = [
    "AccountStatus",
    "Audience",
    "AudienceConfigCheck",
    "AudienceExport",
    "AudiencePreview",
    "AudienceResultsPage",
    "AudienceRun",
    "AudienceRunStats",
    "AudienceRunStatus",
    "Boolean",
    "ConfigProblem",
    "Count",
    "Credits",
    "DateTime",
    "FilterCatalog",
    "Intent",
    "ListMeta",
    "Number",
    "Organization",
    "PageMeta",
    "Pixel",
    "Pixels",
    "String",
    "Topic",
    "VisitorPage",
    "parse_model",
]
