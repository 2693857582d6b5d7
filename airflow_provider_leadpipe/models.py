"""Validated models of Leadpipe API responses.

:class:`AccountStatus` follows ``GET /v1/data/account`` exactly as the published OpenAPI contract
describes it: nullable credit fields (a null ``limit`` means no cap), ``resetsAt`` as a pendulum
datetime, a nullable ``intent`` block. Unknown extra fields are kept, so nothing the API sends is
lost, and :meth:`AccountStatus.to_dict` gives back the API's own key names for XCom.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, arbitrary_types_allowed=True)


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
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_model(model: type[BaseModel], data: Any, *, where: str) -> Any:
    """Validate ``data`` into ``model``; on failure raise LeadpipeResponseError naming the field.

    The input value is never echoed into the message (it could be large or sensitive).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise LeadpipeResponseError(_describe(exc, where)) from None


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
