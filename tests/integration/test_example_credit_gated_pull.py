"""leadpipe_credit_gated_pull end to end with dag.test() against the sandbox.

The account has no credits at first and gets them back only after the trigger's polls: the run
must wait through the deferrable sensor, then write every visitor record to the output folder.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.integration.dag_runs import (
    NO_LOGICAL_DATE,
    api_records,
    example_task_ids,
    load_dag,
    task_states,
    xcom_value,
)

pytestmark = pytest.mark.integration
DAG_ID = "leadpipe_credit_gated_pull"
ACCOUNT = "/v1/data/account"
TASKS = {"wait_for_credits", "pull_visitors", "account_after_pull", "summary"}


def test_parses_without_import_errors():
    assert example_task_ids(DAG_ID) == TASKS


def visitors_in(path) -> list[dict]:
    with gzip.open(path, "rt") as lines:
        return [json.loads(line) for line in lines]


def test_waits_for_credits_then_pulls_every_visitor(airflow_db, leadpipe_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("LEADPIPE_EXAMPLE_POKE_INTERVAL", "0.2")
    leadpipe_sandbox.exhaust_credits(recover_after_account_calls=3)
    dag = load_dag(DAG_ID)
    expected = api_records(leadpipe_sandbox, timeframe="24h")
    assert expected, "the sandbox should have visitors in the last 24h"
    out = tmp_path / "out"

    run = dag.test(
        run_conf={"output_dir": str(out), "timeframe": "24h", "min_credits": 100}, **NO_LOGICAL_DATE
    )

    assert run.state == "success", task_states(run)
    assert task_states(run) == dict.fromkeys(TASKS, "success")
    # 1 poke before deferring + 3 trigger polls (the 3rd and later calls see the credits) ... the
    # sensor saw no credits on 3 calls and succeeded on the 4th; the status operator made the 5th.
    assert leadpipe_sandbox.request_count(ACCOUNT) == 5
    summary = xcom_value(run, "summary")
    assert summary["records"] == len(expected)
    assert summary["credits_before"] == 500 and summary["credits_after"] == 500
    files = list((out / "visitors").iterdir())
    assert [f.name for f in files] == [f"{run.run_id.replace(':', '-').replace('+', '_')}.jsonl.gz"]
    assert str(files[0]).endswith(summary["path"].split("://")[-1])
    assert visitors_in(files[0]) == expected
