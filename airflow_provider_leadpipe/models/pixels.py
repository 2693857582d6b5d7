"""A tracking pixel of ``/v1/data/pixels``."""

from __future__ import annotations

from pydantic import Field

from airflow_provider_leadpipe.models.base import ApiModel, String


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

    _what = "pixel"

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def is_paused(self) -> bool:
        return self.status == "paused"

    def matches_domain(self, domain: str) -> bool:
        """Same domain, ignoring case and a trailing dot (DNS names are case-insensitive)."""
        return _domain_key(self.domain) == _domain_key(domain)


def _domain_key(domain: str) -> str:
    return domain.strip().rstrip(".").casefold()
