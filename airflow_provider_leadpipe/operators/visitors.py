"""Pull identified visitors from ``GET /v1/data`` into a JSON Lines file on any object storage."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections.abc import Iterable, Sequence
from contextlib import aclosing
from typing import IO, TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe import validation
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from airflow_provider_leadpipe.operators.base import LeadpipeBaseOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

COMPRESSIONS = ("infer", "gzip", None)
#: Log progress every this many pages (50 records each).
PROGRESS_EVERY = 100
_LOCAL_PROTOCOLS = ("", "file", "local")


class LeadpipeVisitorsToStorageOperator(LeadpipeBaseOperator):
    """Write every identified visitor matching the filters to one JSON Lines file.

    One record per line, exactly as the API returned it, in the API's order. The file goes to an
    Airflow :class:`ObjectStoragePath` (``file://``, ``s3://``, ``gs://``, ... through the matching
    provider). It is written under a hidden temporary name beside the target (``.<name>.<id>.tmp``)
    and moved into place only when the last page has been written, so a failed or killed pull
    never leaves a partial file at ``path``, and the temporary object is removed. A re-run replaces
    the file.

    Pages are requested ``concurrency`` at a time and written in page order; memory holds at most
    ``concurrency`` pages (50 records each), however large the pull. Page numbers over live data
    are not a snapshot: visitors identified during the pull can shift pages, so a record may
    appear twice (see docs/visitors-and-pixels.md).

    Returns ``{"path": <str>, "records": <int>, "pages": <int>}`` (pages that held records) to XCom.

    :param path: target file, e.g. ``"s3://bucket/leadpipe/visitors/{{ ds }}.jsonl.gz"`` (templated),
        or an ``ObjectStoragePath``. Parent folders are created for local paths.
    :param timeframe: ``24h``, ``7d``, ``14d``, ``30d``, ``90d`` or ``all`` (templated); None or ``""``
        for the API default.
    :param domain: only visitors of this tracked domain (templated).
    :param visitor_email: only this person's visit journey (templated; the API's ``email`` filter).
        Not ``email``: that is BaseOperator's address for failure alerts.
    :param compression: ``"gzip"``, None, or ``"infer"`` (gzip when ``path`` ends in ``.gz``; the default).
    :param concurrency: pages requested at once, 1-16 (default 4).
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
        "storage_conn_id",
        "leadpipe_conn_id",
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
        storage_conn_id: str | None = None,
        leadpipe_conn_id: str = LeadpipeHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(leadpipe_conn_id=leadpipe_conn_id, **kwargs)
        if compression not in COMPRESSIONS:
            raise LeadpipeConfigError(f"compression must be 'infer', 'gzip' or None, got {compression!r}")
        self.path = path
        self.timeframe = timeframe
        self.domain = domain
        self.visitor_email = visitor_email
        self.compression = compression
        self.concurrency = validation.concurrency(concurrency)
        self.storage_conn_id = storage_conn_id
        self._temporary: ObjectStoragePath | None = None
        # Bad literals fail at DAG parse time; templated values are checked once rendered.
        if not validation.has_template(timeframe, domain, visitor_email):
            self._query()
        if not validation.has_template(path):
            _path_text(path)

    def execute(self, context: Context) -> dict[str, Any]:
        # Every argument is checked before anything is requested or written.
        query = self._query()
        target = self._target()
        use_gzip = self.compression == "gzip" or (self.compression == "infer" and target.name.endswith(".gz"))
        self.hook.settings  # noqa: B018 -- resolve the connection here, synchronously, not in the loop
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        if target.protocol in _LOCAL_PROTOCOLS:
            target.parent.mkdir(parents=True, exist_ok=True)
        self.log.info(
            "Pulling Leadpipe visitors (%s) to %s%s",
            # The email filter is personal data: say that it is set, not what it is.
            ", ".join(f"{key}={'<set>' if key == 'email' else value}" for key, value in query.items())
            or "no filters",
            target,
            " (gzip)" if use_gzip else "",
        )
        self._temporary = temporary
        try:
            with temporary.open("wb") as raw:
                out = cast(
                    "IO[bytes]",
                    gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) if use_gzip else raw,
                )
                try:
                    records, pages = asyncio.run(self._pull(out))
                finally:
                    if use_gzip:
                        out.close()
            temporary.move(target)
        except BaseException:
            self._discard(temporary)
            raise
        finally:
            self._temporary = None
        self.log.info("Wrote %d visitor records from %d page(s) to %s", records, pages, target)
        return {"path": str(target), "records": records, "pages": pages}

    async def _pull(self, out: IO[bytes]) -> tuple[int, int]:
        records = pages = 0
        async with self.hook:  # closes the async client when the pull ends
            stream = self.hook.aiter_visitor_pages(
                self.timeframe, self.domain, self.visitor_email, concurrency=self.concurrency
            )
            async with aclosing(stream):
                async for page in stream:
                    if page.number == 1 and page.meta is not None and page.meta.total is not None:
                        self.log.info("Leadpipe reports %d matching visitor(s)", page.meta.total)
                    # A blocking write of one page (~50 records); read-ahead requests stay in flight.
                    out.write(jsonl(page.records))
                    records += len(page.records)
                    pages += 1
                    if pages % PROGRESS_EVERY == 0:
                        self.log.info("... %d records from %d pages so far", records, pages)
        return records, pages

    def _query(self) -> dict[str, str]:
        return validation.visitor_query(
            self.timeframe, self.domain, self.visitor_email, email_name="visitor_email"
        )

    def _target(self) -> ObjectStoragePath:
        if isinstance(self.path, ObjectStoragePath):
            return self.path
        path = _path_text(self.path)
        target = ObjectStoragePath(path, conn_id=self.storage_conn_id or None)
        if not target.name or (target.protocol in _LOCAL_PROTOCOLS and target.is_dir()):
            raise LeadpipeConfigError(f"path must name a file, not a folder: {self.path!r}")
        return target

    def _discard(self, temporary: ObjectStoragePath) -> None:
        try:
            temporary.unlink(missing_ok=True)
        except Exception as exc:  # best effort: the original error matters more
            self.log.warning("Could not remove the temporary file %s: %s", temporary, exc)

    def on_kill(self) -> None:
        """Remove the temporary file of a pull that is being killed (SIGTERM / timeout)."""
        if self._temporary is not None:
            self._discard(self._temporary)


def _path_text(path: Any) -> str:
    """The checks on ``path`` that need no storage access: a non-blank string not ending in ``/``."""
    if isinstance(path, ObjectStoragePath):
        return str(path)
    if not isinstance(path, str) or not path.strip():
        raise LeadpipeConfigError(f"path must be a file path or URL, got {path!r}")
    if path.strip().endswith("/"):
        raise LeadpipeConfigError(f"path must name a file, not a folder: {path!r}")
    return path.strip()


def jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    """Records as UTF-8 JSON Lines: one compact object per line, key order kept."""
    return "".join(
        json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n" for record in records
    ).encode()
