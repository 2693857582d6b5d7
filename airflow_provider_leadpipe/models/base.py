"""The base of every response model and the JSON types they are built from.

The plain validators take the API's types exactly, without coercion ("5" is not a number, 1 is not
a bool). :class:`ApiModel` keeps unknown fields, so nothing the API sends is lost.
:func:`parse_model` turns a pydantic validation error into a ``LeadpipeResponseError`` naming the
field; :func:`list_meta` reads the paging signals of a list answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import pendulum
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.utils.text import parse_datetime


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


# Plain validators: the API's types exactly, no coercion ("5" is not a number, 1 is not a bool).
Number = Annotated[float, PlainValidator(_number), PlainSerializer(lambda v: v)]
String = Annotated[str, PlainValidator(_string)]
Boolean = Annotated[bool, PlainValidator(_boolean)]
DateTime = Annotated[
    pendulum.DateTime,
    PlainValidator(parse_datetime),
    PlainSerializer(lambda v: v.to_iso8601_string(), return_type=str),
]


_Resource = TypeVar("_Resource", bound="ApiModel")


class ApiModel(BaseModel):
    """The base of every response model: unknown fields kept, frozen, API aliases accepted;
    parsing from a ``{"data": ...}`` body or a bare object, and ``to_dict`` for XCom."""

    # defer_build: validators are built on first use, not when a DAG file imports the provider.
    model_config = ConfigDict(
        extra="allow", frozen=True, populate_by_name=True, arbitrary_types_allowed=True, defer_build=True
    )

    #: How messages name the object ("account", "pixel", "audience run", ...).
    _what: str = "object"

    @classmethod
    def from_response(cls: type[_Resource], payload: Any) -> _Resource:
        """Validate a whole response body (``{"data": {...}}``).

        :raises LeadpipeResponseError: naming the first field that is missing or of the wrong type.
        """
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise LeadpipeResponseError(f"Leadpipe {cls._what} response has no 'data' object")
        return cls.from_data(payload["data"])

    @classmethod
    def from_data(cls: type[_Resource], data: Any, *, where: str = "data") -> _Resource:
        """Validate the object itself (e.g. an XCom value pushed by an earlier task)."""
        return parse_model(cls, data, where=where)  # type: ignore[no-any-return]

    @classmethod
    def list_from_response(cls: type[_Resource], payload: Any) -> list[_Resource]:
        """Validate a list body: ``{"data": [object, ...]}``."""
        return cls.list_page_from_response(payload)[0]

    @classmethod
    def list_page_from_response(
        cls: type[_Resource], payload: Any
    ) -> tuple[list[_Resource], ListMeta | None]:
        """:meth:`list_from_response` and the answer's paging signals (``meta``, if any)."""
        rows = payload.get("data") if isinstance(payload, Mapping) else None
        if not isinstance(rows, list):
            raise LeadpipeResponseError(f"Leadpipe {cls._what} list response has no 'data' list")
        return [cls.from_data(row, where=f"data.{index}") for index, row in enumerate(rows)], list_meta(
            payload
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-native primitives with the API's own key names: exactly the fields the API sent."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


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


class ListMeta(ApiModel):
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
