"""Validated models of Orbit intent-audience responses (``/v1/intent/audiences...``, generation 3).

- :class:`Audience`: an intent audience (``config`` passes through as an opaque dict).
- :class:`AudienceRun` and :class:`AudienceRunStatus`: one materialization run and its state.
- :class:`AudienceResultsPage`: one page of a run's results (202 "not ready yet" or 200).
- :class:`AudienceRunStats`: the stats of a completed run.
- :class:`AudienceExport`: a stored CSV export and its fresh signed download URL.

As in :mod:`~airflow_provider_leadpipe.models.base`: unknown fields are kept, a missing or
mistyped required field raises :class:`LeadpipeResponseError` naming it, and ``to_dict()`` gives
back the API's own key names as JSON-native values (for XCom). Timestamps stay the API's strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, PlainValidator, PrivateAttr

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError, LeadpipeResponseError
from airflow_provider_leadpipe.models.base import (
    ApiModel,
    Boolean,
    Count,
    String,
    parse_model,
)
from airflow_provider_leadpipe.utils import validation
from airflow_provider_leadpipe.utils.text import parse_date


class AudienceRunStatus(str, Enum):
    """The documented states of a run: ``queued`` -> ``running`` -> ``completed`` / ``failed``;
    a queued run may be ``cancelled``."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once the run cannot change any more (completed, failed or cancelled)."""
        return self in _TERMINAL

    @property
    def is_success(self) -> bool:
        """True for a completed run: results, stats and exports are available."""
        return self is AudienceRunStatus.COMPLETED


_TERMINAL = frozenset({AudienceRunStatus.COMPLETED, AudienceRunStatus.FAILED, AudienceRunStatus.CANCELLED})


def _run_status(value: Any) -> AudienceRunStatus:
    if isinstance(value, AudienceRunStatus):
        return value
    if isinstance(value, str):
        try:
            return AudienceRunStatus(value)
        except ValueError:
            pass
    raise ValueError(f"expected one of {', '.join(status.value for status in AudienceRunStatus)}")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return value


def _objects(value: Any) -> list[dict[str, Any]]:
    # Rows stay the API's own dicts, unchanged and uncopied (a page can hold many people).
    if not isinstance(value, list):
        raise ValueError("expected a list")
    for row in value:
        if not isinstance(row, dict):
            raise ValueError("expected a list of objects")
    return value


RunStatus = Annotated[
    AudienceRunStatus, PlainValidator(_run_status), PlainSerializer(lambda v: v.value, return_type=str)
]
Date = Annotated[str, PlainValidator(parse_date)]
Object = Annotated[dict[str, Any], PlainValidator(_object)]
Objects = Annotated[list[dict[str, Any]], PlainValidator(_objects)]


