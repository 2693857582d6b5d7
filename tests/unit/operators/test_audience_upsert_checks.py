"""LeadpipeUpsertAudienceOperator checks a config with Orbit before it creates or changes anything:
validation, configHash comparison, size gates and topic names, against the sandbox over loopback HTTP.
The sandbox's request log proves what was (not) sent."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeAudienceSizeError, LeadpipeConfigError
from airflow_provider_leadpipe.operators.audiences import LeadpipeUpsertAudienceOperator
from tests.orbit import context

AUDIENCES = "/v1/intent/audiences"
AUDIENCE = "/v1/intent/audiences/{audienceId}"
VALIDATE = "/v1/intent/audiences/validate"
PREVIEW = "/v1/intent/audiences/preview"
CONFIG = {"topicIds": [101, 103], "filters": {"role.seniority": {"values": ["VP", "Director"]}}}
BAD = {"topicIds": [101], "filters": {"role.seniorty": {"values": ["VP"]}, "role.seniority": ["boss"]}}


def upsert(**kwargs):
    return LeadpipeUpsertAudienceOperator(task_id="upsert", **kwargs).execute(context())


def writes(sandbox) -> int:
    """Creates and updates the sandbox saw."""
    return sandbox.request_count(AUDIENCES, method="POST") + sandbox.request_count(AUDIENCE, method="PATCH")


def audiences(sandbox, name):
    return [a for a in sandbox.orbit_state()["audiences"] if a["name"] == name]


@pytest.mark.parametrize("existing", [False, True])
def test_an_invalid_config_fails_naming_each_problem_and_sends_nothing(leadpipe_sandbox, existing):
    if existing:
        leadpipe_sandbox.create_audience("Buyers", status="draft")
    before = audiences(leadpipe_sandbox, "Buyers")
    with pytest.raises(LeadpipeConfigError) as caught:
        upsert(name="Buyers", config=BAD, status="active")
    text = str(caught.value)
    assert "config of audience 'Buyers' is invalid (2 problem(s))" in text
    assert "filters.role.seniorty: Unknown filter key 'role.seniorty'" in text
    assert "filters.role.seniority: 'boss' is not a value of filter 'role.seniority'" in text
    assert caught.value.problems == text.split("\n- ")[1:]
    assert leadpipe_sandbox.request_count(VALIDATE, method="POST") == 1
    assert writes(leadpipe_sandbox) == 0
    assert audiences(leadpipe_sandbox, "Buyers") == before


def test_an_unchanged_config_sends_no_update(leadpipe_sandbox):
    created = upsert(name="Buyers", config=CONFIG, status="draft")
    assert created["upsert"] == "created" and writes(leadpipe_sandbox) == 1
    # The same audience written another way: the same configHash, so nothing is sent.
    same = {"filters": {"role": {"seniority": ["Director", "VP"]}}, "topicIds": [103, 101]}
    again = upsert(name="Buyers", config=same, status="draft")
    assert (again["upsert"], again["id"], again["configHash"]) == (
        "unchanged",
        created["id"],
        created["configHash"],
    )
    assert writes(leadpipe_sandbox) == 1
    [stored] = audiences(leadpipe_sandbox, "Buyers")
    assert stored["config"] == CONFIG  # as first written
    # A real change is sent; so is a status change alone.
    changed = upsert(name="Buyers", config={**CONFIG, "minScore": 80})
    assert changed["upsert"] == "updated" and changed["configHash"] != created["configHash"]
    assert upsert(name="Buyers", config={**CONFIG, "minScore": 80}, status="paused")["upsert"] == "updated"
    assert writes(leadpipe_sandbox) == 3
    assert leadpipe_sandbox.request_count(PREVIEW) == 0  # no size bound: no preview


def test_a_size_gate_refuses_activation_and_changes_nothing(leadpipe_sandbox):
    paused = leadpipe_sandbox.create_audience("Narrow", status="paused")
    nobody = {"topicIds": [101], "filters": {"jobTitle.include": ["Astronaut"]}}
    with pytest.raises(
        LeadpipeAudienceSizeError, match=r"would match 0 people today.*nothing was changed"
    ) as caught:
        upsert(name="Narrow", config=nobody, status="active", min_audience_size=10)
    assert (caught.value.total_count, caught.value.minimum) == (0, 10)
    with pytest.raises(LeadpipeAudienceSizeError, match="would match 1000 people"):
        upsert(name="Narrow", config={"topicIds": [101]}, status="active", max_audience_size=500)
    assert writes(leadpipe_sandbox) == 0
    [still] = audiences(leadpipe_sandbox, "Narrow")
    assert (still["id"], still["status"]) == (paused["id"], "paused")
    # Within bounds: made active; a draft is not gated at all.
    ok = upsert(name="Narrow", config=CONFIG, status="active", min_audience_size=1, max_audience_size=500)
    assert (ok["upsert"], ok["status"]) == ("updated", "active")
    assert upsert(name="Draft", config=nobody, status="draft", min_audience_size=10)["upsert"] == "created"
    assert leadpipe_sandbox.request_count(PREVIEW) == 3


def test_topic_names_are_resolved_or_fail_listing_candidates(leadpipe_sandbox):
    created = upsert(
        name="By name", config={"topicIds": [101]}, topic_names=["crm software", "Workflow Orchestration"]
    )
    [stored] = audiences(leadpipe_sandbox, "By name")
    assert stored["config"]["topicIds"] == [101, 104, 106] and created["upsert"] == "created"
    with pytest.raises(LeadpipeConfigError, match=r"(?s)'Intent Data' is ambiguous.*id 102.*id 109"):
        upsert(name="Ambiguous", config={"topicIds": [101]}, topic_names=["Intent Data"])
    assert leadpipe_sandbox.request_count(VALIDATE) == 1  # the failed one never got that far
    assert audiences(leadpipe_sandbox, "Ambiguous") == []


def test_the_preview_sample_is_never_logged_nor_returned(leadpipe_sandbox, capsys, caplog, monkeypatch):
    import httpx

    sample = httpx.post(
        f"{leadpipe_sandbox.url}{PREVIEW}", json=CONFIG, headers={"x-api-key": leadpipe_sandbox.api_key}
    ).json()["data"]["sample"]
    secrets = [p[field] for p in sample for field in ("firstName", "fullName", "email") if p[field]]
    assert secrets
    # Airflow 3 prints the task log via structlog to stdout, Airflow 2 uses logging.
    monkeypatch.setattr(logging.getLogger("airflow.task"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    result = upsert(name="Gated", config=CONFIG, status="active", min_audience_size=1)
    text = caplog.text + capsys.readouterr().out + repr(result)
    assert "Preview of audience 'Gated'" in text
    assert not [secret for secret in secrets if secret in text]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_audience_size": -1}, "min_audience_size must be a whole number >= 0"),
        ({"max_audience_size": "10"}, "max_audience_size must be a whole number"),
        ({"min_audience_size": 5, "max_audience_size": 4}, r"min_audience_size \(5\) is larger"),
        ({"topic_names": [1]}, r"topic_names\[0\] must be a string"),
    ],
)
def test_arguments_are_checked_at_parse_time(kwargs, message):
    with pytest.raises(LeadpipeConfigError, match=message):
        LeadpipeUpsertAudienceOperator(task_id="t", name="A", config=CONFIG, **kwargs)
