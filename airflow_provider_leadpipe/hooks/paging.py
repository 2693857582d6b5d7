"""Page-number paging over ``GET /v1/data``, shared by the sync and the async visitor iterators.

:class:`VisitorPager` does no I/O: it says which page to ask for, validates each page fed back
in order, and decides when the listing is exhausted. The hook's loops only send the request
(``request`` or ``await arequest``) and feed the payload back, so both paths stop at the same page
for the same reason.

When is a listing exhausted, in order of precedence:

1. an empty page;
2. ``meta.hasMore`` is false (if the API sends it);
3. the page number reached ``meta.totalPages`` (if sent);
4. the records read so far reached ``meta.total`` (seen in live responses);
5. otherwise the next page is requested, and an empty page ends the listing.

Page numbers over a live data set are not a snapshot: visitors identified during a pull shift
later pages, so a record can appear twice (it moved from page n to n+1 between two requests) or,
when records leave a sliding ``timeframe`` window, be missed. See docs/visitors-and-pixels.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.models import VisitorPage

VISITORS_PATH = "/v1/data"


class VisitorPager:
    """State of one walk through the visitor pages (fed strictly in page order).

    :param query: validated filters (see :func:`airflow_provider_leadpipe.validation.visitor_query`).
    """

    def __init__(self, query: Mapping[str, str]):
        self.query = dict(query)
        #: The page :meth:`feed` expects next (1-based).
        self.next_number = 1
        self.done = False
        #: Records and non-empty pages read so far.
        self.records = 0
        self.pages = 0
        #: Last page number the latest ``meta`` promises, if it allows working that out.
        self.last_page: int | None = None
        self._page_size: int | None = None
        self._previous: bytes | None = None

    def params(self, number: int) -> dict[str, Any]:
        """Query parameters for page ``number``."""
        return {**self.query, "page": number}

    def may_request(self, number: int) -> bool:
        """False only for a page that ``meta`` says lies past the end (bounds read-ahead)."""
        return number <= self.next_number or self.last_page is None or number <= self.last_page

    def feed(self, payload: Any) -> VisitorPage:
        """Validate the payload of page :attr:`next_number` and advance.

        :raises LeadpipeResponseError: on a malformed page, or when a page repeats the previous one
            exactly (the API ignoring ``page``; stopping beats looping forever).
        """
        if self.done:
            raise RuntimeError("the visitor listing is already exhausted")
        page = VisitorPage.from_response(payload, number=self.next_number)
        self._check_progress(page)
        self.next_number += 1
        self.records += len(page.records)
        if page.records:
            self.pages += 1
            if self._page_size is None:
                self._page_size = len(page.records)
        self._update_last_page(page)
        self.done = self._is_last(page)
        return page

    def _check_progress(self, page: VisitorPage) -> None:
        if not page.records:
            return
        fingerprint = hashlib.blake2b(
            json.dumps(page.records, sort_keys=True, default=str).encode(), digest_size=16
        ).digest()
        if fingerprint == self._previous:
            raise LeadpipeResponseError(
                f"Leadpipe GET {VISITORS_PATH} returned the same {len(page.records)} records for pages "
                f"{page.number - 1} and {page.number}: the API seems to ignore the 'page' parameter; "
                "stopping instead of paging forever"
            )
        self._previous = fingerprint

    def _update_last_page(self, page: VisitorPage) -> None:
        meta = page.meta
        if meta is None:
            return
        if meta.total_pages is not None:
            self.last_page = meta.total_pages
        elif meta.total is not None and self._page_size:
            self.last_page = math.ceil(meta.total / self._page_size)

    def _is_last(self, page: VisitorPage) -> bool:
        if not page.records:
            return True
        meta = page.meta
        if meta is None:
            return False
        if meta.has_more is not None:
            return not meta.has_more
        if meta.total_pages is not None:
            return page.number >= meta.total_pages
        if meta.total is not None:
            return self.records >= meta.total
        return False
