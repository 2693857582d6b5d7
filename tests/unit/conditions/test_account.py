"""AccountCondition: the one decision shared by the sensor and the trigger."""

from __future__ import annotations

import itertools
import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_leadpipe.conditions.account import (
    DEFAULT_FAIL_ON_STATUSES,
    AccountCondition,
    LeadpipeAccountError,
)
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.models import AccountStatus
from tests.unit.conftest import account_data

CREDITS = {
    "plenty": {
        "used": 20,
        "limit": 500,
        "remaining": 480,
        "percentUsed": 4.0,
        "resetsAt": "2026-12-01T00:00:00Z",
    },
    "no cap": {"used": 9000, "limit": None, "remaining": None, "percentUsed": None, "resetsAt": None},
    "exhausted": {
        "used": 500,
        "limit": 500,
        "remaining": 0,
        "percentUsed": 100.0,
        "resetsAt": "2026-12-01T00:00:00Z",
    },
}
INTENT = {
    "slots free": {
        "audienceSlots": 3,
        "audienceSlotsUsed": 1,
        "audienceSlotsAvailable": 2,
        "status": "active",
    },
    "slots full": {
        "audienceSlots": 3,
        "audienceSlotsUsed": 3,
        "audienceSlotsAvailable": 0,
        "status": "active",
    },
    "intent null": None,
}


def status(**overrides) -> AccountStatus:
    return AccountStatus.from_data(account_data(**overrides))


@pytest.mark.parametrize(
    ("healthy", "credits", "max_percent", "slots", "intent"),
    list(itertools.product([True, False], CREDITS, [None, 50], [None, 1], INTENT)),
)
def test_condition_matrix(healthy, credits, max_percent, slots, intent):
    condition = AccountCondition(min_credits=100, max_percent_used=max_percent, min_audience_slots=slots)
    account = status(healthy=healthy, credits=CREDITS[credits], intent=INTENT[intent])

    if slots is not None and intent == "intent null":
        with pytest.raises(LeadpipeAccountError, match="no intent product"):
            condition.evaluate(account)
        return

    satisfied, reason = condition.evaluate(account)
    # The rules, restated independently: null remaining/percentUsed satisfy their checks.
    expected_unmet = {
        "account not healthy": not healthy,
        "credits left, need 100": credits == "exhausted",
        "% of credits used, max 50%": max_percent is not None and credits == "exhausted",
        "audience slots available, need 1": slots is not None and intent == "slots full",
    }
    assert satisfied is not any(expected_unmet.values())
    for fragment, unmet in expected_unmet.items():
        assert (fragment in reason) is unmet, reason
    if satisfied:
        assert reason.startswith("ready: Acme")


def test_reason_is_one_readable_line_with_the_reset_date():
    condition = AccountCondition(min_credits=500)
    satisfied, reason = condition.evaluate(status(credits=CREDITS["exhausted"]))
    assert not satisfied
    assert reason == "0 credits left, need 500; credits reset 2026-12-01T00:00:00Z"


def test_no_reset_date_when_credits_are_not_the_problem():
    _, reason = AccountCondition().evaluate(status(healthy=False))
    assert reason == "account not healthy (organization status 'trial')"


def test_no_cap_satisfies_any_min_credits_and_null_percent_any_max():
    condition = AccountCondition(min_credits=10**9, max_percent_used=0)
    assert condition.evaluate(status(credits=CREDITS["no cap"]))[0] is True


@pytest.mark.parametrize("min_credits", [None, 0])
def test_min_credits_none_or_zero_disables_the_check(min_credits):
    assert AccountCondition(min_credits=min_credits).evaluate(status(credits=CREDITS["exhausted"]))[0]


def test_require_healthy_false_ignores_health():
    assert AccountCondition(require_healthy=False).evaluate(status(healthy=False))[0] is True


@pytest.mark.parametrize("org_status", ["expired", "EXPIRED", " Expired "])
def test_expired_fails_fast_by_default(org_status):
    account = status(healthy=False, organization={"name": "Acme", "status": org_status})
    with pytest.raises(LeadpipeAccountError, match="waiting cannot fix") as exc:
        AccountCondition().evaluate(account)
    assert isinstance(exc.value, AirflowFailException)
    assert "Acme" in str(exc.value)
    assert "expired" in DEFAULT_FAIL_ON_STATUSES


def test_fail_fast_wins_over_an_otherwise_satisfied_account():
    account = status(organization={"name": "Acme", "status": "suspended"})
    with pytest.raises(LeadpipeAccountError, match="'suspended'"):
        AccountCondition(fail_on_statuses=["expired", "suspended"]).evaluate(account)


def test_empty_fail_on_statuses_waits_on_expired():
    account = status(healthy=False, organization={"name": "Acme", "status": "expired"})
    assert AccountCondition(fail_on_statuses=[]).evaluate(account)[0] is False


