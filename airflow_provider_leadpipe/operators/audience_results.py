"""A completed Orbit audience run's people, landed in object storage:
:class:`LeadpipeAudienceResultsToStorageOperator`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import aclosing
from typing import IO, TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe.conditions.audiences import AudienceRunCondition
from airflow_provider_leadpipe.exceptions import (
    LeadpipeConfigError,
    LeadpipeError,
    LeadpipeExportTruncatedError,
    LeadpipeNotFoundError,
)
from airflow_provider_leadpipe.models import AudienceRun
from airflow_provider_leadpipe.triggers.base import check
from airflow_provider_leadpipe.utils import assets, csv_rows, seen, storage, validation
from airflow_provider_leadpipe.utils.lineage import LeadpipeLineageMixin
from airflow_provider_leadpipe.utils.tasks import Literal

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

from airflow_provider_leadpipe.operators.audiences import PAGE_SIZE, _AudienceOperator


class LeadpipeAudienceResultsToStorageOperator(LeadpipeLineageMixin, _AudienceOperator):
    """Write the people of a completed audience run to one file on any object storage.

    ``method="results"`` pages through the results endpoint (``concurrency`` pages at a time,
    every row once, in the API's order) and writes JSON Lines (one person per line, as the API
    sent it) or CSV (``format="csv"``: nested objects as dotted columns, lists as JSON; the columns
    are those of the first page, and a later row with a new field fails the task rather than
    losing it). ``method="export"`` streams the API's ``export.csv`` (``format="csv"``). CSV cells a
    spreadsheet would run as formulas are escaped by default (``csv_formulas``).

    The file is written under a temporary name and moved to ``path`` only when complete: a failed
    pull leaves nothing at ``path`` (see :mod:`airflow_provider_leadpipe.utils.storage`). A run is a
    frozen snapshot, so fewer people than the results endpoint's ``total`` (``method="results"``)
    or than the run's ``resultCount`` up to the row cap (``method="export"``) is an error by default
    (``on_incomplete``). When the run holds more people than the export's row cap
    (``X-Export-Row-Cap``, 300,000), ``on_truncated`` decides: ``"fail"`` (nothing is written) or
    ``"warn"`` (the capped file is written and ``truncated`` is True). People are personal data:
    they go to the file only, never to XCom or the log.

    Returns ``{"path", "records", "audience_run_id", "data_date", "truncated"}`` to XCom. The event
    of every asset in ``outlets`` gets ``{"path", "records", "duplicates_skipped",
    "audience_run_id", "data_date"}`` in ``extra``, and the ``dataDate`` as its partition key on
    Airflow 3.3+ (:mod:`airflow_provider_leadpipe.utils.assets`).

    With ``only_new=True`` (``method="results"``) the file holds only people this task has not
    landed from an earlier run, each once, identified by ``dedupe_keys`` (``["hashedEmail"]`` is
    the API's natural key) or by the whole record; see the visitor pull and
    :mod:`airflow_provider_leadpipe.utils.seen` for the state beside the file. The XCom adds
    ``duplicates_skipped``, ``seen_before``, ``state_size`` and ``state_path``.

    :param audience_id: the audience's id, a UUID (templated).
    :param path: target file (templated), e.g. ``"s3://bucket/orbit/{{ ds }}.jsonl.gz"``.
    :param audience_run_id: the run (templated), e.g. the run task's XCom; None for the audience's
        latest completed run.
    :param format: ``"jsonl"`` (default) or ``"csv"``.
    :param compression: ``"gzip"``, None, or ``"infer"`` (gzip when ``path`` ends in ``.gz``).
    :param method: ``"results"`` (default) or ``"export"``.
    :param on_truncated: ``"fail"`` (default) or ``"warn"``.
    :param on_incomplete: ``"fail"`` (default), ``"warn"``, or None: fewer people than announced
        (either method).
    :param concurrency: result pages requested at once, 1-16 (default 4).
    :param csv_formulas: ``"escape"`` (default) or ``"keep"``: with ``format="csv"`` (either method),
        a text cell a spreadsheet would run as a formula (one beginning with ``=``, ``+``, ``-``,
        ``@``, a tab or a carriage return) gets a leading ``'``; numbers and phone numbers such as
        ``+1 534 555 0100`` are left as they are (see :mod:`airflow_provider_leadpipe.utils.csv_rows`).
        ``"keep"`` writes every cell as the API sent it.
    :param only_new: land only people this task has not landed before (default False).
    :param dedupe_keys: fields that identify a person for ``only_new``, e.g. ``["hashedEmail"]``;
        None for the whole record. A person without one of them fails the task, naming the field.
    :param state_path: where ``only_new`` keeps its state (templated); None for beside the file.
    :param storage_conn_id: Airflow connection for the object store (templated).
    :param leadpipe_conn_id: the Leadpipe connection (templated).
    :param hook_params: per-task hook settings (``timeout``, ``max_retries``, ``retry_backoff``).
    """

    template_fields: Sequence[str] = (
        "audience_id",
        "path",
        "audience_run_id",
        "state_path",
        "storage_conn_id",
        "leadpipe_conn_id",
    )
    literals = (
        Literal(("audience_id",), validation.uuid_id, ("audience_id",)),
        Literal(("audience_run_id",), validation.optional_uuid_id, ("audience_run_id",)),
        Literal(("path",), storage.check_path),
    )
    ui_color = "#e8f1fd"

    def __init__(
        self,
        *,
        audience_id: str,
        path: str | ObjectStoragePath,
        audience_run_id: str | None = None,
        format: str = "jsonl",
        compression: str | None = "infer",
        method: str = "results",
        on_truncated: str = "fail",
        on_incomplete: str | None = "fail",
        concurrency: int = 4,
        csv_formulas: str = "escape",
        only_new: bool = False,
        dedupe_keys: Sequence[str] | None = None,
        state_path: str | ObjectStoragePath | None = None,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.audience_id = audience_id
        self.path = path
        self.audience_run_id = audience_run_id
        self.format = self.checked(validation.choice, format, "format", validation.RESULT_FORMATS)
        self.compression = self.checked(storage.check_compression, compression)
        self.method = self.checked(validation.choice, method, "method", validation.RESULT_METHODS)
        if self.method == "export" and self.format != "csv":
            raise LeadpipeConfigError(
                f"{type(self).__name__} '{self.task_id}': method='export' writes the API's CSV as it is: "
                "give format='csv' (or use method='results' for JSON Lines)"
            )
        self.on_truncated = self.checked(
            validation.choice, on_truncated, "on_truncated", validation.ON_TRUNCATED
        )
        self.on_incomplete = self.checked(storage.check_on_incomplete, on_incomplete)
        self.concurrency = self.checked(validation.concurrency, concurrency)
        self.csv_formulas = self.checked(validation.choice, csv_formulas, "csv_formulas", csv_rows.FORMULAS)
        self.only_new = bool(only_new)
        self.dedupe_keys = self.checked(seen.check_dedupe_keys, dedupe_keys)
        if self.only_new and self.method == "export":
            raise LeadpipeConfigError(
                f"{type(self).__name__} '{self.task_id}': only_new reads each person, which "
                "method='export' does not: use method='results'"
            )
        self.state_path = state_path
        self.storage_conn_id = storage_conn_id
        self._seen: seen.SeenState | None = None
        self._file: storage.AtomicFile | None = None
        self.check_literals()

    def execute(self, context: Context) -> dict[str, Any]:
        # Every argument is checked before anything is requested or written.
        audience_id = self.checked(validation.uuid_id, self.audience_id, "audience_id")
        run_id = self.checked(validation.optional_uuid_id, self.audience_run_id, "audience_run_id")
        target = self.checked(lambda path: storage.file_target(path, conn_id=self.storage_conn_id), self.path)
        use_gzip = storage.uses_gzip(target, self.compression)
        with self.hook:
            run = self._completed_run(audience_id, run_id)
            self.log.info(
                "Writing the %s people of audience run %s (dataDate %s) to %s as %s%s via %s",
                run.result_count,
                run.id,
                run.data_date,
                target,
                self.format,
                " (gzip)" if use_gzip else "",
                self.method,
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
                if self.method == "export":
                    records, truncated = self._write_export(audience_id, run, self._file)
                else:
                    records, truncated = self._write_results(audience_id, run, self._file), False
                if state is not None:
                    state.commit()
            finally:
                self._file = self._seen = None
        if state is not None:
            records -= state.duplicates + state.seen_before
        self.log.info("Wrote %d people of audience run %s to %s", records, run.id, target)
        resource = f"audiences/{audience_id}/runs/{run.id}"
        self.record_lineage(self.hook.settings.base_url, resource, target, records)
        result = {
            "path": str(target),
            "records": records,
            "audience_run_id": run.id,
            "data_date": run.data_date,
            "truncated": truncated,
        }
        if state is not None:
            result |= seen.logged_summary(state, self.log)
        extra = {key: result[key] for key in ("path", "records", "audience_run_id", "data_date")}
        extra["duplicates_skipped"] = result.get("duplicates_skipped", 0)
        assets.emit(self.outlets, context, extra, partition=run.data_date)
        return result

    def _completed_run(self, audience_id: str, run_id: str | None) -> AudienceRun:
        condition = AudienceRunCondition(audience_id, run_id)
        done, reason = check(self.hook, condition.reads())  # a failed or cancelled run raises
        if done is None:
            if run_id is None:
                raise LeadpipeNotFoundError(f"Leadpipe audience {audience_id} has no completed run yet")
            raise LeadpipeError(
                f"{reason}: its people can be read once it has completed (wait with "
                "LeadpipeRunAudienceOperator or LeadpipeAudienceRunSensor first)"
            )
        return done

    def _write_results(self, audience_id: str, run: AudienceRun, file: storage.AtomicFile) -> int:
        encode = storage.jsonl if self.format == "jsonl" else csv_rows.CsvEncoder(self.csv_formulas).encode
        with file as out:
            # Inside the block: an incomplete pull with on_incomplete="fail" writes nothing.
            records, total = asyncio.run(self._pull(audience_id, run.id, out, encode))
            storage.check_complete(
                records, total, on_incomplete=self.on_incomplete, what="people", logger=self.log
            )
        return records

    async def _pull(
        self, audience_id: str, run_id: str, out: IO[bytes], encode: Any
    ) -> tuple[int, int | None]:
        records = 0
        total: int | None = None
        async with self.hook:  # closes the async client when the pull ends
            pages = self.hook.aiter_audience_result_pages(
                audience_id, run_id, page_size=PAGE_SIZE, concurrency=self.concurrency
            )
            async with aclosing(pages):
                async for page in pages:
                    total = page.total
                    # A blocking write of one page; read-ahead requests stay in flight.
                    try:
                        kept = seen.new_only(self._seen, page.results, records)
                    except LeadpipeConfigError:  # a dedupe key is missing: named, never quoted
                        del page  # no person in reach of the traceback
                        raise
                    if kept or self._seen is None:  # CSV columns come from the first page written
                        out.write(encode(kept))
                    del kept
                    records += len(page.results)
                    del page  # people's data: not kept while the next page is awaited (tracebacks)
        return records, total

    def _write_export(self, audience_id: str, run: AudienceRun, file: storage.AtomicFile) -> tuple[int, bool]:
        with self.hook.stream_audience_export_csv(audience_id, run.id) as export:
            cap = export.row_cap
            truncated = cap is not None and run.result_count is not None and run.result_count > cap
            if truncated:
                message = (
                    f"audience run {run.id} holds {run.result_count} people but export.csv is capped at "
                    f"{cap} rows"
                )
                if self.on_truncated == "fail":
                    raise LeadpipeExportTruncatedError(
                        f"{message}; nothing was written (on_truncated='fail'). Use method='results' to "
                        "read every person, or on_truncated='warn' to keep the capped file"
                    )
                self.log.warning("%s; writing the first %s rows (on_truncated='warn')", message, cap)
            # Every row up to the cap is due: fewer is an incomplete pull, as for the results.
            due = run.result_count
            if due is not None and cap is not None:
                due = min(due, cap)
            counter = csv_rows.RowCounter()
            escaper = csv_rows.FormulaEscaper() if self.csv_formulas == "escape" else None
            with file as out:
                for chunk in export.iter_bytes():
                    counter.feed(chunk)
                    out.write(escaper.feed(chunk) if escaper else chunk)
                if escaper:
                    out.write(escaper.finish())
                # Inside the block: an incomplete export with on_incomplete="fail" writes nothing.
                storage.check_complete(
                    counter.records, due, on_incomplete=self.on_incomplete, what="people", logger=self.log
                )
        return counter.records, truncated

    def on_kill(self) -> None:
        """Remove the temporary file of a pull that is being killed (SIGTERM / timeout)."""
        if self._file is not None:
            self._file.discard()


__all__ = ["LeadpipeAudienceResultsToStorageOperator"]
