"""Pull identified visitors from ``GET /v1/data`` into a JSON Lines file on any object storage."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import aclosing
from typing import IO, TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.operators.base import LeadpipeBaseOperator
from airflow_provider_leadpipe.utils import assets, seen, storage, validation
from airflow_provider_leadpipe.utils.lineage import LeadpipeLineageMixin
from airflow_provider_leadpipe.utils.storage import jsonl
from airflow_provider_leadpipe.utils.tasks import Literal

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Log progress every this many pages (50 records each).
PROGRESS_EVERY = 100


class LeadpipeVisitorsToStorageOperator(LeadpipeLineageMixin, LeadpipeBaseOperator):
    """Write every identified visitor matching the filters to one JSON Lines file.

    One record per line, exactly as the API returned it, in the API's order (a lone UTF-16
    surrogate is kept as its JSON escape). The file goes to an Airflow :class:`ObjectStoragePath`
    (``file://``, ``s3://``, ``gs://``, ... through the matching provider). A target that is an
    existing folder -- on an object store, a prefix holding objects -- is refused before anything
    is pulled. The file is written under a hidden temporary name beside the target
    (``.<name>.<id>.tmp``) and moved into place only when the last page has been written, so a
    failed or killed pull never leaves a partial file at ``path``, and the temporary object is
    removed. A re-run replaces the file (see :mod:`airflow_provider_leadpipe.utils.storage`).

    Pages are requested ``concurrency`` at a time and written in page order; memory holds at most
    ``concurrency`` pages (50 records each), however large the pull. Page numbers over live data
    are not a snapshot: visitors identified during the pull can shift pages, so a record may
    appear twice (see docs/visitors-and-pixels.md).

    When the pull ends with fewer records than the API announced (``meta.total`` of the last page
    that sent one), a warning names both numbers (``on_incomplete="warn"``), or the task fails and
    nothing is written (``"fail"``).

    Returns ``{"path": <str>, "records": <int>, "pages": <int>, "expected_records": <int | None>}``
    to XCom: ``pages`` that held records, ``expected_records`` the API's announced total (None if
    it sent none). The event of every asset in ``outlets`` gets ``{"path", "records",
    "duplicates_skipped"}`` in ``extra`` (:mod:`airflow_provider_leadpipe.utils.assets`).

    With ``only_new=True`` the file holds only records this task has not landed before, each once
    (pages that shift while paging repeat records): identified by a fingerprint of the whole record,
    or of ``dedupe_keys``. What was landed is remembered as fingerprints in a state object beside
    the file (:mod:`airflow_provider_leadpipe.utils.seen`: where, why, and how file and state change
    together); a retried or cleared run lands again what it landed before. The XCom adds
    ``duplicates_skipped`` (repeats within the pull), ``seen_before`` (landed by an earlier run),
    ``state_size`` (fingerprints remembered) and ``state_path``; ``records`` counts what was
    written, and the completeness check compares what arrived, before de-duplication.

    :param path: target file, e.g. ``"s3://bucket/leadpipe/visitors/{{ ds }}.jsonl.gz"`` (templated),
        or an ``ObjectStoragePath``. Parent folders are created for local paths.
    :param timeframe: ``24h``, ``7d``, ``14d``, ``30d``, ``90d`` or ``all`` (templated); None or ``""``
        for the API default.
    :param domain: only visitors of this tracked domain (templated).
    :param visitor_email: only this person's visit journey (templated; the API's ``email`` filter).
        Not ``email``: that is BaseOperator's address for failure alerts.
    :param compression: ``"gzip"``, None, or ``"infer"`` (gzip when ``path`` ends in ``.gz``; the default).
    :param concurrency: pages requested at once, 1-16 (default 4).
    :param on_incomplete: ``"warn"`` (the default), ``"fail"``, or None to skip the comparison.
    :param only_new: land only records this task has not landed before (default False).
    :param dedupe_keys: the fields that identify a record for ``only_new`` (e.g. ``["email"]``);
        None for the whole record. A record without one of them fails the task, naming the field.
    :param state_path: where ``only_new`` keeps its state (templated); None for
        ``.leadpipe-only-new.<task>.state`` beside the file. Set it when the folder changes per run.
    :param storage_conn_id: Airflow connection for the object store (templated); None for the
        store's default connection.
    :param leadpipe_conn_id: the Leadpipe connection (templated).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    template_fields: Sequence[str] = (
        "path",
        "timeframe",
        "domain",
        "visitor_email",
        "state_path",
        "storage_conn_id",
        "leadpipe_conn_id",
    )
    literals = (
        Literal(("timeframe", "domain", "visitor_email"), "_query", named=False),
        Literal(("path",), storage.check_path, named=False),
    )
    ui_color = "#e8f1fd"

    def __init__(
        self,
        *,
        path: str | ObjectStoragePath,
        timeframe: str | None = None,
        domain: str | None = None,
        visitor_email: str | None = None,
        compression: str | None = "infer",
        concurrency: int = 4,
        on_incomplete: str | None = "warn",
        only_new: bool = False,
        dedupe_keys: Sequence[str] | None = None,
        state_path: str | ObjectStoragePath | None = None,
        storage_conn_id: str | None = None,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(leadpipe_conn_id=leadpipe_conn_id, **kwargs)
        self.path = path
        self.timeframe = timeframe
        self.domain = domain
        self.visitor_email = visitor_email
        self.compression = storage.check_compression(compression)
        self.concurrency = validation.concurrency(concurrency)
        self.on_incomplete = storage.check_on_incomplete(on_incomplete)
        self.only_new = bool(only_new)
        self.dedupe_keys = seen.check_dedupe_keys(dedupe_keys)
        self.state_path = state_path
        self.storage_conn_id = storage_conn_id
        self._seen: seen.SeenState | None = None
        self._file: storage.AtomicFile | None = None
        self.check_literals()

    def execute(self, context: Context) -> dict[str, Any]:
        # Every argument and the target are checked before anything is requested or written.
        query = self._query()
        target = storage.file_target(self.path, conn_id=self.storage_conn_id)
        use_gzip = storage.uses_gzip(target, self.compression)
        self.hook.settings  # noqa: B018 -- resolve the connection here, synchronously, not in the loop
        self.log.info(
            "Pulling Leadpipe visitors (%s) to %s%s",
            # The email filter is personal data: say that it is set, not what it is.
            ", ".join(f"{key}={'<set>' if key == 'email' else value}" for key, value in query.items())
            or "no filters",
            target,
            " (gzip)" if use_gzip else "",
        )
        self._file, state = seen.open_landing(
            target,
            context,
            only_new=self.only_new,
            keys=self.dedupe_keys,
            state_path=self.state_path,
            conn_id=self.storage_conn_id,
            compress=use_gzip,
        )
        self._seen = state
        try:
            with self._file as out:
                records, pages, expected = asyncio.run(self._pull(out))
                # Inside the block: with on_incomplete="fail" nothing reaches the target.
                storage.check_complete(
                    records,
                    expected,
                    on_incomplete=self.on_incomplete,
                    what="visitor records",
                    logger=self.log,
                )
            if state is not None:
                state.commit()
        finally:
            self._file = self._seen = None
        written = records - (state.duplicates + state.seen_before if state else 0)
        self.log.info("Wrote %d visitor records from %d page(s) to %s", written, pages, target)
        self.record_lineage(self.hook.settings.base_url, "visitors", target, written)
        result = {"path": str(target), "records": written, "pages": pages, "expected_records": expected}
        if state is not None:
            result |= seen.logged_summary(state, self.log)
        extra = {
            "path": str(target),
            "records": written,
            "duplicates_skipped": result.get("duplicates_skipped", 0),
        }
        assets.emit(self.outlets, context, extra)
        return result

    async def _pull(self, out: IO[bytes]) -> tuple[int, int, int | None]:
        """(records written, pages that held records, the API's latest announced total)."""
        records = pages = 0
        expected: int | None = None
        async with self.hook:  # closes the async client when the pull ends
            stream = self.hook.aiter_visitor_pages(
                self.timeframe, self.domain, self.visitor_email, concurrency=self.concurrency
            )
            async with aclosing(stream):
                async for page in stream:
                    if page.meta is not None and page.meta.total is not None:
                        if expected is None:
                            self.log.info("Leadpipe reports %d matching visitor(s)", page.meta.total)
                        expected = page.meta.total
                    # A blocking write of one page (~50 records); read-ahead requests stay in flight.
                    try:
                        kept = seen.new_only(self._seen, page.records, records)
                    except LeadpipeConfigError:  # a dedupe key is missing: named, never quoted
                        del page  # no record in reach of the traceback
                        raise
                    out.write(jsonl(kept, page=page.number, offset=records))
                    del kept
                    records += len(page.records)
                    pages += 1
                    if pages % PROGRESS_EVERY == 0:
                        self.log.info("... %d records from %d pages so far", records, pages)
                    del page  # personal data: not kept while the next page is awaited (tracebacks)
        return records, pages, expected

    def _query(self, *given: Any) -> dict[str, str]:
        """The visitor query of ``given`` (timeframe, domain, visitor_email), else of this task's."""
        timeframe, domain, email = given or (self.timeframe, self.domain, self.visitor_email)
        return validation.visitor_query(timeframe, domain, email, email_name="visitor_email")

    def on_kill(self) -> None:
        """Remove the temporary file of a pull that is being killed (SIGTERM / timeout)."""
        if self._file is not None:
            self._file.discard()
