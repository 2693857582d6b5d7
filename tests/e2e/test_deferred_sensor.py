"""A deferrable LeadpipeAccountSensor in real Airflow: deferred to the triggerer, resumed, XCom.

The sandbox key has no credits left and recovers only after a few account calls, so the sensor's
first poke fails, the task defers, and the triggerer has to poll until the credits come back.
"""

from __future__ import annotations

import contextlib
import json

from tests.e2e.airflow_api import task_log, trigger, wait_for_dag, watch_run, xcom_value

DAG_ID = "leadpipe_e2e_deferred_gate"
TASK_ID = "wait_for_credits"
CONN_ID = "leadpipe_e2e_gate"
TRIGGER_CLASSPATH = "airflow_provider_leadpipe.triggers.leadpipe.LeadpipeAccountTrigger"
ACCOUNT = "/v1/data/account"
#: Account calls answered "0 credits left" before the credits come back.
RECOVER_AFTER = 4


def test_sensor_defers_to_the_triggerer_and_resumes(api, airflow, sandbox):
    key = sandbox.api_key
    sandbox.exhaust_credits(recover_after_account_calls=RECOVER_AFTER, api_key=key)
    calls_before = sandbox.request_count(ACCOUNT, api_key=key)
    api.post(
        "/api/v2/connections",
        json={"connection_id": CONN_ID, "conn_type": "leadpipe", "host": sandbox.url, "password": key},
    ).raise_for_status()
    wait_for_dag(api, DAG_ID)

    run_id = trigger(api, DAG_ID)
    watch = watch_run(api, DAG_ID, run_id, TASK_ID)

    assert watch.run_state == "success", (watch, airflow.log_tail())
    # Deferred, then resumed on a worker, then done: all within the first try.
    assert "deferred" in watch.states, watch.states
    assert watch.states[-1] == "success", watch.states
    assert watch.states.index("deferred") < len(watch.states) - 1
    assert watch.final["try_number"] == 1

    # While deferred, the trigger was ours and was assigned to the running triggerer.
    (trigger_row,) = {t["id"]: t for t in watch.triggers}.values()
    assert trigger_row["classpath"] == TRIGGER_CLASSPATH
    triggerers = api.get("/api/v2/jobs", params={"job_type": "TriggererJob", "is_alive": True}).json()["jobs"]
    assert trigger_row["triggerer_id"] in {job["id"] for job in triggerers}

    # The log files tell the whole story, in this order: the worker's first poke finds no credits
    # and defers; the triggerer (its own log file, named after the triggerer job) starts *our*
    # trigger, polls, fires; a worker resumes the task in the same try and finds the credits.
    files = airflow.task_logs(DAG_ID, run_id, TASK_ID)
    logs = {path.name: path.read_text(errors="replace") for path in files}
    assert set(logs) == {"attempt=1.log", f"attempt=1.log.trigger.{trigger_row['triggerer_id']}.log"}, logs
    worker = _events(logs["attempt=1.log"])
    triggerer = _events(logs[f"attempt=1.log.trigger.{trigger_row['triggerer_id']}.log"])
    first_poke = _first(worker, "waiting: ")
    deferred = _first(worker, "Pausing task as DEFERRED")
    started = _first(triggerer, f"(ID {trigger_row['id']}) starting")
    polled = _first(triggerer, "waiting: ")
    fired = _first(triggerer, "Trigger fired event")
    resumed = _first(worker, "ready: ")
    assert first_poke <= deferred < started < polled < fired < resumed
    # The sandbox saw the first poke plus the triggerer's polls up to and including recovery.
    assert sandbox.request_count(ACCOUNT, api_key=key) - calls_before >= RECOVER_AFTER + 1

    # The resumed task pushed the recovered account status; REST serves it as the return value.
    status = xcom_value(api, DAG_ID, run_id, TASK_ID)
    assert status["healthy"] is True
    assert status["credits"]["remaining"] >= 100

    # The task log the UI shows includes the triggerer's part; no log holds the API key.
    served = task_log(api, DAG_ID, run_id, TASK_ID)
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
