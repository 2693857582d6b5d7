"""Asset events that carry what a pull landed, so a DAG scheduled on the asset reads the counts
without opening the file.

The pulls put ``extra`` on the event of every asset (Airflow 2.10+: dataset) in the task's
``outlets``, through ``context["outlet_events"]`` (Airflow 2.10+ and 3.x). Asset aliases are left
alone: an alias needs the asset named at runtime, which the user's DAG decides.

A partition key (``partition``: the audience run's Orbit ``dataDate``) is added where the event
accessor has ``add_partitions`` (Airflow 3.3+). Below that -- 3.2 sets partition keys only from the
DAG run, 2.11-3.1 have none -- the event carries ``data_date`` in ``extra`` only, which a consumer
reads from ``triggering_asset_events``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def emit(
    outlets: Any, context: Mapping[str, Any], extra: dict[str, Any], *, partition: str | None = None
) -> int:
    """Add ``extra`` (and ``partition``) to the events of ``outlets``; returns how many were set.

    ``extra`` holds counts, ids, dates and the file's path: never a record.
    """
    events = context.get("outlet_events")
    if events is None:  # execute() called outside a task run, or Airflow before 2.10
        return 0
    count = 0
    for outlet in outlets or ():
        if "Alias" in type(outlet).__name__ or not hasattr(outlet, "uri"):
            continue
        accessor = events[outlet]
        accessor.extra.update(extra)
        if partition and hasattr(accessor, "add_partitions"):
            accessor.add_partitions(partition)
        count += 1
    if count:
        log.info("Asset event(s) on %d outlet(s) carry %s", count, ", ".join(sorted(extra)))
    return count
