"""LeadpipeRetryPolicy on Airflow 3.3: each error class's decision, serialization, and the clear
error on older Airflow."""

from __future__ import annotations

import importlib
import json
import sys
from datetime import timedelta

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from airflow_provider_leadpipe.exceptions import (
    LeadpipeAccountError,
    LeadpipeAuthError,
    LeadpipeConfigError,
    LeadpipeConflictError,
    LeadpipeConnectionError,
    LeadpipeIncompleteError,
    LeadpipeRateLimitError,
    LeadpipeResponseError,
    LeadpipeServerError,
    LeadpipeSlotsFullError,
)

MODULE = "airflow_provider_leadpipe.utils.retry_policy"


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="the error is for Airflow before 3.3")
def test_importing_before_airflow_3_3_names_the_version():
    from airflow import __version__

    with pytest.raises(ImportError, match=rf"needs Airflow 3.3 or later .*this is Airflow {__version__}"):
        importlib.import_module(MODULE)


def test_without_the_sdk_retry_policies_the_import_error_names_the_version(monkeypatch):
    """As on Airflow 2.11-3.2, where ``airflow.sdk.definitions.retry_policy`` does not exist."""
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    monkeypatch.setitem(sys.modules, "airflow.sdk.definitions.retry_policy", None)  # import fails
    from airflow import __version__

    with pytest.raises(ImportError, match=rf"needs Airflow 3.3 or later .*this is Airflow {__version__}\."):
        importlib.import_module(MODULE)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)  # no half-imported module left behind


@pytest.fixture
def policy_module():
    if not AIRFLOW_V_3_3_PLUS:
        pytest.skip("retry policies arrived in Airflow 3.3")
    return importlib.import_module(MODULE)


def decide(policy_module, exception, **kwargs):
    return policy_module.LeadpipeRetryPolicy(**kwargs).evaluate(exception, try_number=1, max_tries=3)


def test_rate_limit_retries_after_the_servers_retry_after(policy_module):
    from airflow.sdk.definitions.retry_policy import RetryAction

    decision = decide(policy_module, LeadpipeRateLimitError("429", http_status=429, retry_after=42))
    assert decision.action is RetryAction.RETRY and decision.retry_delay == timedelta(seconds=42)
    assert "Retry-After (42 s)" in decision.reason


def test_rate_limit_retry_after_is_capped(policy_module):
    long = LeadpipeRateLimitError("429", retry_after=86_400)
    assert decide(policy_module, long).retry_delay == timedelta(seconds=900)
    assert decide(policy_module, long, max_retry_after=120).retry_delay == timedelta(seconds=120)


def test_rate_limit_without_retry_after_uses_the_tasks_backoff(policy_module):
    from airflow.sdk.definitions.retry_policy import RetryAction

    decision = decide(policy_module, LeadpipeRateLimitError("429"))
    assert decision.action is RetryAction.RETRY and decision.retry_delay is None


@pytest.mark.parametrize(
    "error",
    [LeadpipeServerError("503", http_status=503, retry_after=5), LeadpipeConnectionError("refused")],
    ids=["server", "connection"],
)
def test_server_and_connection_errors_use_the_tasks_backoff(policy_module, error):
    from airflow.sdk.definitions.retry_policy import RetryAction

    decision = decide(policy_module, error)
    assert decision.action is RetryAction.RETRY and decision.retry_delay is None


@pytest.mark.parametrize(
    "error",
    [
        LeadpipeConfigError("no key"),
        LeadpipeAuthError("401", http_status=401),
        LeadpipeSlotsFullError("403 SLOTS_FULL", http_status=403),
        LeadpipeAccountError("expired"),
    ],
    ids=["config", "auth", "slots", "account"],
)
def test_errors_retrying_cannot_fix_fail_at_once(policy_module, error):
    from airflow.sdk.definitions.retry_policy import RetryAction

    decision = decide(policy_module, error)
    assert decision.action is RetryAction.FAIL
    assert decision.reason == f"{type(error).__name__}: retrying cannot fix it"


@pytest.mark.parametrize(
    "error",
    [
        LeadpipeResponseError("bad shape"),
        LeadpipeIncompleteError("short", expected=10, received=9),
        LeadpipeConflictError("409"),
        ValueError("user code"),
    ],
    ids=["response", "incomplete", "conflict", "other"],
)
def test_anything_else_keeps_airflows_default(policy_module, error):
    from airflow.sdk.definitions.retry_policy import RetryAction

    assert decide(policy_module, error).action is RetryAction.DEFAULT


def test_serializes_to_json_and_back(policy_module):
    policy = policy_module.LeadpipeRetryPolicy(max_retry_after=300)
    data = json.loads(json.dumps(policy.serialize()))
    assert data == {"__type": f"{MODULE}.LeadpipeRetryPolicy", "max_retry_after": 300.0}
    assert policy_module.LeadpipeRetryPolicy.deserialize(data) == policy


@pytest.mark.parametrize("value", [0, -1, float("inf"), "60", True])
def test_bad_max_retry_after_is_a_config_error(policy_module, value):
    with pytest.raises(LeadpipeConfigError, match="max_retry_after must be a number of seconds above 0"):
        policy_module.LeadpipeRetryPolicy(max_retry_after=value)


def test_a_task_takes_it_as_retry_policy(policy_module):
    from airflow.sdk import BaseOperator

    task = BaseOperator(task_id="pull", retries=3, retry_policy=policy_module.LeadpipeRetryPolicy())
    assert task.has_retry_policy
