"""A tracking pixel of ``/v1/data/pixels``: the answer's model and the checked request bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.models.base import ApiModel, String
from airflow_provider_leadpipe.utils import validation


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


# -- requests: the bodies of POST /v1/data/pixels and PATCH /v1/data/pixels/{id} ---------------

PIXEL_STATUSES: tuple[str, ...] = ("active", "paused")
IF_EXISTS: tuple[str, ...] = ("error", "return")
MAX_PATHS = 50
PATH_LENGTH = (2, 500)


def if_exists_policy(value: Any) -> str:
    """``"error"`` or ``"return"``: what to do when a pixel already exists for the domain."""
    return validation.choice(value, "if_exists", IF_EXISTS)


def path_list(value: Any, name: str) -> list[str] | None:
    """A path-prefix list: at most 50 entries, each starting with "/" and 2-500 characters long.

    Rendered forms are read by :func:`value_list`. None (or ``""``) means "not given"; an empty
    list (``[]`` or ``"[]"``) is returned as ``[]`` (the caller decides what it means).
    """
    if isinstance(value, bytes) or not (value is None or isinstance(value, (str, Sequence))):
        raise LeadpipeConfigError(
            f"{name} must be a list of path prefixes like ['/blog', '/pricing'], "
            f"got {type(value).__name__} {validation.shown(value)}"
        )
    paths = validation.value_list(value, name)
    if paths is None:
        return None
    if len(paths) > MAX_PATHS:
        raise LeadpipeConfigError(f"{name} has {len(paths)} entries; Leadpipe allows at most {MAX_PATHS}")
    for index, path in enumerate(paths):
        where = f"{name}[{index}]"
        if not isinstance(path, str):
            raise LeadpipeConfigError(
                f"{where} must be a string, got {type(path).__name__} {validation.shown(path)}"
            )
        if not path.startswith("/"):
            raise LeadpipeConfigError(f"{where} must start with '/', got {validation.shown(path)}")
        validation.check_length(path, where, PATH_LENGTH)
    return paths


def _exclusive(included: list[str] | None, excluded: list[str] | None) -> None:
    if included and excluded:
        raise LeadpipeConfigError(
            "included_paths and excluded_paths are mutually exclusive: a pixel tracks either only the "
            "listed prefixes (included_paths) or everything except them (excluded_paths)"
        )


def create_pixel_body(
    domain: Any, name: Any = None, included_paths: Any = None, excluded_paths: Any = None
) -> dict[str, Any]:
    """JSON body for ``POST /v1/data/pixels``; empty path lists are left out."""
    checked_domain = validation.optional_str(domain, "domain")
    if checked_domain is None:
        raise LeadpipeConfigError(f"domain is required to create a pixel, got {validation.shown(domain)}")
    body: dict[str, Any] = {
        "domain": validation.check_length(checked_domain, "domain", validation.DOMAIN_LENGTH)
    }
    checked_name = validation.optional_str(name, "name")
    if checked_name is not None:
        body["name"] = validation.check_length(checked_name, "name", validation.NAME_LENGTH)
    included = path_list(included_paths, "included_paths")
    excluded = path_list(excluded_paths, "excluded_paths")
    _exclusive(included, excluded)
    if included:
        body["includedPaths"] = included
    if excluded:
        body["excludedPaths"] = excluded
    return body


def update_pixel_body(
    status: Any = None, included_paths: Any = None, excluded_paths: Any = None
) -> dict[str, Any]:
    """JSON body for ``PATCH /v1/data/pixels/{id}``.

    For each path list: ``None`` leaves it unchanged (the key is not sent); ``[]`` clears it (sent
    as JSON ``null``, which is how Leadpipe clears a list); a non-empty list replaces it. Setting
    one list while clearing the other is allowed (that is how a pixel switches from a denylist to
    an allowlist); setting both is not.
    """
    body: dict[str, Any] = {}
    checked_status = validation.one_of(status, "status", PIXEL_STATUSES)
    if checked_status is not None:
        body["status"] = checked_status
    included = path_list(included_paths, "included_paths")
    excluded = path_list(excluded_paths, "excluded_paths")
    _exclusive(included, excluded)
    for key, paths in (("includedPaths", included), ("excludedPaths", excluded)):
        if paths is not None:
            body[key] = paths or None
    if not body:
        raise LeadpipeConfigError(
            "nothing to update: give status ('active' or 'paused'), included_paths or excluded_paths "
            "(a list of prefixes, or [] to clear the list)"
        )
    return body
