"""Paging shared by the sync and the async iterators: the rules of each listing, and the loops.

:func:`read_pages` / :func:`aread_pages` drive any pager (sequentially, or with a bounded window
of requests in flight, fed back in order); :func:`records` / :func:`arecords` turn pages into
rows. :class:`VisitorPager` holds the rules of ``GET /v1/data``; :class:`AudienceResultsPager`
those of an Orbit run's results; :class:`ListPager` those of the object lists (audiences, runs)
and :func:`check_whole` those of a list the API serves in one answer (pixels). A list is read to
its end or refused with :class:`LeadpipeResponseError`: never a silent part of it.

Visitors: page-number paging over ``GET /v1/data``.

:class:`VisitorPager` does no I/O: it says which page to ask for and how to validate its payload
(:meth:`VisitorPager.parser`, run inside ``responses.answer``), checks each page fed back in order,
and decides when the listing is exhausted. The loops only run each page's plan (the hook's ``_run``
or ``await _arun``) and feed the page back, so both paths stop at the same page for the same reason.

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

import asyncio
import functools
import hashlib
import json
import math
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import aclosing, contextmanager
from typing import Any, Protocol, TypeVar

from airflow_provider_leadpipe.exceptions import LeadpipeConflictError, LeadpipeError, LeadpipeResponseError
from airflow_provider_leadpipe.hooks.responses import forget_locals
from airflow_provider_leadpipe.models import AudienceResultsPage, ListMeta, VisitorPage

P = TypeVar("P")


class Pager(Protocol[P]):
    """What the page loops need from a pager: it does no I/O itself."""

    next_number: int
    done: bool

    def may_request(self, number: int) -> bool: ...

    def feed(self, fetched: Any) -> P: ...

    def keep(self, page: P) -> bool: ...


# Pages hold people's data. The loops below never keep a page while the next one is fetched,
# and clear the frames a failure passed through (the pager's checks hold the page they refuse),
# so an error's traceback -- printed with its local variables by Airflow's rich tracebacks --
# reaches no page (see responses.answer for the answers themselves).


@contextmanager
def _forgetting() -> Iterator[None]:
    """A failure leaves with the local variables of the frames it passed through cleared."""
    try:
        yield
    except LeadpipeError as exc:
        forget_locals(exc)
        raise


def read_pages(pager: Pager[P], fetch: Callable[[int], Any]) -> Iterator[P]:
    """Fetch page after page (``fetch(number)``), feed each to ``pager``; yield the ones it keeps."""
    while not pager.done:
        with _forgetting():
            page = pager.feed(fetch(pager.next_number))
        if pager.keep(page):
            yield page
        del page


async def aread_pages(
    pager: Pager[P], fetch: Callable[[int], Awaitable[Any]], concurrency: int
) -> AsyncGenerator[P, None]:
    """Async :func:`read_pages` with up to ``concurrency`` requests in flight, fed back in order."""
    pending: deque[asyncio.Future[Any]] = deque()
    ahead = pager.next_number
    try:
        while not pager.done:
            # Page 1 goes alone: a small pull costs one request, and its answer bounds the read-ahead.
            window = concurrency if pager.next_number > 1 else 1
            while len(pending) < window and pager.may_request(ahead):
                pending.append(asyncio.ensure_future(fetch(ahead)))
                ahead += 1
            with _forgetting():
                page = pager.feed(await pending.popleft())
            if pager.keep(page):
                yield page
            del page
    finally:
        # Read-ahead past the end (or past a failure) is dropped, never leaked.
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        pending.clear()  # a finished task's repr shows its result: a page


def records(pages: Iterator[Any], field: str) -> Iterator[dict[str, Any]]:
    """The rows of each page (its attribute ``field``), in order, holding no page while the next
    one is fetched."""
    for page in pages:
        rows = getattr(page, field)
        del page
        yield from rows
        del rows


async def arecords(pages: AsyncGenerator[Any, None], field: str) -> AsyncIterator[dict[str, Any]]:
    """Async :func:`records`; stops the pages' read-ahead as soon as the consumer stops."""
    async with aclosing(pages):
        async for page in pages:
            rows = getattr(page, field)
            del page
            for row in rows:
                yield row
            row = rows = None  # none kept while the next page is awaited


