"""A run task gets a run back only when it should, and says so whenever it does.

Class: a re-run request answered with the run made before, silently (issue 25, item 5). Every way
a run task instance can run again is driven against the sandbox over loopback HTTP:

* a retry (same task instance, next try): the run the first try made, logged and in XCom;
* a clear (Airflow sets ``max_tries = try_number + retries``): a new run; its retries get it back;
* a second clear: another new run;
* the DAG run deleted and created again under the same run id (a new start date): a new run;
* the user's own ``idempotency_key``: kept as given, so the run is reused, logged and in XCom.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from airflow_provider_leadpipe.operators.audiences import REUSED_XCOM_KEY, LeadpipeRunAudienceOperator
from tests.hardening.figures import record
from tests.orbit import context

pytestmark = pytest.mark.integration
TASK = SimpleNamespace(retries=2)
FIRST_DAG_RUN = SimpleNamespace(start_date=datetime(2026, 5, 5, 9, 30, tzinfo=timezone.utc))
RECREATED_DAG_RUN = SimpleNamespace(start_date=datetime(2026, 5, 5, 11, 0, tzinfo=timezone.utc))

#: (what happens, try_number, max_tries, dag run, own key, "new" or the step whose run comes back)
STEPS = [
    ("first try", 1, 2, FIRST_DAG_RUN, None, "new"),
    ("retry", 2, 2, FIRST_DAG_RUN, None, "first try"),
    ("cleared after try 2", 3, 5, FIRST_DAG_RUN, None, "new"),
    ("retry after the clear", 4, 5, FIRST_DAG_RUN, None, "cleared after try 2"),
    ("cleared again after try 4", 5, 6, FIRST_DAG_RUN, None, "new"),
    ("DAG run re-created, same run id", 1, 2, RECREATED_DAG_RUN, None, "new"),
    ("own key", 1, 2, FIRST_DAG_RUN, "nightly", "new"),
    ("own key, cleared", 2, 4, FIRST_DAG_RUN, "nightly", "own key"),
]


def test_every_rerun_gets_a_new_run_or_says_which_it_reused(leadpipe_sandbox, caplog, capsys):
    audience = leadpipe_sandbox.create_audience("Re-runs", people=20)["id"]
    runs: dict[str, dict] = {}
    for step, try_number, max_tries, dag_run, key, expected in STEPS:
        ctx = context(dag_run=dag_run, try_number=try_number, max_tries=max_tries, task=TASK)
        op = LeadpipeRunAudienceOperator(
            task_id="run", audience_id=audience, idempotency_key=key, wait_for_completion=False
        )
        run = runs[step] = op.execute(ctx)
        reused = dict(ctx["ti"].pushed).get(REUSED_XCOM_KEY)  # not pushed for a new run
        logged = caplog.text + capsys.readouterr().out
        caplog.clear()
        if expected == "new":
            assert run["id"] not in {r["id"] for s, r in runs.items() if s != step}, step
            assert reused is None and "reusing run" not in logged, step
        else:
            before = runs[expected]
            assert run["id"] == before["id"], step
            assert reused == {"id": before["id"], "createdAt": before["createdAt"]}, step
            assert f"reusing run {before['id']}, created at {before['createdAt']}" in logged, step
    assert leadpipe_sandbox.audience_runs_created(audience) == sum(s[-1] == "new" for s in STEPS)
    record(
        "orbit",
        "re-runs of a run task: retry gets its run back (logged, XCom); clear, second clear, DAG run "
        "re-created: a new run; own key kept",
        requests=leadpipe_sandbox.request_count(),
    )