class Audience(ApiModel):
    """An intent audience as list/get/create/update return it.

    ``status`` is ``draft``, ``active`` or ``paused`` as documented, kept as a string so a new
    state does not break parsing. ``config`` (if the API sends it) is the opaque dict it was given.
    """

    _what = "audience"

    id: String
    name: String
    status: String
    organization_id: String | None = Field(None, alias="organizationId")
    access_type: String | None = Field(None, alias="accessType")
    daily_refresh_enabled: Boolean | None = Field(None, alias="dailyRefreshEnabled")
    audience_size: Count | None = Field(None, alias="audienceSize")
    config: Object | None = None
    last_refreshed_at: String | None = Field(None, alias="lastRefreshedAt")
    created_at: String | None = Field(None, alias="createdAt")
    updated_at: String | None = Field(None, alias="updatedAt")

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class AudienceRun(ApiModel):
    """One run (``IntentAudienceRun``). Only ``id`` and ``status`` are required: the run inside a
    results body is a documented subset (no ``audienceId``, no ``dataDate``)."""

    _what = "audience run"

    id: String
    status: RunStatus
    audience_id: String | None = Field(None, alias="audienceId")
    organization_id: String | None = Field(None, alias="organizationId")
    run_type: String | None = Field(None, alias="runType")  # manual | daily | preview
    config_hash: String | None = Field(None, alias="configHash")
    data_date: Date | None = Field(None, alias="dataDate")
    result_count: Count | None = Field(None, alias="resultCount")
    candidate_count: Count | None = Field(None, alias="candidateCount")
    attempts: Count | None = None
    idempotency_key: String | None = Field(None, alias="idempotencyKey")
    error_code: String | None = Field(None, alias="errorCode")
    error_message: String | None = Field(None, alias="errorMessage")
    created_at: String | None = Field(None, alias="createdAt")
    started_at: String | None = Field(None, alias="startedAt")
    completed_at: String | None = Field(None, alias="completedAt")
    cancelled_at: String | None = Field(None, alias="cancelledAt")
    updated_at: String | None = Field(None, alias="updatedAt")
    # Not an API field: set by LeadpipeHook.create_audience_run (see :attr:`existing`).
    _existing: bool = PrivateAttr(default=False)

    @property
    def existing(self) -> bool:
        """True for a run that ``create_audience_run`` got back for an ``Idempotency-Key`` that had
        made it before: the API answered ``200 OK`` rather than ``201 Created``. False otherwise."""
        return self._existing

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def is_success(self) -> bool:
        return self.status.is_success

    def describe(self) -> str:
        """``run <id> is <status>`` plus ``errorCode: errorMessage`` when the API gave them."""
        text = f"audience run {self.id} is {self.status.value}"
        detail = ": ".join(part for part in (self.error_code, self.error_message) if part)
        return f"{text} ({detail})" if detail else text


class _ResultsData(ApiModel):
    # The ``data`` object of ``GET .../results``; ``total``/``limit``/``offset`` may be absent on 200.
    run: AudienceRun
    state: String | None = None
    results: Objects = Field(default_factory=list)
    total: Count | None = None
    limit: Count | None = None
    offset: Count | None = None


@dataclass(frozen=True)
class AudienceResultsPage:
    """One page of ``GET .../runs/{runId}/results?limit=&offset=``.

    ``ready`` is False for HTTP 202 (the run is queued or running: ``state`` says which, ``results``
    is empty); True for 200. ``results`` are the API's own person dicts, unchanged: personal data,
    never to be logged or pushed to XCom.
    """

    ready: bool
    state: str | None
    run: AudienceRun
    results: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_response(cls, payload: Any, *, ready: bool, limit: int, offset: int) -> AudienceResultsPage:
        """Validate a results body; ``limit``/``offset`` are the requested ones, used when the body
        omits them. A 200 without ``total`` falls back to the run's ``resultCount``.

        :raises LeadpipeResponseError: naming the offending field.
        """
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise LeadpipeResponseError("Leadpipe audience results response has no 'data' object")
        data = _ResultsData.from_data(payload["data"])
        total = data.total
        if total is None:
            total = data.run.result_count if ready else 0
        if total is None:
            raise LeadpipeResponseError(
                "Leadpipe audience results response field 'data.total': missing "
                "(and no 'data.run.resultCount')"
            )
        return cls(
            ready=ready,
            state=data.state,
            run=data.run,
            results=data.results,
            total=total,
            limit=limit if data.limit is None else data.limit,
            offset=offset if data.offset is None else data.offset,
        )


class AudienceRunStats(ApiModel):
    """``GET .../runs/{runId}/stats``: the run (a subset) and its ``stats`` object (``total``,
    ``fillRates``, ``scoreHistogram``, ``averages``), kept as the API sent it."""

    _what = "audience run stats"

    run: AudienceRun
    stats: Object


class _SignedUrl(ApiModel):
    download_url: String | None = Field(None, alias="downloadUrl")
    download_url_expires_at: String | None = Field(None, alias="downloadUrlExpiresAt")
    download_url_ttl_seconds: Count | None = Field(None, alias="downloadUrlTtlSeconds")


