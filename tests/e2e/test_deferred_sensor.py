"""The example DAG `leadpipe_credit_gated_pull` in real Airflow, triggered through REST.

Its deferrable LeadpipeAccountSensor meets a key with no credits that come back only after a few
account calls: the first poke fails, the task defers, the real triggerer polls until the credits
return, a worker resumes the sensor, and the visitor pull and the status check run after it.
The stack polls every second (LEADPIPE_EXAMPLE_POKE_INTERVAL, see conftest.py).
"""

from __future__ import annotations

import contextlib
import gzip
import json

from tests.e2e.airflow_api import put_connection, task_log, trigger, wait_for_dag, watch_run, xcom_value

DAG_ID = "leadpipe_credit_gated_pull"
SENSOR = "wait_for_credits"
TASKS = {SENSOR, "pull_visitors", "account_after_pull", "summary"}
TRIGGER_CLASSPATH = "airflow_provider_leadpipe.triggers.account.LeadpipeAccountTrigger"
ACCOUNT = "/v1/data/account"
#: Account calls answered "0 credits left" before the credits come back.
RECOVER_AFTER = 4


def test_example_dag_defers_to_the_triggerer_and_resumes(api, airflow, sandbox, tmp_path):
    key = sandbox.api_key
    sandbox.exhaust_credits(recover_after_account_calls=RECOVER_AFTER, api_key=key)
    calls_before = sandbox.request_count(ACCOUNT, api_key=key)
    # The example's connection, stored in the metadata DB (the triggerer reads it from there).
    connection = {"connection_id": "leadpipe_default", "conn_type": "leadpipe", "host": sandbox.url}
    put_connection(api, {**connection, "password": key})
    wait_for_dag(api, DAG_ID)
    out = tmp_path / "out"

    run_id = trigger(api, DAG_ID, conf={"output_dir": str(out)})
    watch = watch_run(api, DAG_ID, run_id, SENSOR)

    assert watch.run_state == "success", (watch, airflow.log_tail())
    states = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    assert {ti["task_id"]: ti["state"] for ti in states} == dict.fromkeys(TASKS, "success")
    # The sensor was deferred, then resumed on a worker and done: all within its first try.
    assert "deferred" in watch.states, watch.states
    assert watch.states[-1] == "success", watch.states
    assert watch.states.index("deferred") < len(watch.states) - 1
    assert watch.final["try_number"] == 1

    # While deferred, the trigger was ours and was assigned to the running triggerer.
    (trigger_row,) = {t["id"]: t for t in watch.triggers}.values()
    assert trigger_row["classpath"] == TRIGGER_CLASSPATH
    triggerers = api.get("/api/v2/jobs", params={"job_type": "TriggererJob", "is_alive": True}).json()["jobs"]
    triggerer_id = next(t["triggerer_id"] for t in reversed(watch.triggers) if t["triggerer_id"])
    assert triggerer_id in {job["id"] for job in triggerers}

    # The log files tell the whole story, in this order: the worker's first poke finds no credits
    # and defers; the triggerer (its own log file, named after the triggerer job) starts *our*
    # trigger, polls, fires; a worker resumes the task in the same try and finds the credits.
    logs = {path.name: path.read_text(errors="replace") for path in airflow.task_logs(DAG_ID, run_id, SENSOR)}
    trigger_file = f"attempt=1.log.trigger.{triggerer_id}.log"
    assert set(logs) == {"attempt=1.log", trigger_file}, list(logs)
    worker, triggerer = _events(logs["attempt=1.log"]), _events(logs[trigger_file])
    first_poke = _first(worker, "waiting: ")
    deferred = _first(worker, "Pausing task as DEFERRED")
    started = _first(triggerer, f"(ID {trigger_row['id']}) starting")
    polled = _first(triggerer, "waiting: ")
    fired = _first(triggerer, "Trigger fired event")
    resumed = _first(worker, "ready: ")
    assert first_poke <= deferred < started < polled < fired < resumed
    # The sandbox saw the first poke, the triggerer's polls up to and including recovery, and the
    # status check after the pull.
    assert sandbox.request_count(ACCOUNT, api_key=key) - calls_before >= RECOVER_AFTER + 2

    # XCom through REST: the sensor pushed the recovered status, the summary what the pull wrote.
    status = xcom_value(api, DAG_ID, run_id, SENSOR)
    assert status["healthy"] is True and status["credits"]["remaining"] >= 100
    summary = xcom_value(api, DAG_ID, run_id, "summary")
    (written,) = (out / "visitors").iterdir()
    assert summary["path"].endswith(written.name)
    with gzip.open(written, "rt") as lines:
        assert sum(1 for _ in lines) == summary["records"] > 0
    assert summary["credits_before"] == status["credits"]["remaining"]

    # The task log the UI shows includes the triggerer's part; no log holds the API key.
    served = task_log(api, DAG_ID, run_id, SENSOR)
    assert "Trigger fired event" in served
    assert key not in served and all(key not in text for text in logs.values())


def _events(log: str) -> list[tuple[str, str]]:
    """(timestamp, message) of each JSON line of an Airflow 3 task or trigger log file."""
    events = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            events.append((record["timestamp"], str(record.get("event", ""))))
    return events


def _first(events: list[tuple[str, str]], text: str) -> str:
    """Timestamp of the first event containing ``text``."""
    for timestamp, message in events:
        if text in message:
            return timestamp
    raise AssertionError(f"no log event contains {text!r}: {[m for _, m in events]}")