def test_to_dict_round_trips_through_json():
    condition = AccountCondition(
        require_healthy=False,
        min_credits=2.5,
        max_percent_used=90,
        min_audience_slots=1,
        fail_on_statuses=("Expired", "suspended"),
    )
    data = json.loads(json.dumps(condition.to_dict()))
    assert data["fail_on_statuses"] == ["expired", "suspended"]
    rebuilt = AccountCondition.from_dict(data)
    assert rebuilt == condition
    assert hash(rebuilt) == hash(condition)


@pytest.mark.parametrize(
    ("kwargs", "normalized"),
    [
        ({"min_credits": "500"}, {"min_credits": 500}),
        ({"min_credits": " 2.5 "}, {"min_credits": 2.5}),
        ({"max_percent_used": "90"}, {"max_percent_used": 90}),
        ({"min_audience_slots": "2"}, {"min_audience_slots": 2}),
        ({"min_credits": "None"}, {"min_credits": None}),
        ({"require_healthy": "False"}, {"require_healthy": False}),
        ({"require_healthy": "true"}, {"require_healthy": True}),
        ({"fail_on_statuses": "expired, Suspended"}, {"fail_on_statuses": ("expired", "suspended")}),
        ({"fail_on_statuses": "['expired', 'Suspended']"}, {"fail_on_statuses": ("expired", "suspended")}),
        ({"fail_on_statuses": '["expired"]'}, {"fail_on_statuses": ("expired",)}),
        ({"fail_on_statuses": ("expired", "expired ")}, {"fail_on_statuses": ("expired",)}),
        ({"fail_on_statuses": None}, {"fail_on_statuses": None}),
        ({"fail_on_statuses": ""}, {"fail_on_statuses": None}),
        ({"fail_on_statuses": []}, {"fail_on_statuses": None}),
        ({"fail_on_statuses": "[]"}, {"fail_on_statuses": None}),
    ],
)
def test_rendered_template_strings_are_parsed(kwargs, normalized):
    condition = AccountCondition(**kwargs)
    for name, value in normalized.items():
        assert getattr(condition, name) == value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_credits": -1}, "min_credits must be a number >= 0"),
        ({"min_credits": "lots"}, "min_credits must be a number >= 0 (or None), got 'lots'"),
        ({"min_credits": True}, "min_credits must be a number"),
        ({"min_credits": float("nan")}, "min_credits must be a number"),
        ({"min_credits": [1]}, "min_credits must be a number"),
        ({"max_percent_used": 101}, "max_percent_used must be a number from 0 to 100"),
        ({"max_percent_used": -0.5}, "max_percent_used must be a number from 0 to 100"),
        ({"min_audience_slots": 1.5}, "min_audience_slots must be a whole number"),
        ({"min_audience_slots": "two"}, "min_audience_slots must be a whole number"),
        ({"require_healthy": "maybe"}, "require_healthy must be true or false, got 'maybe'"),
        ({"require_healthy": None}, "require_healthy must be true or false"),
        ({"fail_on_statuses": 5}, "fail_on_statuses must be a list"),
        ({"fail_on_statuses": {"expired": 1}}, "fail_on_statuses must be a list"),
        ({"fail_on_statuses": ["expired", 3]}, "fail_on_statuses[1] must be a string"),
    ],
)
def test_bad_values_raise_config_errors_naming_the_parameter(kwargs, message):
    with pytest.raises(LeadpipeConfigError) as exc:
        AccountCondition(**kwargs)
    assert message in str(exc.value)


def test_from_dict_refuses_unknown_keys_and_non_mappings():
    with pytest.raises(LeadpipeConfigError, match=r"unknown account condition key\(s\) \['min_credit'\]"):
        AccountCondition.from_dict({"min_credit": 5})
    with pytest.raises(LeadpipeConfigError, match="must be a mapping"):
        AccountCondition.from_dict([("min_credits", 5)])


@pytest.mark.parametrize(
    ("limit", "satisfied"),
    [
        ({"min_credits": 480}, True),  # 480 left: exactly enough
        ({"min_credits": 480.5}, False),
        ({"max_percent_used": 4}, True),  # 4 % used: exactly at the maximum
        ({"max_percent_used": 3.9}, False),
        ({"min_audience_slots": 2}, True),  # 2 slots available: exactly enough
        ({"min_audience_slots": 3}, False),
    ],
    ids=str,
)
def test_every_limit_is_met_exactly_at_its_value(limit, satisfied):
    account = status(credits=CREDITS["plenty"], intent=INTENT["slots free"])
    ready, reason = AccountCondition(**limit).evaluate(account)
    assert ready is satisfied, reason
