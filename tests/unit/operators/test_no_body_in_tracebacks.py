"""The operators on an answer that fails: no copy of it in the error or any traceback frame.

The same canary and the same search as ``tests/unit/hooks/test_no_body_in_tracebacks.py``, one
level up: ``execute()`` of every operator, whose frames (the task runner prints them with their
locals on Airflow 3.0) sit above the hook's.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from airflow_provider_leadpipe.exceptions import LeadpipeResponseError
from airflow_provider_leadpipe.operators.account import LeadpipeAccountStatusOperator
from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator
from airflow_provider_leadpipe.operators.audiences import (
    LeadpipeRunAudienceOperator,
    LeadpipeUpsertAudienceOperator,
)
from airflow_provider_leadpipe.operators.credit_report import LeadpipeCreditReportOperator
from airflow_provider_leadpipe.operators.pixels import (
    LeadpipeCreatePixelOperator,
    LeadpipeUpdatePixelOperator,
)
from airflow_provider_leadpipe.operators.visitors import LeadpipeVisitorsToStorageOperator
from tests.unit.conftest import BASE_URL, account_data
from tests.unit.hooks.test_no_body_in_tracebacks import (
    CANARY,
    EMAIL,
    ERROR_BODY,
    PIXEL,
    VISITORS,
    answer_with,
    exposures,
    failure_of,
    poisoned,
)
from tests.unit.models.test_audiences import AUDIENCE, AUDIENCE_ID, DAILY_RUN, QUEUED_RUN, RESULTS_200, RUN_ID


class TaskInstance:
    """What the operators read from ``context["ti"]``: ids, and no earlier XCom."""

    dag_id, run_id, task_id, map_index = "d", "r", "t", -1

    def xcom_pull(self, **kwargs: Any) -> None:
        return None

    def xcom_push(self, **kwargs: Any) -> None:
        pass


OPERATORS = {
    "account status": (lambda tmp: LeadpipeAccountStatusOperator(task_id="t"), {"data": account_data()}),
    "credit report": (lambda tmp: LeadpipeCreditReportOperator(task_id="t"), {"data": account_data()}),
    "visitors": (
        lambda tmp: LeadpipeVisitorsToStorageOperator(task_id="t", path=str(tmp / "v.jsonl")),
        VISITORS,
    ),
    "create pixel": (
        lambda tmp: LeadpipeCreatePixelOperator(task_id="t", domain="acme.com"),
        {"data": PIXEL},
    ),
    "update pixel": (
        lambda tmp: LeadpipeUpdatePixelOperator(task_id="t", pixel_id="px_1", status="paused"),
        {"data": PIXEL},
    ),
    "upsert audience": (
        lambda tmp: LeadpipeUpsertAudienceOperator(task_id="t", name="A", config={"topicIds": [1]}),
        {"data": [AUDIENCE]},
    ),
    "run audience": (
        lambda tmp: LeadpipeRunAudienceOperator(task_id="t", audience_id=AUDIENCE_ID, deferrable=False),
        {"data": QUEUED_RUN},
    ),
    "audience results": (
        lambda tmp: LeadpipeAudienceResultsToStorageOperator(
            task_id="t", audience_id=AUDIENCE_ID, audience_run_id=RUN_ID, path=str(tmp / "r.jsonl")
        ),
        RESULTS_200,
    ),
}


@pytest.mark.parametrize("answer", ["2xx refused", "error body"])
@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_execute_on_a_failing_answer_leaves_no_copy(leadpipe_conn, tmp_path, name, answer):
    make, body = OPERATORS[name]
    operator = make(tmp_path)
    operator.hook_params = {"max_retries": 0}
    response = (
        httpx.Response(200, json=poisoned(body))
        if answer == "2xx refused"
        else httpx.Response(500, json=ERROR_BODY)
    )
    with respx.mock(base_url=BASE_URL) as mock:
        answer_with(mock, response)
        error = failure_of(lambda: operator.execute({"ti": TaskInstance()}))
    if answer == "2xx refused":
        assert isinstance(error, LeadpipeResponseError), repr(error)
    assert exposures(error) == []


PERSON = {"email": EMAIL, "note": CANARY}
#: The first page valid (a person's row), the second refused.
PAGED = {
    "visitors": ({"data": [PERSON], "meta": {"total": 3}}, poisoned(VISITORS)),
    "audience results": (
        {"data": {**RESULTS_200["data"], "results": [PERSON], "total": 3, "offset": 0}},
        poisoned(RESULTS_200),
    ),
}


@pytest.mark.parametrize("name", sorted(PAGED))
def test_a_pull_failing_after_a_page_leaves_no_page_in_reach(leadpipe_conn, tmp_path, name):
    operator = OPERATORS[name][0](tmp_path)
    operator.hook_params = {"max_retries": 0}
    if name == "audience results":
        operator.concurrency = 1
    first, second = (httpx.Response(200, json=body) for body in PAGED[name])
    with respx.mock(base_url=BASE_URL) as mock:
        if name == "audience results":  # the run is looked up first: results?limit=1 and the runs list
            mock.get(path__regex=r"/runs$").respond(200, json={"data": [DAILY_RUN]})
            pages = mock.get(path__regex=r"/results$").mock(side_effect=[first, first, second, second])
        else:
            pages = mock.route().mock(side_effect=[first, second, second])
        error = failure_of(lambda: operator.execute({"ti": TaskInstance()}))
        assert pages.calls.last.response is not None and pages.calls.last.response.json() == PAGED[name][1]
    assert isinstance(error, LeadpipeResponseError), repr(error)
    assert exposures(error) == []
    assert list(tmp_path.iterdir()) == []  # nothing written either
