"""What the scenarios read from the metadata database and how they wait for it.

Task instances and triggers are read with SQL (the REST API pages 100 at a time; scenario 1 has
300 sensors). Waits are deadlines with polling, never fixed sleeps.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from tests.distributed.cluster import DistributedAirflow, query

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], what: str, cluster: DistributedAirflow, timeout: float, interval: float = 0.5
) -> T:
    """Poll ``predicate`` until it returns something truthy; after ``timeout``, fail with the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not seen after {timeout:.0f} s\n{cluster.diagnostics()}")


def task_states(cluster: DistributedAirflow, dag_id: str, run_id: str) -> Counter[tuple[str | None, int]]:
    """``{(state, try_number): count}`` of the run's task instances."""
    rows = query(
        cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "SELECT state, try_number, count(*) FROM task_instance"
        " WHERE dag_id = %s AND run_id = %s GROUP BY 1, 2",
        dag_id,
        run_id,
    )
    return Counter({(state, tries): count for state, tries, count in rows})


def states_only(states: Counter[tuple[str | None, int]]) -> Counter[str | None]:
    only: Counter[str | None] = Counter()
    for (state, _), count in states.items():
        only[state] += count
    return only


def triggers_by_triggerer(cluster: DistributedAirflow, dag_ids: tuple[str, ...]) -> Counter[int | None]:
    """``{triggerer job id (None: unassigned): count}`` of the triggers of these DAGs' deferred tasks."""
    rows = query(
        cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "SELECT t.triggerer_id, count(*) FROM trigger t JOIN task_instance ti ON ti.trigger_id = t.id "
        "WHERE ti.dag_id = ANY(%s) GROUP BY 1",
        list(dag_ids),
    )
    return Counter(dict(rows))


def triggers_held(cluster: DistributedAirflow, job_id: int) -> int:
    """How many triggers (of any DAG, asset watchers included) triggerer job ``job_id`` holds."""
    [(count,)] = query(
        cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "SELECT count(*) FROM trigger WHERE triggerer_id = %s",
        job_id,
    )
    return count


def live_triggerer_jobs(cluster: DistributedAirflow) -> list[int]:
    """Ids of the triggerer jobs Airflow counts as alive, oldest first.

    Alive as the scheduler and other triggerers judge it: not ended, and a heartbeat younger than
    `[triggerer] triggerer_health_check_threshold` (a SIGKILLed triggerer never sets its end date).
    """
    threshold = float(cluster.env["AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"])
    rows = query(
        cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "SELECT id FROM job WHERE job_type = 'TriggererJob' AND end_date IS NULL"
        " AND latest_heartbeat > now() - make_interval(secs => %s) ORDER BY id",
        threshold,
    )
    return [row[0] for row in rows]


def dag_run(cluster: DistributedAirflow, dag_id: str, run_id: str) -> dict[str, Any]:
    [(state,)] = query(
        cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s",
        dag_id,
        run_id,
    )
    return {"state": state}
