"""Credit alert crossings: which thresholds a report crosses and which alerts are due, run after run."""

from __future__ import annotations

import json

import pendulum
import pytest

from airflow_provider_leadpipe.conditions.credit_alerts import (
    CreditThresholds,
    alert_payload,
    decide_alerts,
    previous_state,
)
from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.models import AccountStatus
from airflow_provider_leadpipe.models.credit_report import Observation, build_credit_report
from tests.unit.conftest import account_data

START = pendulum.datetime(2026, 11, 1, tz="UTC")
RESET = "2026-12-01T00:00:00Z"


def status(used, *, limit=1000, resets_at=RESET, org="Acme"):
    credits = {
        "used": used,
        "limit": limit,
        "remaining": None if limit is None else limit - used,
        "percentUsed": None if limit is None else used * 100 / limit,
        "resetsAt": resets_at,
    }
    return AccountStatus.from_data(
        account_data(credits=credits, organization={"name": org, "status": "active"})
    )


class Runs:
    """Consecutive daily reports, each deciding with the state the one before recorded."""

    def __init__(self, thresholds, *, sent_ok=True):
        self.thresholds = thresholds
        self.sent_ok = sent_ok
        self.previous = None
        self.state = None
        self.day = 0

    def report(self, used, **kwargs):
        at = START.add(days=self.day)
        self.day += 1
        report = build_credit_report(status(used, **kwargs), observed_at=at, previous=self.previous)
        decision = decide_alerts(self.thresholds, report, self.state if report.previous else None)
        sent = list(decision.due) if self.sent_ok else []
        self.state = json.loads(json.dumps(decision.state(sent)))  # as XCom stores it
        self.previous = Observation(report.current.status, at)
        return decision


def test_min_credits_fires_once_per_crossing_then_rearms():
    runs = Runs(CreditThresholds(min_credits=100))
    assert runs.report(800).due == ()
    crossed = runs.report(950)
    assert crossed.crossed == ("min_credits",) and crossed.due == ("min_credits",)
    for used in (960, 970, 990):
        later = runs.report(used)
        assert later.crossed == ("min_credits",) and later.due == ()
    # Credits come back (limit raised), then fall again: a new crossing.
    assert runs.report(990, limit=2000).crossed == ()
    again = runs.report(1950, limit=2000)
    assert again.due == ("min_credits",)


def test_a_new_billing_cycle_rearms_a_threshold_still_crossed():
    runs = Runs(CreditThresholds(min_credits=100))
    assert runs.report(950).due == ("min_credits",)
    assert runs.report(960).due == ()
    # The plan reset but the new cycle starts low (e.g. a smaller limit): alert once in it.
    next_cycle = runs.report(450, limit=500, resets_at="2027-01-01T00:00:00Z")
    assert next_cycle.cycle == "2027-01-01T00:00:00Z"
    assert next_cycle.due == ("min_credits",)
    assert runs.report(460, limit=500, resets_at="2027-01-01T00:00:00Z").due == ()


def test_two_thresholds_crossed_together_are_both_due_in_order():
    runs = Runs(CreditThresholds(max_percent_used=90, min_credits=100))
    decision = runs.report(950)
    assert decision.due == ("min_credits", "max_percent_used")
    assert runs.state == {"min_credits": RESET, "max_percent_used": RESET}


def test_percent_used_at_the_threshold_is_not_crossed():
    runs = Runs(CreditThresholds(max_percent_used=90))
    assert runs.report(900).crossed == ()
    assert runs.report(901).crossed == ("max_percent_used",)


def test_runout_before_reset_with_margin():
    # 29 days to the reset: 100/day with 900 left runs out on day 10 (before the reset).
    runs = Runs(CreditThresholds(exhaustion_margin_hours=0))
    first = runs.report(0)
    assert first.crossed == () and first.due == ()  # unknown on a first report
    assert runs.report(100).due == ("exhaustion_margin_hours",)
    assert runs.report(200).due == ()


