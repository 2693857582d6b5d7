"""A tracking pixel of ``/v1/data/pixels``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.models.base import ApiModel, ListMeta, String, list_meta, parse_model


class Pixel(ApiModel):
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
