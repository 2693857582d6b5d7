"""One page of visitors: ``GET /v1/data``, records kept exactly as the API sent them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.models.base import ApiModel, Boolean, Count, parse_model


class PageMeta(ApiModel):
    """``meta`` of a ``GET /v1/data`` page. ``total`` has been seen in live responses; ``totalPages``
    and ``hasMore`` are read by a third-party client and are used only when present."""

    total: Count | None = None
    total_pages: Count | None = Field(None, alias="totalPages")
    has_more: Boolean | None = Field(None, alias="hasMore")


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