def test_margin_extends_the_window_past_the_reset():
    # 890 left at 10/day on Nov 2: runs out Jan 30, after the Dec 1 reset but within 70 days of it.
    strict = Runs(CreditThresholds(exhaustion_margin_hours=0))
    strict.report(100)
    assert strict.report(110).crossed == ()  # 890 left at 10/day: 89 days
    margin = Runs(CreditThresholds(exhaustion_margin_hours=24 * 70))
    margin.report(100)
    assert margin.report(110).crossed == ("exhaustion_margin_hours",)  # within 70 days after


def test_unknown_runway_keeps_the_state_instead_of_rearming():
    thresholds = CreditThresholds(exhaustion_margin_hours=0)
    crossed = build_credit_report(
        status(200),
        observed_at=START.add(days=1),
        previous=Observation(status(100), START),
    )
    fired = decide_alerts(thresholds, crossed, {})
    assert fired.due == ("exhaustion_margin_hours",)
    # Same instant again: no burn rate, cannot tell -> not crossed now, but not re-armed either.
    unknown = build_credit_report(
        status(200), observed_at=START.add(days=1), previous=Observation(status(200), START.add(days=1))
    )
    held = decide_alerts(thresholds, unknown, fired.state(fired.due))
    assert held.crossed == () and held.due == ()
    assert held.state([]) == {"exhaustion_margin_hours": RESET}


def test_unlimited_plan_never_crosses():
    runs = Runs(CreditThresholds(min_credits=100, max_percent_used=1, exhaustion_margin_hours=1000))
    runs.report(5000, limit=None, resets_at=None)
    assert runs.report(9000, limit=None, resets_at=None).crossed == ()


def test_no_reset_date_counts_any_projected_exhaustion():
    runs = Runs(CreditThresholds(exhaustion_margin_hours=0))
    runs.report(0, resets_at=None)
    decision = runs.report(1, resets_at=None)  # 999 days left, but nothing tops them up
    assert decision.due == ("exhaustion_margin_hours",) and decision.cycle is None
    assert runs.report(2, resets_at=None).due == ()


def test_when_no_notifier_took_the_alert_the_next_run_tries_again():
    runs = Runs(CreditThresholds(min_credits=100), sent_ok=False)
    assert runs.report(950).due == ("min_credits",)
    assert runs.report(960).due == ("min_credits",)


@pytest.mark.parametrize(
    "value", [{}, None, "x", {"notified": "x"}, {"notified": {"bogus": RESET, "min_credits": 3}}]
)
def test_a_damaged_or_missing_state_reads_as_none(value):
    assert previous_state(value) == {}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"min_credits": -1}, "min_credits"),
        ({"max_percent_used": 101}, "max_percent_used"),
        ({"max_percent_used": "lots"}, "max_percent_used"),
        ({"exhaustion_margin_hours": True}, "exhaustion_margin_hours"),
        ({"exhaustion_margin_hours": float("nan")}, "exhaustion_margin_hours"),
    ],
)
def test_bad_thresholds_are_config_errors_naming_the_argument(kwargs, named):
    with pytest.raises(LeadpipeConfigError, match=named):
        CreditThresholds(**kwargs)


def test_off_is_none_and_rendered_strings_parse():
    assert CreditThresholds(
        min_credits="None", max_percent_used="80", exhaustion_margin_hours="12.5"
    ).to_dict() == {
        "max_percent_used": 80,
        "exhaustion_margin_hours": 12.5,
    }


def test_alert_message_has_the_figures():
    thresholds = CreditThresholds(exhaustion_margin_hours=0)
    report = build_credit_report(
        status(700), observed_at=START.add(days=1), previous=Observation(status(500), START)
    )
    payload = alert_payload("exhaustion_margin_hours", thresholds, report, leadpipe_conn_id="leadpipe_prod")
    assert payload["message"] == (
        "Leadpipe credits alert (exhaustion_margin_hours): credits run out 2026-11-03T12:00:00Z, "
        "before the next reset.\n"
        "Organization: Acme (connection leadpipe_prod)\n"
        "Credits: 300 of 1000 left; burn 200/day; runs out 2026-11-03T12:00:00Z; "
        "resets 2026-12-01T00:00:00Z"
    )
    assert payload["remaining"] == 300 and payload["daily_burn_rate"] == 200
    json.dumps(payload)  # plain JSON: any notifier can template or forward it
