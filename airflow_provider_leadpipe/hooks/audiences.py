"""Orbit intent audiences (``/v1/intent/audiences...``, generation 3) for :class:`LeadpipeHook`.

:class:`AudiencesHookMixin` adds audience CRUD, config checks (validate, preview, the filter
catalog, topic look-ups), runs (queue with an ``Idempotency-Key``, list,
get one, cancel), results (a page, or every row through sync and async iterators), run stats, the
streamed ``export.csv`` and stored exports with their verified download.

Sync and async cannot drift: each operation is written once, as a plan (:mod:`.audience_plans`,
answers read by :mod:`.audience_answers`), which the sync method runs with ``self._run`` and its
``a``-prefixed twin with ``await self._arun``; nothing else differs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from airflow_provider_leadpipe.hooks import audience_answers as answers
from airflow_provider_leadpipe.hooks import audience_plans as orbit
from airflow_provider_leadpipe.hooks import paging
from airflow_provider_leadpipe.hooks import settings as api_settings
from airflow_provider_leadpipe.hooks.audience_answers import ExportCsvStream
from airflow_provider_leadpipe.hooks.body import bound_body
from airflow_provider_leadpipe.hooks.plans import Plan, single
from airflow_provider_leadpipe.hooks.settings import ApiSettings
from airflow_provider_leadpipe.models import (
    Audience,
    AudienceExport,
    AudienceResultsPage,
    AudienceRun,
    AudienceRunStats,
)
from airflow_provider_leadpipe.models.audience_configs import (
    AudienceConfigCheck,
    AudiencePreview,
    FilterCatalog,
    Topic,
)
from airflow_provider_leadpipe.utils import validation
from airflow_provider_leadpipe.utils.storage import DownloadSink

DOWNLOAD_CHUNK = 1024 * 1024

T = TypeVar("T")


# -- the mixin ------------------------------------------------------------------------------------


class AudiencesHookMixin:
    """Orbit intent audiences; mixed into :class:`~airflow_provider_leadpipe.hooks.leadpipe.LeadpipeHook`."""

    if TYPE_CHECKING:

        @property
        def settings(self) -> ApiSettings: ...

        def get_conn(self) -> httpx.Client: ...
        async def aget_conn(self) -> httpx.AsyncClient: ...
        async def aget_settings(self) -> ApiSettings: ...

        send: Callable[..., Any]
        asend: Callable[..., Awaitable[Any]]

        def _run(self, plan: Plan[T]) -> T: ...
        async def _arun(self, plan: Plan[T]) -> T: ...

    # -- audiences ------------------------------------------------------------------------------

    def list_audiences(
        self, status: str | None = None, *, page_size: int = orbit.AUDIENCES_PAGE_SIZE
    ) -> list[Audience]:
        """Every audience of the organization, optionally only those in ``status``
        (``draft``/``active``/``paused``), read page by page (``page_size``, 1-100) to the end.

        :raises LeadpipeResponseError: when the answers do not let it tell that it has every
            audience (see :class:`~airflow_provider_leadpipe.hooks.paging.ListPager`).
        """
        return self._run(orbit.list_audiences(status, page_size))

    async def alist_audiences(
        self, status: str | None = None, *, page_size: int = orbit.AUDIENCES_PAGE_SIZE
    ) -> list[Audience]:
        """Async :meth:`list_audiences`."""
        return await self._arun(orbit.list_audiences(status, page_size))

    def get_audience(self, audience_id: str) -> Audience:
        """One audience. :raises LeadpipeNotFoundError: naming the id."""
        return self._run(orbit.get_audience(audience_id))

    async def aget_audience(self, audience_id: str) -> Audience:
        """Async :meth:`get_audience`."""
        return await self._arun(orbit.get_audience(audience_id))

    def create_audience(self, name: str, config: Mapping[str, Any], status: str | None = None) -> Audience:
        """Create an audience; ``config`` goes to the API as given (opaque).

        Not retried once it may have reached the server (a POST without idempotency key).
        :raises LeadpipeSlotsFullError: ``status="active"`` without a free audience slot.
        """
        return self._run(orbit.create_audience(name, config, status))

    async def acreate_audience(
        self, name: str, config: Mapping[str, Any], status: str | None = None
    ) -> Audience:
        """Async :meth:`create_audience`."""
        return await self._arun(orbit.create_audience(name, config, status))

    def update_audience(
        self,
        audience_id: str,
        *,
        name: str | None = None,
        status: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Audience:
        """PATCH what is given (at least one of ``name``, ``status``, ``config``).

        :raises LeadpipeSlotsFullError: activating without a free audience slot.
        """
        return self._run(orbit.update_audience(audience_id, name, status, config))

    async def aupdate_audience(
        self,
        audience_id: str,
        *,
        name: str | None = None,
        status: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Audience:
        """Async :meth:`update_audience`."""
        return await self._arun(orbit.update_audience(audience_id, name, status, config))

    def delete_audience(self, audience_id: str) -> dict[str, Any]:
        """Delete an audience; returns the API's ``data`` as it sent it (``{}`` for no body)."""
        return self._run(orbit.delete_audience(audience_id))

    async def adelete_audience(self, audience_id: str) -> dict[str, Any]:
        """Async :meth:`delete_audience`."""
        return await self._arun(orbit.delete_audience(audience_id))

    # -- configs before an audience is saved -------------------------------------------------------

    def validate_audience_config(self, config: Mapping[str, Any]) -> AudienceConfigCheck:
        """What Orbit says of ``config``: ``valid``, ``config_hash``, ``normalized_config``, or its
        problems (``errors``; an invalid config is an answer, not an error)."""
        return self._run(orbit.validate_config(config))

    async def avalidate_audience_config(self, config: Mapping[str, Any]) -> AudienceConfigCheck:
        """Async :meth:`validate_audience_config`."""
        return await self._arun(orbit.validate_config(config))

    def preview_audience(self, config: Mapping[str, Any]) -> AudiencePreview:
        """Who ``config`` would match today (``total_count``, ``breakdowns``; a masked ``sample``).

        :raises LeadpipeConfigError: naming each problem of an invalid config."""
        return self._run(orbit.preview_config(config))

    async def apreview_audience(self, config: Mapping[str, Any]) -> AudiencePreview:
        """Async :meth:`preview_audience`."""
        return await self._arun(orbit.preview_config(config))

    def get_audience_filters(self) -> FilterCatalog:
        """The filter catalog (the keys and values a config's ``filters`` may use)."""
        return self._run(orbit.filter_catalog())

    async def aget_audience_filters(self) -> FilterCatalog:
        """Async :meth:`get_audience_filters`."""
        return await self._arun(orbit.filter_catalog())

    def search_topics(
        self, query: str, *, limit: int = 10, topic_type: str | None = None, industry: str | None = None
    ) -> list[Topic]:
        """Topics whose name matches ``query`` (``limit`` 1-50)."""
        return self._run(orbit.search_topics(query, limit, topic_type, industry))

    async def asearch_topics(
        self, query: str, *, limit: int = 10, topic_type: str | None = None, industry: str | None = None
    ) -> list[Topic]:
        """Async :meth:`search_topics`."""
        return await self._arun(orbit.search_topics(query, limit, topic_type, industry))

    def get_topics(self, topic_ids: Sequence[int]) -> list[Topic]:
        """The topics of these ids, in that order (an unknown id is left out)."""
        return self._run(orbit.get_topics(topic_ids))

    async def aget_topics(self, topic_ids: Sequence[int]) -> list[Topic]:
        """Async :meth:`get_topics`."""
        return await self._arun(orbit.get_topics(topic_ids))

    def resolve_topic_ids(self, names: Sequence[str]) -> list[int]:
        """The id of each topic name (exact, case-insensitive).

        :raises LeadpipeConfigError: naming each unknown or ambiguous name with its candidates."""
        return self._run(orbit.resolve_topic_names(names))

    async def aresolve_topic_ids(self, names: Sequence[str]) -> list[int]:
        """Async :meth:`resolve_topic_ids`."""
        return await self._arun(orbit.resolve_topic_names(names))

    # -- runs -----------------------------------------------------------------------------------

    def create_audience_run(self, audience_id: str, *, idempotency_key: str | None = None) -> AudienceRun:
        """Queue a manual run, sending ``Idempotency-Key: idempotency_key(idempotency_key)``.

        The API returns the same run for the same key, so this POST is retried on transient
        failures (429, 5xx, a lost response): a retry can only get the run the first attempt
        created, never a second one. Without a key, a random one is made for this call, so its own
        retries are still safe (a later call makes a new run).
        """
        return self._run(orbit.create_run(audience_id, idempotency_key))

    async def acreate_audience_run(
        self, audience_id: str, *, idempotency_key: str | None = None
    ) -> AudienceRun:
        """Async :meth:`create_audience_run`."""
        return await self._arun(orbit.create_run(audience_id, idempotency_key))

    def list_audience_runs(
        self, audience_id: str, *, limit: int | None = None, page_size: int = orbit.MAX_RUNS_LIMIT
    ) -> list[AudienceRun]:
        """The audience's runs in the order the API serves them (newest first).

        With ``limit=None`` (the default) every run, read page by page (``page_size``, 1-100) to
        the end; with ``limit`` (1-100) one request for at most that many, the newest.

        :raises LeadpipeResponseError: (``limit=None``) when the answers do not let it tell that it
            has every run (see :class:`~airflow_provider_leadpipe.hooks.paging.ListPager`).
        """
        return self._run(orbit.list_runs(audience_id, limit, page_size))

    async def alist_audience_runs(
        self, audience_id: str, *, limit: int | None = None, page_size: int = orbit.MAX_RUNS_LIMIT
    ) -> list[AudienceRun]:
        """Async :meth:`list_audience_runs`."""
        return await self._arun(orbit.list_runs(audience_id, limit, page_size))

    def get_audience_run(self, audience_id: str, run_id: str) -> AudienceRun:
        """One run, whatever its state (the API has no single-run GET).

        Asks ``results?limit=1`` (202 while queued/running: that body's run); once the run is
        finished, the full run object (``dataDate``, ``errorCode``...) from the runs list, falling
        back to what the results answer said when the run is no longer among the newest 100.

        :raises LeadpipeNotFoundError: naming the audience and run ids.
        """
        return self._run(orbit.get_run(audience_id, run_id))

    async def aget_audience_run(self, audience_id: str, run_id: str) -> AudienceRun:
        """Async :meth:`get_audience_run`."""
        return await self._arun(orbit.get_run(audience_id, run_id))

    def cancel_audience_run(self, audience_id: str, run_id: str) -> None:
        """Cancel a queued run (the API refuses any other state with a typed 4xx error)."""
        self._run(orbit.cancel_run(audience_id, run_id))

    async def acancel_audience_run(self, audience_id: str, run_id: str) -> None:
        """Async :meth:`cancel_audience_run`."""
        await self._arun(orbit.cancel_run(audience_id, run_id))

    # -- results --------------------------------------------------------------------------------

    def get_audience_results_page(
        self, audience_id: str, run_id: str, *, limit: int = orbit.MAX_RESULTS_LIMIT, offset: int = 0
    ) -> AudienceResultsPage:
        """One page of a run's people. HTTP 202 (queued/running) is a page with ``ready=False``.

        :raises LeadpipeAudienceRunError: HTTP 409 (the run failed or was cancelled), with the
            run's status, ``errorCode`` and ``errorMessage``.
        """
        return self._run(orbit.results_page(audience_id, run_id, limit, offset))

    async def aget_audience_results_page(
        self, audience_id: str, run_id: str, *, limit: int = orbit.MAX_RESULTS_LIMIT, offset: int = 0
    ) -> AudienceResultsPage:
        """Async :meth:`get_audience_results_page`."""
        return await self._arun(orbit.results_page(audience_id, run_id, limit, offset))

    def iter_audience_result_pages(
        self, audience_id: str, run_id: str, *, page_size: int = orbit.MAX_RESULTS_LIMIT
    ) -> Iterator[AudienceResultsPage]:
        """Every non-empty page of a completed run, in order: every row exactly once.

        :raises LeadpipeConflictError: the run is not completed yet.
        :raises LeadpipeAudienceRunError: the run failed or was cancelled.
        """
        pager, fetch = self._results_walk(audience_id, run_id, page_size)
        return paging.read_pages(pager, lambda number: self._run(fetch(number)))

    def iter_audience_results(
        self, audience_id: str, run_id: str, *, page_size: int = orbit.MAX_RESULTS_LIMIT
    ) -> Iterator[dict[str, Any]]:
        """Every person of a completed run, in order (the API's own dicts: personal data)."""
        pages = self.iter_audience_result_pages(audience_id, run_id, page_size=page_size)
        return paging.records(pages, "results")

    def aiter_audience_result_pages(
        self, audience_id: str, run_id: str, *, page_size: int = orbit.MAX_RESULTS_LIMIT, concurrency: int = 4
    ) -> AsyncGenerator[AudienceResultsPage, None]:
        """Async :meth:`iter_audience_result_pages` with up to ``concurrency`` (1-16) pages in
        flight; still yielded in order, at most ``concurrency`` pages held in memory."""
        pager, fetch = self._results_walk(audience_id, run_id, page_size)
        concurrency = validation.concurrency(concurrency)
        return paging.aread_pages(pager, lambda number: self._arun(fetch(number)), concurrency)

    def aiter_audience_results(
        self, audience_id: str, run_id: str, *, page_size: int = orbit.MAX_RESULTS_LIMIT, concurrency: int = 4
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`iter_audience_results` (see :meth:`aiter_audience_result_pages`)."""
        pages = self.aiter_audience_result_pages(
            audience_id, run_id, page_size=page_size, concurrency=concurrency
        )
        return paging.arecords(pages, "results")

    @staticmethod
    def _results_walk(
        audience_id: str, run_id: str, page_size: int
    ) -> tuple[paging.AudienceResultsPager, Callable[[int], Plan[AudienceResultsPage]]]:
        audience_id, run_id = orbit.path_id(audience_id, "audience_id"), orbit.path_id(run_id, "run_id")
        size = validation.whole_number(page_size, "page_size", 1, orbit.MAX_RESULTS_LIMIT)
        pager = paging.AudienceResultsPager(size, what=f"audience run {run_id}")

        def fetch(number: int) -> Plan[AudienceResultsPage]:
            params = pager.params(number)
            return orbit.results_page(audience_id, run_id, params["limit"], params["offset"])

        return pager, fetch

    # -- stats and exports ----------------------------------------------------------------------

    def get_audience_run_stats(self, audience_id: str, run_id: str) -> AudienceRunStats:
        """Stats of a completed run (fill rates, score histogram...)."""
        return self._run(orbit.stats(audience_id, run_id))

    async def aget_audience_run_stats(self, audience_id: str, run_id: str) -> AudienceRunStats:
        """Async :meth:`get_audience_run_stats`."""
        return await self._arun(orbit.stats(audience_id, run_id))

    @contextmanager
    def stream_audience_export_csv(self, audience_id: str, run_id: str) -> Iterator[ExportCsvStream]:
        """``export.csv`` of a completed run, streamed as the API sends it (capped by the API:
        compare :attr:`ExportCsvStream.row_cap` with the run's ``resultCount``)."""
        call = orbit.export_csv(audience_id, run_id)
        response = answers.stream_or_raise(self._run(single(call)), audience_id, run_id)
        try:
            yield ExportCsvStream(response, self.settings)
        finally:
            response.close()

    @asynccontextmanager
    async def astream_audience_export_csv(
        self, audience_id: str, run_id: str
    ) -> AsyncIterator[ExportCsvStream]:
        """Async :meth:`stream_audience_export_csv` (read with ``aiter_bytes()``)."""
        call = orbit.export_csv(audience_id, run_id)
        response = answers.stream_or_raise(await self._arun(single(call)), audience_id, run_id)
        try:
            yield ExportCsvStream(response, await self.aget_settings())
        finally:
            await response.aclose()

    def create_audience_export(self, audience_id: str, run_id: str) -> AudienceExport:
        """Create (or reuse) the stored CSV export of a completed run; comes with a fresh signed URL.

        Not retried once it may have reached the server (a POST without idempotency key); calling
        it again is harmless: the API reuses the stored export.
        """
        return self._run(orbit.create_export(audience_id, run_id))

    async def acreate_audience_export(self, audience_id: str, run_id: str) -> AudienceExport:
        """Async :meth:`create_audience_export`."""
        return await self._arun(orbit.create_export(audience_id, run_id))

    def get_audience_export(self, audience_id: str, run_id: str, export_id: str) -> AudienceExport:
        """A stored export with a fresh signed download URL (ask just before downloading)."""
        return self._run(orbit.get_export(audience_id, run_id, export_id))

    async def aget_audience_export(self, audience_id: str, run_id: str, export_id: str) -> AudienceExport:
        """Async :meth:`get_audience_export`."""
        return await self._arun(orbit.get_export(audience_id, run_id, export_id))

    def download_audience_export(self, export: AudienceExport, destination: Any) -> int:
        """Download a completed export from its signed URL into ``destination`` (a path, a
        ``pathlib.Path``/``ObjectStoragePath``, or a binary file object); return the bytes written.

        The signed URL is another host: the request carries no API key, only the connection's
        network settings. ``byteSize`` and ``contentSha1`` are verified (a ``Content-Length`` larger
        than ``byteSize`` is refused before the first byte, and reading stops as soon as the bytes
        exceed it, so no more than ``byteSize`` is written anywhere); a path destination receives
        the file only once it is complete and verified (written through a temporary beside it).
        """
        url = answers.signed_url(export)
        # The connection's proxy, CA bundle and timeout; no API key (settings.network_kwargs).
        with (
            httpx.Client(**api_settings.network_kwargs(self.settings, url)) as client,
            _sink(export, destination) as sink,
        ):
            response = self.send(
                client.build_request("GET", url),
                handler=answers.download_response,
                stream=True,
                client=client,
            )
            _bound(response, sink)
            try:
                for chunk in ExportCsvStream(response, self.settings).iter_bytes(DOWNLOAD_CHUNK):
                    sink.write(chunk)
            finally:
                response.close()
            return sink.verified()

    async def adownload_audience_export(self, export: AudienceExport, destination: Any) -> int:
        """Async :meth:`download_audience_export` (the writes to ``destination`` are blocking)."""
        url = answers.signed_url(export)
        # The connection's proxy, CA bundle and timeout; no API key (settings.network_kwargs).
        async with httpx.AsyncClient(
            **api_settings.network_kwargs(await self.aget_settings(), url)
        ) as client:
            with _sink(export, destination) as sink:
                request = client.build_request("GET", url)
                response = await self.asend(
                    request, handler=answers.download_response, stream=True, client=client
                )
                _bound(response, sink)
                try:
                    async for chunk in ExportCsvStream(response, await self.aget_settings()).aiter_bytes(
                        DOWNLOAD_CHUNK
                    ):
                        sink.write(chunk)
                finally:
                    await response.aclose()
                return sink.verified()


def _sink(export: AudienceExport, destination: Any) -> DownloadSink:
    assert export.byte_size is not None  # checked by answers.signed_url
    what = f"Leadpipe audience export {export.id}"
    return DownloadSink(destination, what=what, size=export.byte_size, sha1=export.content_sha1)


def _bound(response: httpx.Response, sink: DownloadSink) -> httpx.Response:
    """Make reading ``response`` stop before any byte past ``byteSize`` (a larger
    ``Content-Length`` before the first byte) with the sink's ``too_large``."""
    return bound_body(response, limit=sink.expected_size, too_large=sink.too_large)


__all__ = ["AudiencesHookMixin", "ExportCsvStream"]
