"""After the three scenarios (a triggerer and a worker killed, triggerers restarted): no API key of
any connection and none of the personal data the sandbox served appears in any component's log,
any task or trigger log the stack wrote, or any row of the metadata database.

The personal data searched for is what was really written to the files the user asked for: the
20,000 visitor records of a visitor pull (scenario 2's, or one this module runs itself when that
scenario did not succeed) and the audience people scenario 3 landed (searched when there are any;
the figures say how many). The logs searched are checked against the task instances that ran:
whatever ran before this module, every one of them has its log searched.
"""

from __future__ import annotations

import gzip
import math
import re
import time
import warnings
from pathlib import Path

import pytest

from leadpipe_sandbox import DEFAULT_API_KEY
from leadpipe_sandbox.visitors import VISITS_PER_PERSON
from tests.distributed.cluster import query
from tests.distributed.conftest import FIGURES, ORBIT_KEY, SENSOR_KEYS, VISITORS, VISITORS_KEY
from tests.distributed.leaks import (
    candidates,
    leaks,
    metadata_rows,
    personal_values,
    read_jsonl,
    trigger_kwargs,
)
from tests.distributed.metadata import dag_run, wait_until
from tests.distributed.test_2_worker_killed import DAG_ID as VISITORS_DAG
from tests.e2e.airflow_api import trigger, wait_for_dag, xcom_value

KEYS = (*SENSOR_KEYS, ORBIT_KEY, VISITORS_KEY, DEFAULT_API_KEY)


def successful_visitor_pull(cluster, api, tmp_path_factory) -> str:
    """The run id of a successful visitor pull: scenario 2's, or one started here when there is none."""
    rows = query(
        cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "SELECT run_id FROM dag_run WHERE dag_id = %s AND state = 'success'",
        VISITORS_DAG,
    )
    if rows:
        return rows[0][0]
    warnings.warn(
        "scenario 2 left no successful visitor pull: this module runs one to search for", stacklevel=2
    )
    target = tmp_path_factory.mktemp("no-secrets") / "visitors.jsonl"
    wait_for_dag(api, VISITORS_DAG)
    run_id = trigger(api, VISITORS_DAG, {"path": str(target)})

    def finished():
        state = dag_run(cluster, VISITORS_DAG, run_id)["state"]
        return state if state in ("success", "failed") else None

    assert wait_until(finished, "this module's visitor pull", cluster, 600) == "success", (
        cluster.diagnostics()
    )
    return run_id


@pytest.fixture(scope="module")
def personal(cluster, api, tmp_path_factory) -> set[str]:
    """Every identifying value of the records written to the users' files, checked to be findable."""
    run_id = successful_visitor_pull(cluster, api, tmp_path_factory)
    pulled = Path(xcom_value(api, VISITORS_DAG, run_id, "pull")["path"]).read_text()
    visitors = read_jsonl(pulled.splitlines())
    landed_files = sorted(cluster.out.rglob("*.jsonl.gz"))
    landed = "".join(gzip.decompress(path.read_bytes()).decode() for path in landed_files)
    people = read_jsonl(landed.splitlines())
    FIGURES.setdefault(__name__.rsplit(".", 1)[-1], {}).update(
        visitor_records_searched_for=len(visitors), audience_people_searched_for=len(people)
    )
    if not people:
        warnings.warn(
            "scenario 3 landed no audience people: only visitor records are searched for", stacklevel=2
        )
    # A search over nothing proves nothing: every visitor of the data set is there...
    assert len(visitors) == VISITORS
    emails = {visitor["email"] for visitor in visitors}
    assert len(emails) == math.ceil(VISITORS / VISITS_PER_PERSON)
    values = personal_values(visitors) | personal_values(people)
    # ...and the search sees each value in the very files that hold it.
    assert values <= candidates(pulled) | candidates(landed)
    assert emails <= values
    return values


def started_task_instances(cluster) -> set[str]:
    """``dag_id=…/run_id=…/task_id=…[/map_index=…]`` of every task instance that has started."""
    rows = query(
        cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "SELECT dag_id, run_id, task_id, map_index FROM task_instance WHERE start_date IS NOT NULL",
    )
    return {
        f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}" + (f"/map_index={index}" if index >= 0 else "")
        for dag_id, run_id, task_id, index in rows
    }


def task_log_folder(path: Path) -> str:
    """The ``dag_id=…/…`` folder of a task log (Airflow's log_filename_template)."""
    text = str(path.parent)
    return text[text.index("dag_id=") :]


def logs_of(cluster) -> list[Path]:
    return sorted({*cluster.logs.rglob("*.log"), *cluster.home.rglob("*.log")})


def test_no_api_key_or_personal_data_in_any_log(cluster, personal, figures):
    logs = logs_of(cluster)
    task_logs = [path for path in logs if "dag_id=" in str(path)]
    # A search over nothing proves nothing: the component logs, and a log of every task instance
    # that started, whichever scenarios ran (the visitor pull at least: `personal` saw to it).
    started = started_task_instances(cluster)
    missing = started - {task_log_folder(path) for path in task_logs}
    assert not missing, f"{len(missing)} of {len(started)} task instances have no log: {sorted(missing)[:5]}"
    assert any(f"dag_id={VISITORS_DAG}" in str(path) for path in task_logs)
    assert {path.name for path in logs} >= {"scheduler.log", "worker.log"}
    figures["task_instances_whose_logs_were_searched"] = len(started)
    searching = time.monotonic()
    found, size = {}, 0
    for path in logs:
        text = path.read_text(errors="replace")
        size += len(text)
        if hits := leaks(text, personal, KEYS):
            found[str(path)] = hits[:5]
    figures.update(
        personal_values_searched=len(personal),
        logs_searched=len(logs),
        megabytes_of_logs=round(size / 1e6, 1),
        seconds_to_search_logs=round(time.monotonic() - searching, 1),
    )
    assert not found, list(found.items())[:10]


def test_no_api_key_or_personal_data_in_the_metadata_database(cluster, personal, figures):
    started = time.monotonic()
    tables = metadata_rows(cluster)
    kwargs = trigger_kwargs(cluster)
    # Non-vacuous: the rows the task data and deferrals are kept in are there to be searched.
    assert re.search(r"records\W+20000", tables["xcom"]), tables["xcom"][:2000]  # the visitor pull's result
    assert tables["rendered_task_instance_fields"] and VISITORS_DAG in tables["task_instance"]
    assert kwargs and all("conn_id" in text for text in kwargs), kwargs[:3]
    found = {
        name: hits
        for name, text in [*tables.items(), ("trigger (decrypted kwargs)", "\n".join(kwargs))]
        if (hits := leaks(text, personal, KEYS))
    }
    figures.update(
        tables_searched=len(tables),
        triggers_decrypted=len(kwargs),
        seconds_to_search_the_database=round(time.monotonic() - started, 1),
    )
    assert not found, found
