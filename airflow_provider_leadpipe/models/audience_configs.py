"""Validated models of Orbit's answers about an audience config before it is saved.

- :class:`AudienceConfigCheck`: ``POST /v1/intent/audiences/validate`` (``valid``, ``configHash``,
  ``normalizedConfig``, ``appliedFilters``; the problems, :class:`ConfigProblem`, when invalid).
- :class:`AudiencePreview`: ``POST /v1/intent/audiences/preview`` (``totalCount``, ``breakdowns``;
  its masked ``sample`` is personal data, kept out of :meth:`~AudiencePreview.to_dict` and ``repr``).
- :class:`FilterCatalog`: ``GET /v1/intent/audiences/filters``.
- :class:`Topic`: a row of the topic look-ups (``/v1/intent/topics``, ``/v1/intent/topics/search``).

As in :mod:`~airflow_provider_leadpipe.models.base`: unknown fields are kept, a missing or
mistyped required field raises ``LeadpipeResponseError`` naming it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from airflow_provider_leadpipe.models.audiences import Object, Objects
from airflow_provider_leadpipe.models.base import ApiModel, Boolean, Count, String


class ConfigProblem(ApiModel):
    """One bad key or value of a config, as the API reports it: ``field`` (e.g.
    ``filters.role.seniority``), ``code``, ``message`` and, when it sent one, the bad ``value``."""

    _what = "config problem"

    field: String | None = None
    code: String | None = None
    message: String | None = None
    value: Any = None

    def describe(self) -> str:
        """``field: message`` (and the value when the message does not quote it)."""
        text = self.message or self.code or "invalid"
        if self.value is not None and str(self.value) not in text:
            text = f"{text} (value {self.value!r})"
        return f"{self.field}: {text}" if self.field and not text.startswith(self.field) else text


class AudienceConfigCheck(ApiModel):
    """What ``validate`` says about a config. ``config_hash`` identifies the normalized config:
    two configs with the same hash are the same audience, however they were written."""

    _what = "audience config check"

    valid: Boolean
    config_hash: String | None = Field(None, alias="configHash")
    normalized_config: Object | None = Field(None, alias="normalizedConfig")
    applied_filters: Objects = Field(default_factory=list, alias="appliedFilters")
    strategy: String | None = None
    errors: list[ConfigProblem] = Field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per bad key or value (empty for a valid config)."""
        return [problem.describe() for problem in self.errors]


class AudiencePreview(ApiModel):
    """What ``preview`` says a config would match today. ``sample`` holds masked people: never
    logged, never in :meth:`to_dict` (XCom) or ``repr``."""

    _what = "audience preview"

    total_count: Count = Field(alias="totalCount")
    config_hash: String | None = Field(None, alias="configHash")
    data_date: String | None = Field(None, alias="dataDate")
    strategy: String | None = None
    breakdowns: Object = Field(default_factory=dict)
    applied_filters: Objects = Field(default_factory=list, alias="appliedFilters")
    sample: Objects = Field(default_factory=list, exclude=True, repr=False)


class FilterCatalog(ApiModel):
    """The filter catalog: ``version``, ``summary`` and ``groups[{key, label, filters[...]}]``."""

    _what = "audience filter catalog"

    groups: Objects
    version: Object | None = None
    summary: Object | None = None

    def filter_keys(self) -> list[str]:
        """Every filter key the catalog lists (``role.seniority``, ...)."""
        return [
            spec["key"]
            for group in self.groups
            for spec in group.get("filters") or []
            if isinstance(spec, dict) and isinstance(spec.get("key"), str)
        ]


class Topic(ApiModel):
    """An intent topic: ``topicId`` and ``topicName`` (``type``, ``industry``, ``category`` if sent)."""

    _what = "topic"

    topic_id: Count = Field(alias="topicId")
    topic_name: String = Field(alias="topicName")
    type: String | None = None
    industry: String | None = None
    category: String | None = None

    def describe(self) -> str:
        """``Name (id 102, product, Computer Software)``: enough to tell two topics of one name apart."""
        detail = ", ".join(part for part in (f"id {self.topic_id}", self.type, self.industry) if part)
        return f"{self.topic_name} ({detail})"


__all__ = ["AudienceConfigCheck", "AudiencePreview", "ConfigProblem", "FilterCatalog", "Topic"]
