"""Plans of the identification endpoints (see :mod:`.plans`): the account status
(``GET /v1/data/account``), a visitors page (``GET /v1/data``; paging rules in :mod:`.paging`) and
the pixels (``GET/POST /v1/data/pixels``, ``PATCH /v1/data/pixels/{id}``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeConflictError
from airflow_provider_leadpipe.hooks import paging
from airflow_provider_leadpipe.hooks.paging import VISITORS_PATH, VisitorPager
from airflow_provider_leadpipe.hooks.plans import Call, Plan
from airflow_provider_leadpipe.hooks.responses import parsing
from airflow_provider_leadpipe.models import AccountStatus, Pixel, VisitorPage

ACCOUNT_PATH = "/v1/data/account"
PIXELS_PATH = "/v1/data/pixels"


_ACCOUNT_STATUS = Call("GET", ACCOUNT_PATH, parsing(AccountStatus.from_response))


def account_status() -> Plan[AccountStatus]:
    return (yield _ACCOUNT_STATUS)


def visitor_page(pager: VisitorPager, number: int) -> Plan[VisitorPage]:
    return (yield Call("GET", VISITORS_PATH, parsing(pager.parser(number)), pager.params(number)))


def list_pixels() -> Plan[list[Pixel]]:
    return (yield Call("GET", PIXELS_PATH, parsing(_whole_pixel_list)))


def create_pixel(body: dict[str, Any], policy: str) -> Plan[Pixel]:
    try:
        return (yield Call("POST", PIXELS_PATH, parsing(Pixel.from_response), json=body))
    except LeadpipeConflictError as exc:
        if policy == "error":
            raise
        return _existing_pixel((yield from list_pixels()), body["domain"], exc)


def _whole_pixel_list(payload: Any) -> list[Pixel]:
    pixels, meta = Pixel.list_page_from_response(payload)
    paging.check_whole(len(pixels), meta, what="pixel list")
    return pixels


def _existing_pixel(pixels: list[Pixel], domain: str, conflict: LeadpipeConflictError) -> Pixel:
    """The listed pixel for ``domain`` after a 409 (whose body carries no id)."""
    for pixel in pixels:
        if pixel.matches_domain(domain):
            return pixel
    raise LeadpipeConflictError(
        f"{conflict} -- but none of the organization's {len(pixels)} pixel(s) has domain {domain!r}, "
        "so the existing pixel cannot be returned",
        http_status=conflict.http_status,
        api_code=conflict.api_code,
    )
