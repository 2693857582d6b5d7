"""Over real loopback HTTP: an answer that fails leaves no copy of itself in the error, its chain or
any traceback frame's locals (Airflow 3.0's console and 3.3's rich tracebacks print them).

The method table, the canary and the search are the unit test's
(``tests/unit/hooks/test_no_body_in_tracebacks.py``); here the answers come from a real socket, so
httpx's and httpcore's own objects (responses, streams, pooled connections) are part of what is
searched.
"""

from __future__ import annotations

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from tests.hardening.figures import record
from tests.hardening.loopback import Reply, ScriptedServer
from tests.unit.hooks.test_no_body_in_tracebacks import (
    CASES,
    ERROR_BODY,
    exposures,
    failure_of,
    invoke,
    poisoned,
)

pytestmark = pytest.mark.timeout(300)


def test_every_method_on_every_failing_answer(conn_to):
    failures = {"sync": 0, "async": 0}
    requests = {"sync": 0, "async": 0}
    methods = {case.values[0] for case in CASES}
    with ScriptedServer() as server:
        conn_id = conn_to(server.url)
        for case in CASES:
            name, args, body, mode = case.values
            answers: list[tuple[list[Reply], Reply]] = [
                ([], Reply(500, ERROR_BODY)),  # retried, then given up
                ([], Reply(404, ERROR_BODY)),
            ]
            if body is not None:
                refused = Reply(202 if name == "get_audience_run" else 200, poisoned(body))
                answers += [([], refused), ([Reply(503, ERROR_BODY)], refused)]
            for script, default in answers:
                server.script, server.default = list(script), default
                before = len(server.requests)
                hook = LeadpipeHook(conn_id, max_retries=1, retry_backoff=0.001)
                error = failure_of(lambda: invoke(hook, name, args, mode))  # noqa: B023 -- called at once
                assert len(server.requests) > before
                if default.status < 300:
                    assert isinstance(error, LeadpipeResponseError), (name, mode, repr(error))
                assert exposures(error) == [], (name, mode, default.status)
                failures[mode] += 1
                requests[mode] += len(server.requests) - before
    for mode in ("sync", "async"):
        record(
            "secrets",
            f"refused 2xx and error bodies, {len(methods)} hook methods, first answer and after a 503: "
            "canary (marker, key, e-mail) in no error, chain or traceback frame local",
            mode=mode,
            requests=requests[mode],
            hits=0,
        )
    assert failures["sync"] and failures["async"]
