"""Leadpipe's published API contracts, vendored with the package: what the sandbox is held to.

``CONTRACT_DIR`` is the one place they live (shipped in the wheel, so a user's tests can validate
sandbox answers too); ``ACCOUNT_OPENAPI`` is the OpenAPI 3.1 document of ``GET /v1/data/account``
as Leadpipe publishes it, copied unchanged.
"""

from __future__ import annotations

from pathlib import Path

CONTRACT_DIR = Path(__file__).resolve().parent
ACCOUNT_OPENAPI = CONTRACT_DIR / "leadpipe-account-openapi.yaml"

__all__ = ["ACCOUNT_OPENAPI", "CONTRACT_DIR"]
