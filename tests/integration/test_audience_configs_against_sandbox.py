"""The hook's config checks over real loopback HTTP against the sandbox, sync and async: validate
(valid and invalid), preview (its masked sample kept out of to_dict and repr), the filter catalog,
topic search, topics by id and topic names resolved to ids; the typed errors of 401, 404, 429 and 5xx."""

from __future__ import annotations

import pytest

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeNotFoundError,
    LeadpipeResponseError,
    LeadpipeServerError,
)
from airflow_provider_leadpipe.hooks.leadpipe import LeadpipeHook
from leadpipe_sandbox.faults import Fault
from tests.orbit import hook_caller

pytestmark = pytest.mark.integration

CONFIG = {"topicIds": [101, 103], "filters": {"role.seniority": {"values": ["VP", "Director"]}}}
BAD = {"topicIds": [101], "filters": {"role.seniorty": {"values": ["VP"]}, "role.seniority": ["boss"]}}
VALIDATE = "/v1/intent/audiences/validate"


@pytest.fixture
def hook(leadpipe_sandbox):
    with LeadpipeHook(retry_backoff=0.01) as hook:
        yield hook


@pytest.fixture(params=["sync", "async"])
def call(request, hook):
    """Call a hook method by its sync name, through the sync method or its async twin."""
    return hook_caller(hook, request.param)


def test_validate_valid_and_invalid(call):
    check = call("validate_audience_config", CONFIG)
    assert check.valid and check.problems() == []
    assert check.normalized_config["filters"]["role.seniority"]["values"] == ["Director", "VP"]
    reordered = {"filters": {"role": {"seniority": ["Director", "VP"]}}, "topicIds": [103, 101]}
    assert call("validate_audience_config", reordered).config_hash == check.config_hash
    invalid = call("validate_audience_config", BAD)
    assert not invalid.valid and invalid.config_hash is None
    assert invalid.problems() == [
        "filters.role.seniorty: Unknown filter key 'role.seniorty'",
        "filters.role.seniority: 'boss' is not a value of filter 'role.seniority'",
    ]


def test_preview_counts_and_keeps_the_sample_out_of_to_dict_and_repr(call):
    preview = call("preview_audience", CONFIG)
    assert 0 < preview.total_count < 1000
    assert sum(row["count"] for row in preview.breakdowns["seniorities"]) == preview.total_count
    assert preview.sample and preview.sample[0]["lastName"].endswith(".")
    first_name = preview.sample[0]["firstName"]
    assert "sample" not in preview.to_dict() and first_name not in str(preview.to_dict())
    assert "sample" not in repr(preview)
    with pytest.raises(LeadpipeConfigError, match=r"(?s)2 problem.*role\.seniorty.*'boss'"):
        call("preview_audience", BAD)


def test_filter_catalog_and_topics(call):
    catalog = call("get_audience_filters")
    assert "role.seniority" in catalog.filter_keys() and catalog.version["status"] == "catalog"
    found = call("search_topics", "crm")
    assert [(t.topic_id, t.topic_name) for t in found] == [(104, "CRM Software")]
    assert [t.topic_id for t in call("get_topics", [104, 101, 999])] == [104, 101]
    assert call("resolve_topic_ids", ["crm software", "Workflow Orchestration"]) == [104, 106]
    with pytest.raises(LeadpipeConfigError) as caught:
        call("resolve_topic_ids", ["Intent Data", "Quantum Baking", "Data"])
    text = str(caught.value)
    assert "'Intent Data' is ambiguous (2 topics have this name)" in text
    assert "Intent Data (id 102" in text and "Intent Data (id 109" in text
    assert "'Quantum Baking' matches no topic by name; candidates: none" in text
    assert "'Data' matches no topic by name; candidates: " in text and "Data Warehousing (id 105" in text
    with pytest.raises(LeadpipeConfigError, match="limit"):
        call("search_topics", "crm", limit=51)


def test_errors_are_typed(leadpipe_sandbox, hook, call):
    leadpipe_sandbox.queue_faults(Fault.unavailable(count=5, path=VALIDATE))
    with pytest.raises(LeadpipeServerError):
        call("validate_audience_config", CONFIG)
    leadpipe_sandbox.clear_faults()
    leadpipe_sandbox.queue_faults(Fault.rate_limit(path=VALIDATE, retry_after=0))
    assert call("validate_audience_config", CONFIG).valid  # 429 with Retry-After: retried
    assert leadpipe_sandbox.request_count(VALIDATE, status=429) == 1
    leadpipe_sandbox.queue_faults(Fault.error(404, path="/v1/intent/audiences/filters"))
    with pytest.raises(LeadpipeNotFoundError, match="filter catalog"):
        call("get_audience_filters")
    leadpipe_sandbox.queue_faults(Fault.wrong_shape(body={"data": {"totalCount": "many"}}, path="*/preview"))
    with pytest.raises(LeadpipeResponseError, match="totalCount"):
        call("preview_audience", CONFIG)


def test_a_wrong_key_is_an_auth_error(leadpipe_sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WRONG", leadpipe_sandbox.connection_json(api_key="sk_not_a_key_123456"))
    with LeadpipeHook(leadpipe_conn_id="wrong") as hook, pytest.raises(LeadpipeAuthError) as caught:
        hook.validate_audience_config(CONFIG)
    assert "sk_not_a_key_123456" not in str(caught.value)
