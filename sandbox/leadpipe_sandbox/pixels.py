"""Pixels of one organisation: request-body validation (pydantic) and the in-memory store."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from leadpipe_sandbox.timeutil import iso

PIXEL_SCRIPT_URL = "https://leadpipe.aws53.cloud/p/{id}.js"
PAUSED_REASON = "manual"
CREATED_FIELDS = ("id", "domain", "name", "status", "createdAt")
UPDATED_FIELDS = ("id", "domain", "name", "status", "excludedPaths", "includedPaths", "updatedAt")

PathPrefix = Annotated[str, StringConstraints(min_length=2, max_length=500, pattern=r"^/")]
PathList = Annotated[list[PathPrefix], Field(max_length=50)]
PixelStatus = Literal["active", "paused"]


class PixelConflict(Exception):
    """A pixel already exists for the domain (HTTP 409)."""


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=False, extra="ignore", str_strip_whitespace=True)

    included_paths: PathList | None = Field(default=None, alias="includedPaths")
    excluded_paths: PathList | None = Field(default=None, alias="excludedPaths")

    @model_validator(mode="after")
    def _one_path_list(self) -> _Body:
        if self.included_paths and self.excluded_paths:
            raise ValueError("includedPaths and excludedPaths cannot be combined")
        return self


class PixelCreate(_Body):
    """Body of ``POST /v1/data/pixels``."""

    domain: str = Field(min_length=1, max_length=255)
    name: str | None = Field(default=None, min_length=1, max_length=255)


class PixelUpdate(_Body):
    """Body of ``PATCH /v1/data/pixels/{id}``; a path list sent as ``null`` clears it."""

    status: PixelStatus | None = None


class PixelSeed(PixelCreate):
    """A pixel that exists when a scenario starts (control API)."""

    model_config = ConfigDict(extra="forbid")

    status: PixelStatus = "active"


def validation_message(error: ValidationError) -> str:
    """A one-line, human-readable summary of a pydantic error, for the error envelope."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


@dataclass
class Pixel:
    """One tracking pixel."""

    id: str
    domain: str
    name: str
    status: PixelStatus
    created_at: datetime
    updated_at: datetime
    included_paths: list[str] = field(default_factory=list)
    excluded_paths: list[str] = field(default_factory=list)

    @property
    def paused_reason(self) -> str | None:
        return PAUSED_REASON if self.status == "paused" else None

    def row_json(self) -> dict[str, Any]:
        """One row of ``GET /v1/data/pixels``."""
        return {
            "id": self.id,
            "domain": self.domain,
            "name": self.name,
            "status": self.status,
            "pausedReason": self.paused_reason,
            "excludedPaths": self.excluded_paths,
            "includedPaths": self.included_paths,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }

    def created_json(self) -> dict[str, Any]:
        """The 201 body's ``data`` of ``POST /v1/data/pixels`` (observed shape, with the embed code)."""
        row = self.row_json()
        code = f'<script src="{PIXEL_SCRIPT_URL.format(id=self.id)}" async></script>'
        return {field: row[field] for field in CREATED_FIELDS} | {"code": code}

    def updated_json(self) -> dict[str, Any]:
        """The 200 body's ``data`` of ``PATCH /v1/data/pixels/{id}`` (documented shape)."""
        row = self.row_json()
        return {field: row[field] for field in UPDATED_FIELDS}


class PixelStore:
    """The pixels of one organisation; ids are deterministic for a given seed and key."""

    def __init__(self, id_seed: str) -> None:
        self._id_seed = id_seed
        self._pixels: dict[str, Pixel] = {}
        self._created = 0

    def __iter__(self) -> Iterator[Pixel]:
        return iter(self._pixels.values())

    def get(self, pixel_id: str) -> Pixel | None:
        return self._pixels.get(pixel_id)

    def counts(self) -> dict[str, int]:
        """``{"total", "active", "paused"}`` for the account endpoint."""
        active = sum(1 for pixel in self._pixels.values() if pixel.status == "active")
        return {"total": len(self._pixels), "active": active, "paused": len(self._pixels) - active}

    def create(self, body: PixelCreate, now: datetime, status: PixelStatus = "active") -> Pixel:
        """Add a pixel; raises :class:`PixelConflict` when the domain already has one."""
        domain = body.domain.lower()
        if any(pixel.domain == domain for pixel in self._pixels.values()):
            raise PixelConflict(domain)
        self._created += 1
        digest = hashlib.blake2b(f"{self._id_seed}:pixel:{self._created}".encode(), digest_size=16).digest()
        pixel = Pixel(
            id=str(uuid.UUID(bytes=digest, version=4)),
            domain=domain,
            name=body.name or domain,
            status=status,
            created_at=now,
            updated_at=now,
            included_paths=list(body.included_paths or []),
            excluded_paths=list(body.excluded_paths or []),
        )
        self._pixels[pixel.id] = pixel
        return pixel

    @staticmethod
    def update(pixel: Pixel, body: PixelUpdate, now: datetime) -> None:
        """Apply a PATCH body; raises ``ValueError`` if both path lists would end up set."""
        sent = body.model_fields_set
        included = list(body.included_paths or []) if "included_paths" in sent else pixel.included_paths
        excluded = list(body.excluded_paths or []) if "excluded_paths" in sent else pixel.excluded_paths
        if included and excluded:
            raise ValueError("includedPaths and excludedPaths cannot be combined")
        pixel.included_paths, pixel.excluded_paths = included, excluded
        if body.status is not None:
            pixel.status = body.status
        pixel.updated_at = now
