"""Validated models of Leadpipe API responses.

:class:`AccountStatus` follows ``GET /v1/data/account`` exactly as the published OpenAPI contract
describes it: nullable credit fields (a null ``limit`` means no cap), ``resetsAt`` as a pendulum
datetime, a nullable ``intent`` block. Unknown extra fields are kept, so nothing the API sends is
lost, and :meth:`AccountStatus.to_dict` gives back the API's own key names for XCom.

:class:`VisitorPage` (with its :class:`PageMeta`) is one page of ``GET /v1/data``, records kept as
the API sent them; :class:`Pixel` is one pixel of ``/v1/data/pixels``. :func:`parse_model` turns a
pydantic validation error into a ``LeadpipeResponseError`` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pendulum
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError


def _number(value: Any) -> int | float:
    # JSON "number": an int or a finite float, but not a bool and not a numeric string.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected a boolean")
    return value


def _datetime(value: Any) -> pendulum.DateTime:
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date-time string")
    try:
        parsed = pendulum.parse(value)
    except Exception:
        raise ValueError("expected an ISO 8601 date-time string") from None
    if not isinstance(parsed, pendulum.DateTime):
        raise ValueError("expected an ISO 8601 date-time, not a bare date, time or duration")
    return parsed


# Plain validators: the API's types exactly, no coercion ("5" is not a number, 1 is not a bool).
Number = Annotated[float, PlainValidator(_number), PlainSerializer(lambda v: v)]
String = Annotated[str, PlainValidator(_string)]
Boolean = Annotated[bool, PlainValidator(_boolean)]
DateTime = Annotated[
    pendulum.DateTime,
    PlainValidator(_datetime),
    PlainSerializer(lambda v: v.to_iso8601_string(), return_type=str),
]


class _ApiModel(BaseModel):
    model_config = ConfigDict(
        extra="allow", frozen=True, populate_by_name=True, arbitrary_types_allowed=True, defer_build=True
    )


class Organization(_ApiModel):
    """``data.organization``: the organization the key belongs to."""

    name: String
    status: String  # seen: "trial", "expired"; the full set is not published


class Credits(_ApiModel):
    """``data.credits``. ``limit``/``remaining``/``percent_used`` are None on an uncapped plan."""

    used: Number
    limit: Number | None
    remaining: Number | None
    percent_used: Number | None = Field(alias="percentUsed")
    resets_at: DateTime | None = Field(alias="resetsAt")

    @property
    def unlimited(self) -> bool:
        """True when the plan has no credit cap (null ``limit``)."""
        return self.limit is None


class Pixels(_ApiModel):
    """``data.pixels``: pixel counts."""

    total: Number
    active: Number
    paused: Number


class Intent(_ApiModel):
    """``data.intent``: Orbit audience slots."""

    audience_slots: Number = Field(alias="audienceSlots")
    audience_slots_used: Number = Field(alias="audienceSlotsUsed")
    audience_slots_available: Number = Field(alias="audienceSlotsAvailable")
    status: String


class AccountStatus(_ApiModel):
    """The ``data`` object of ``GET /v1/data/account``."""

    healthy: Boolean
    organization: Organization
    credits: Credits
    pixels: Pixels
    intent: Intent | None

    @classmethod
    def from_response(cls, payload: Any) -> AccountStatus:
        """Validate a whole response body (``{"data": {...}}``).

        :raises LeadpipeResponseError: naming the first field that is missing or of the wrong type.
        """
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise LeadpipeResponseError("Leadpipe account response has no 'data' object")
        return cls.from_data(payload["data"])

    @classmethod
    def from_data(cls, data: Any) -> AccountStatus:
        """Validate the ``data`` object itself (e.g. an XCom value pushed by an earlier run)."""
        return parse_model(cls, data, where="data")

    def to_dict(self) -> dict[str, Any]:
        """The ``data`` object as JSON-serialisable primitives, with the API's own key names."""
        return self.model_dump(mode="json", by_alias=True)

    def summary(self) -> str:
        """One readable line: organization, health and credits."""
        credits = self.credits
        if credits.unlimited:
            balance = f"{_fmt(credits.used)} credits used, no credit cap"
        else:
            balance = f"{_fmt(credits.remaining)} of {_fmt(credits.limit)} credits left"
        if credits.resets_at is not None:
            balance += f", resets {credits.resets_at.to_iso8601_string()}"
        health = "healthy" if self.healthy else "NOT healthy"
        return f"{self.organization.name} ({self.organization.status}, {health}): {balance}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, int):  # float(value) overflows past 1.8e308; JSON integers have no limit
        return str(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def parse_model(model: type[BaseModel], data: Any, *, where: str) -> Any:
    """Validate ``data`` into ``model``; on failure raise LeadpipeResponseError naming the field.

    The input value is never echoed into the message (it could be large or sensitive), nor kept
    as the error's context (pydantic's own message quotes the input, shortened).
    """
    try:
        parsed = model.model_validate(data)
        # Unknown fields are kept as they came; one nested deeper than pydantic serializes would
        # fail only later, in to_dict() (XCom, trigger events). Refuse it here instead.
        parsed.model_dump(mode="json")
    except ValidationError as exc:
        problem = _describe(exc, where)
    except (ValueError, RecursionError):
        problem = f"Leadpipe response field '{where}': a value is nested too deeply"
    else:
        return parsed
    raise LeadpipeResponseError(problem)


def _describe(exc: ValidationError, where: str) -> str:
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    first = errors[0]
    field = ".".join([where, *(str(part) for part in first["loc"])])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "missing"
    elif first["type"] in {"model_type", "model_attributes_type", "dict_type"}:
        message = "expected an object"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"Leadpipe response field '{field}': {message}{more}"


# -- visitors -------------------------------------------------------------------------------------


def _count(value: Any) -> int:
    # A JSON count: a non-negative whole number (3.0 is accepted as 3; True and "3" are not).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a whole number")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError("expected a whole number")
    if value < 0:
        raise ValueError("expected a number >= 0")
    return int(value)


Count = Annotated[int, PlainValidator(_count)]


class PageMeta(_ApiModel):
    """``meta`` of a ``GET /v1/data`` page. ``total`` has been seen in live responses; ``totalPages``
    and ``hasMore`` are read by a third-party client and are used only when present."""

    total: Count | None = None
    total_pages: Count | None = Field(None, alias="totalPages")
    has_more: Boolean | None = Field(None, alias="hasMore")


class ListMeta(_ApiModel):
    """What a list answer's ``meta`` may say about paging (none of it is documented for the lists):
    ``total``, ``hasMore`` and ``nextCursor``, each used only when present (see hooks/paging.py)."""

    total: Count | None = None
    has_more: Boolean | None = Field(None, alias="hasMore")
    next_cursor: Any = Field(None, alias="nextCursor")


def list_meta(payload: Any) -> ListMeta | None:
    """The paging signals of a list answer's ``meta`` (None when it has no ``meta`` object).

    :raises LeadpipeResponseError: when ``meta`` carries ``total``/``hasMore`` of the wrong type.
    """
    meta = payload.get("meta") if isinstance(payload, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    return parse_model(ListMeta, meta, where="meta")  # type: ignore[no-any-return]


@dataclass(frozen=True)
class VisitorPage:
    """One page of ``GET /v1/data``: its 1-based number, the visitor records, and ``meta`` if sent.

    Records are kept exactly as the API returned them (the record schema is not published).
    """

    number: int
    records: list[dict[str, Any]]
    meta: PageMeta | None = None

    @classmethod
    def from_response(cls, payload: Any, *, number: int) -> VisitorPage:
        """Validate one page body: ``data`` must be a list of objects, ``meta`` an object or absent.

        :raises LeadpipeResponseError: naming the offending field.
        """
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise LeadpipeResponseError(f"Leadpipe visitors page {number} has no 'data' list")
        records = payload["data"]
        if not isinstance(records, list):
            raise LeadpipeResponseError(
                f"Leadpipe visitors page {number}: field 'data' is {type(records).__name__}, expected a list"
            )
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise LeadpipeResponseError(
                    f"Leadpipe visitors page {number}: field 'data.{index}' is "
                    f"{type(record).__name__}, expected an object"
                )
        raw_meta = payload.get("meta")
        meta = None if raw_meta is None else parse_model(PageMeta, raw_meta, where="meta")
        return cls(number=number, records=records, meta=meta)


# -- pixels ---------------------------------------------------------------------------------------


class Pixel(_ApiModel):
    """A tracking pixel as ``GET/POST /v1/data/pixels`` or ``PATCH /v1/data/pixels/{id}`` return it.

    Only ``id`` and ``domain`` are in every response; each endpoint adds its own fields (``code``,
    the HTML snippet, on create; ``pausedReason`` on list; the path lists and ``updatedAt`` on
    update). Fields the API did not send stay unset, so :meth:`to_dict` gives back exactly what the
    API returned, with its own key names. Timestamps are kept as the API's strings.
    """

    id: String
    domain: String
    name: String | None = None
    status: String | None = None  # documented: "active" | "paused"
    paused_reason: String | None = Field(None, alias="pausedReason")
    code: String | None = None
    included_paths: list[String] | None = Field(None, alias="includedPaths")
    excluded_paths: list[String] | None = Field(None, alias="excludedPaths")
    created_at: String | None = Field(None, alias="createdAt")
    updated_at: String | None = Field(None, alias="updatedAt")

    @classmethod
    def from_response(cls, payload: Any) -> Pixel:
        """Validate a single-pixel response body (``{"data": {...}}``)."""
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise LeadpipeResponseError("Leadpipe pixel response has no 'data' object")
        return cls.from_data(payload["data"])

    @classmethod
    def from_data(cls, data: Any) -> Pixel:
        """Validate a pixel object (e.g. an XCom value pushed by a pixel operator)."""
        return parse_model(cls, data, where="data")

    @classmethod
    def list_from_response(cls, payload: Any) -> list[Pixel]:
        """Validate a ``GET /v1/data/pixels`` body: ``{"data": [pixel, ...]}``."""
        return cls.list_page_from_response(payload)[0]

    @classmethod
    def list_page_from_response(cls, payload: Any) -> tuple[list[Pixel], ListMeta | None]:
        """:meth:`list_from_response` and the answer's paging signals (:func:`list_meta`)."""
        rows = payload.get("data") if isinstance(payload, Mapping) else None
        if not isinstance(rows, list):
            raise LeadpipeResponseError("Leadpipe pixel list response has no 'data' list")
        pixels = [parse_model(cls, row, where=f"data.{index}") for index, row in enumerate(rows)]
        return pixels, list_meta(payload)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def is_paused(self) -> bool:
        return self.status == "paused"

    def matches_domain(self, domain: str) -> bool:
        """Same domain, ignoring case and a trailing dot (DNS names are case-insensitive)."""
        return _domain_key(self.domain) == _domain_key(domain)

    def to_dict(self) -> dict[str, Any]:
        """The pixel as JSON-serialisable primitives with the API's key names (for XCom)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _domain_key(domain: str) -> str:
    return domain.strip().rstrip(".").casefold()