class AudienceExport(ApiModel):
    """A stored CSV export (``data.export``) with the fresh signed URL sent beside it.

    The signed URL lets anyone holding it download people's data until it expires: it is kept out
    of :meth:`to_dict` and ``repr``. ``byteSize``, ``contentSha1`` and ``rowCount`` are only known
    once the export is ``completed``.
    """

    _what = "audience export"

    id: String
    status: String  # seen: processing, completed; failed is probable
    audience_id: String | None = Field(None, alias="audienceId")
    run_id: String | None = Field(None, alias="runId")
    byte_size: Count | None = Field(None, alias="byteSize")
    content_sha1: String | None = Field(None, alias="contentSha1")
    row_count: Count | None = Field(None, alias="rowCount")
    error_code: String | None = Field(None, alias="errorCode")
    error_message: String | None = Field(None, alias="errorMessage")
    expires_at: String | None = Field(None, alias="expiresAt")
    download_url: String | None = Field(None, alias="downloadUrl", exclude=True, repr=False)
    download_url_expires_at: String | None = Field(None, alias="downloadUrlExpiresAt")
    download_url_ttl_seconds: Count | None = Field(None, alias="downloadUrlTtlSeconds")

    @classmethod
    def from_data(cls, data: Any, *, where: str = "data") -> AudienceExport:
        """Validate ``{"export": {...}, "downloadUrl": ..., ...}``, the ``data`` of both export calls."""
        if not isinstance(data, Mapping) or not isinstance(data.get("export"), Mapping):
            raise LeadpipeResponseError(f"Leadpipe response field '{where}.export': missing or not an object")
        export = {key: value for key, value in data["export"].items() if key not in _URL_KEYS}
        record = parse_model(cls, export, where=f"{where}.export")
        signed = parse_model(_SignedUrl, {key: data[key] for key in _URL_KEYS if key in data}, where=where)
        # The URL fields sit beside ``export``: validated there (so errors name them there), then merged.
        return record.model_copy(update={name: getattr(signed, name) for name in signed.model_fields_set})  # type: ignore[no-any-return]

    @property
    def is_completed(self) -> bool:
        return self.status == "completed"

    @property
    def is_failed(self) -> bool:
        return self.status == "failed"


_URL_KEYS = ("downloadUrl", "downloadUrlExpiresAt", "downloadUrlTtlSeconds")


# -- requests: an audience's name, config and status as the operators and the hook send them ----

AUDIENCE_STATUSES: tuple[str, ...] = ("draft", "active", "paused")


def audience_name(value: Any) -> str:
    """An audience name: a non-blank string of at most 255 characters."""
    name = validation.optional_str(value, "name")
    if name is None:
        raise LeadpipeConfigError(
            f"name must be the audience's name (a non-empty string), got {validation.shown(value)}"
        )
    return validation.check_length(name, "name", validation.NAME_LENGTH)


def audience_config(value: Any) -> dict[str, Any]:
    """An audience ``config`` (required): a dict, or its JSON / Python literal as a template renders
    it (:func:`mapping`); passed to Orbit as it is."""
    config = validation.mapping(value, "config") if isinstance(value, str) else value
    if isinstance(config, Mapping):
        return dict(config)
    raise LeadpipeConfigError(
        f"config must be a dict (the audience's Orbit config, e.g. {{'topicIds': [101]}}), "
        f"got {type(value).__name__} {validation.shown(value)}"
    )


def audience_status(value: Any) -> str | None:
    """``draft``, ``active``, ``paused``, or None (leave the status as it is)."""
    return validation.one_of(value, "status", AUDIENCE_STATUSES)


__all__ = [
    "Audience",
    "AudienceExport",
    "AudienceResultsPage",
    "AudienceRun",
    "AudienceRunStats",
    "AudienceRunStatus",
    "audience_config",
    "audience_name",
    "audience_status",
]