VISITORS_PATH = "/v1/data"


class VisitorPager:
    """State of one walk through the visitor pages (fed strictly in page order).

    :param query: validated filters (see :func:`airflow_provider_leadpipe.utils.validation.visitor_query`).
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

    @staticmethod
    def parser(number: int) -> Callable[[Any], VisitorPage]:
        """Validates the payload of page ``number`` (run inside ``responses.answer``).

        :raises LeadpipeResponseError: on a malformed page.
        """
        return functools.partial(VisitorPage.from_response, number=number)

    def feed(self, page: VisitorPage) -> VisitorPage:
        """Check page :attr:`next_number` (from :meth:`parser`) and advance.

        :raises LeadpipeResponseError: when a page repeats the previous one exactly (the API
            ignoring ``page``; stopping beats looping forever).
        """
        if self.done:
            raise RuntimeError("the visitor listing is already exhausted")
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

    def keep(self, page: VisitorPage) -> bool:
        return bool(page.records)

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


class AudienceResultsPager:
    """State of one walk through an Orbit run's results (``limit``/``offset``, fed in order).

    A completed run is a frozen snapshot, so offsets are stable and every row comes exactly once.
    The first page says how many rows there are (``total``) and, when it is shorter than asked
    for, the largest page the server serves: later pages use that size. Anything that would lose
    or repeat a row (a moved offset, a changed total, a short or empty page before the end) raises
    :class:`LeadpipeResponseError` instead; a run that is not completed raises
    :class:`LeadpipeConflictError`.
    """

    def __init__(self, page_size: int, *, what: str):
        self.page_size = page_size
        self.what = what
        self.next_number = 1
        self.done = False
        self.rows = 0
        self.total: int | None = None
        self.last_page: int | None = None

    def params(self, number: int) -> dict[str, int]:
        """``limit`` and ``offset`` of page ``number`` (1-based)."""
        return {"limit": self.page_size, "offset": (number - 1) * self.page_size}

    def may_request(self, number: int) -> bool:
        return number <= self.next_number or self.last_page is None or number <= self.last_page

    def keep(self, page: AudienceResultsPage) -> bool:
        return bool(page.results)

    def feed(self, page: AudienceResultsPage) -> AudienceResultsPage:
        """Check page :attr:`next_number` and advance."""
        if self.done:
            raise RuntimeError("the results listing is already exhausted")
        if not page.ready:
            raise LeadpipeConflictError(
                f"Leadpipe {self.what} is {page.state or page.run.status.value}, not completed: "
                "its results cannot be read yet (wait for the run first)",
                http_status=202,
            )
        count, expected = len(page.results), self.params(self.next_number)["offset"]
        if page.offset != expected:
            self._broken(f"page {self.next_number} starts at offset {page.offset}, not {expected}")
        if self.total is None:
            self.total = page.total
            if 0 < count < min(self.page_size, page.total):
                self.page_size = count  # the server's largest page is smaller than asked for
            self.last_page = math.ceil(page.total / self.page_size) if page.total else 1
        elif page.total != self.total:
            self._broken(f"total changed from {self.total} to {page.total} between pages")
        if count > self.page_size:
            self._broken(
                f"page {self.next_number} has {count} rows, more than the {self.page_size} asked for"
            )
        self.rows += count
        self.next_number += 1
        if self.rows > self.total:
            self._broken(f"{self.rows} rows served, more than the total of {self.total}")
        self.done = self.rows >= self.total
        if not self.done and count < self.page_size:
            self._broken(
                f"page {self.next_number - 1} has {count} rows, "
                f"{self.total - self.rows} of {self.total} rows missing"
            )
        return page

    def _broken(self, problem: str) -> None:
        raise LeadpipeResponseError(f"Leadpipe {self.what} results are inconsistent: {problem}")


class ListPager:
    """State of one walk through an offset-paged object list (``limit`` and ``offset``).

    The contract documents ``limit`` for the audience and run lists, and neither an offset nor a
    total, so the rules work without them and use them when the API sends them. The walk asks
    ``limit=page_size`` then ``limit=page_size&offset=<rows so far>`` and ends, in order of precedence, when:

    1. the rows read reach ``meta.total`` (a page shorter than asked for before that is followed:
       the server's largest page is smaller);
    2. ``meta.hasMore`` is false;
    3. otherwise, a page is shorter than ``page_size`` (the meaning of ``limit``).

    Whatever leaves it unable to tell that it has every row raises :class:`LeadpipeResponseError`
    (:meth:`feed`): an id served twice (the API ignores ``offset``, or the list changed between
    pages), a page longer than asked for (the API ignores ``limit``), a ``total`` that changes or is
    exceeded, an empty page before the announced end, a ``nextCursor`` (cursor paging, not offsets).
    """

    def __init__(self, page_size: int, *, what: str):
        self.page_size = page_size
        self.what = what
        self.done = False
        self.rows = 0
        self.pages = 0
        self.total: int | None = None
        self._ids: set[str] = set()

    def params(self) -> dict[str, int]:
        """``limit`` and ``offset`` of the next page (no ``offset`` on the first: it is undocumented,
        so a list that fits one page is asked for exactly as before paging was followed)."""
        if self.rows == 0:
            return {"limit": self.page_size}
        return {"limit": self.page_size, "offset": self.rows}

    def feed(self, ids: list[str], meta: ListMeta | None) -> None:
        """Check the next page (the ids of its rows, its ``meta``) and advance."""
        if self.done:
            raise RuntimeError(f"the {self.what} is already read to its end")
        count, number = len(ids), self.pages + 1
        repeated = self._ids.intersection(ids)
        if repeated or len(set(ids)) != count:
            self._broken(
                f"page {number} repeats rows already served (the API ignores 'offset', "
                "or the list changed while it was read)"
            )
        if count > self.page_size:
            self._broken(
                f"page {number} has {count} rows for limit={self.page_size} (the API ignores 'limit')"
            )
        self._ids.update(ids)
        self.rows += count
        self.pages = number
        total = meta.total if meta is not None else None
        if total is not None:
            if self.total is not None and total != self.total:
                self._broken(f"its total changed from {self.total} to {total} between pages")
            self.total = total
            if self.rows > total:
                self._broken(f"{self.rows} rows served, more than its total of {total}")
            self.done = self.rows >= total
            if not self.done and count == 0:
                self._broken(f"page {number} is empty with {total - self.rows} of {total} rows still to come")
            return
        if meta is not None and meta.has_more is not None:
            self.done = not meta.has_more
            if not self.done and count == 0:
                self._broken(f"page {number} is empty but says more rows follow (hasMore)")
            return
        if meta is not None and meta.next_cursor is not None:
            self._broken("the API pages it by cursor (meta.nextCursor), which this provider does not follow")
        self.done = count < self.page_size

    def _broken(self, problem: str) -> None:
        raise LeadpipeResponseError(
            f"Leadpipe {self.what} cannot be read whole: {problem}; refusing a partial list"
        )


def check_whole(count: int, meta: ListMeta | None, *, what: str) -> None:
    """Refuse a list served in one answer whose ``meta`` says it holds more than ``count`` rows.

    :raises LeadpipeResponseError: ``meta.total`` above ``count``, ``meta.hasMore`` true, or a
        ``nextCursor``: the API pages a list whose documented answer holds all of it.
    """
    if meta is None:
        return
    problem = None
    if meta.total is not None and meta.total > count:
        problem = f"it says {meta.total} rows (meta.total) and sent {count}"
    elif meta.has_more:
        problem = f"it sent {count} rows and says more follow (meta.hasMore)"
    elif meta.next_cursor is not None:
        problem = f"it sent {count} rows and a cursor to more (meta.nextCursor)"
    if problem:
        raise LeadpipeResponseError(
            f"Leadpipe {what} cannot be read whole: {problem}, and the endpoint has no documented "
            "paging to follow; refusing a partial list"
        )
