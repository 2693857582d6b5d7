"""The account status: the ``data`` object of ``GET /v1/data/account``.

:class:`AccountStatus` follows the published OpenAPI contract exactly: nullable credit fields (a
null ``limit`` means no cap), ``resetsAt`` as a pendulum datetime, a nullable ``intent`` block.
Unknown extra fields are kept, and :meth:`AccountStatus.to_dict` gives back the API's own key names
for XCom.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from airflow_provider_leadpipe.models.base import (
    ApiModel,
    Boolean,
    DateTime,
    Number,
    String,
)
from airflow_provider_leadpipe.utils.text import number_text as _fmt


class Organization(ApiModel):
    """``data.organization``: the organization the key belongs to."""

    name: String
    status: String  # seen: "trial", "expired"; the full set is not published


class Credits(ApiModel):
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


class Pixels(ApiModel):
    """``data.pixels``: pixel counts."""

    total: Number
    active: Number
    paused: Number


class Intent(ApiModel):
    """``data.intent``: Orbit audience slots."""

    audience_slots: Number = Field(alias="audienceSlots")
    audience_slots_used: Number = Field(alias="audienceSlotsUsed")
    audience_slots_available: Number = Field(alias="audienceSlotsAvailable")
    status: String


class AccountStatus(ApiModel):
    """The ``data`` object of ``GET /v1/data/account``."""

    healthy: Boolean
    organization: Organization
    credits: Credits
    pixels: Pixels
    intent: Intent | None

    _what = "account"

    def to_dict(self) -> dict[str, Any]:
        """The ``data`` object as JSON-serialisable primitives, with the API's own key names (every
        field, the defaults of fields the API left out included)."""
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
