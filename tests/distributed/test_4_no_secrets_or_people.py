"""After the three scenarios (a triggerer and a worker killed, triggerers restarted): no API key of
any connection and none of the personal data the sandbox served appears in any component's log,
any task or trigger log the stack wrote, or any row of the metadata database.

The personal data searched for is what the scenarios really wrote to the files the user asked for:
the 20,000 visitor records of scenario 2 and the audience people scenario 3 landed.
"""

from __future__ import annotations

import gzip
import math
import re
import time
from pathlib import Path

import pytest

from airflow_provider_leadpipe.testing import DEFAULT_API_KEY
from airflow_provider_leadpipe.testing.visitors import VISITS_PER_PERSON
from tests.distributed.cluster import query
from tests.distributed.conftest import ORBIT_KEY, SENSOR_KEYS, VISITORS, VISITORS_KEY
from tests.distributed.leaks import (
    candidates,
    leaks,
    metadata_rows,
    personal_values,
    read_jsonl,
    trigger_kwargs,
)
from tests.distributed.test_2_worker_killed import DAG_ID as VISITORS_DAG
from tests.e2e.airflow_api import xcom_value

KEYS = (*SENSOR_KEYS, ORBIT_KEY, VISITORS_KEY, DEFAULT_API_KEY)


@pytest.fixture(scope="module")
def personal(cluster, api) -> set[str]:
    """Every identifying value of the records written to the users' files, checked to be findable."""
    rows = query(
        cluster.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "SELECT run_id FROM dag_run WHERE dag_id = %s AND state = 'success'",
        VISITORS_DAG,
    )
    assert rows, "scenario 2 (the visitor pull) did not run: nothing to search for"
    pulled = Path(xcom_value(api, VISITORS_DAG, rows[0][0], "pull")["path"]).read_text()
    visitors = read_jsonl(pulled.splitlines())
    landed_files = sorted(cluster.out.rglob("*.jsonl.gz"))
    landed = "".join(gzip.decompress(path.read_bytes()).decode() for path in landed_files)
    people = read_jsonl(landed.splitlines())
    # A search over nothing proves nothing: every visitor and every person of the data set is there...
    assert len(visitors) == VISITORS
    emails = {visitor["email"] for visitor in visitors}
    assert len(emails) == math.ceil(VISITORS / VISITS_PER_PERSON)
    assert len(landed_files) >= 2 and len(people) >= 8  # scenario 3's two runs of 4 people
    values = personal_values(visitors) | personal_values(people)
    # ...and the search sees each value in the very files that hold it.
    assert values <= candidates(pulled) | candidates(landed)
    assert emails <= values
    return values


def logs_of(cluster) -> list[Path]:
    return sorted({*cluster.logs.rglob("*.log"), *cluster.home.rglob("*.log")})


def test_no_api_key_or_personal_data_in_any_log(cluster, personal, figures):
    logs = logs_of(cluster)
    task_logs = [path for path in logs if "dag_id=" in str(path)]
    # Component logs and the task logs of every scenario: a search over nothing proves nothing.
    assert len(task_logs) >= 300, f"only {len(task_logs)} task logs under {cluster.home}"
    assert any(f"dag_id={VISITORS_DAG}" in str(path) for path in task_logs)
    assert {path.name for path in logs} >= {"scheduler.log", "worker.log"}
    started = time.monotonic()
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
        seconds_to_search_logs=round(time.monotonic() - started, 1),
    )
    assert not found, list(found.items())[:10]


def test_no_api_key_or_personal_data_in_the_metadata_database(cluster, personal, figures):
    started = time.monotonic()
    tables = metadata_rows(cluster)
    kwargs = trigger_kwargs(cluster)
    # Non-vacuous: the rows the task data and deferrals are kept in are there to be searched.
    assert re.search(r"records\W+20000", tables["xcom"]), tables["xcom"][:2000]  # the visitor pull's result
    assert tables["rendered_task_instance_fields"] and tables["task_instance"].count("\n") >= 300
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
