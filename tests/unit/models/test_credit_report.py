"""Credit report maths (airflow_provider_leadpipe.models.credit_report): pure functions, fixed clocks."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.models import AccountStatus
from airflow_provider_leadpipe.models.credit_report import (
    PROJECTION_YEARS,
    CreditReport,
    Observation,
    build_credit_report,
)
from tests.unit.conftest import account_data

T0 = pendulum.datetime(2026, 11, 1, tz="UTC")
RESET = pendulum.datetime(2026, 12, 1, tz="UTC")


def status(used=20, limit=500, remaining=None, resets_at=RESET, healthy=True) -> AccountStatus:
    if remaining is None and limit is not None:
        remaining = limit - used
    credits = {
        "used": used,
        "limit": limit,
        "remaining": remaining,
        "percentUsed": None if limit is None else round(100 * used / limit, 1),
        "resetsAt": None if resets_at is None else resets_at.to_iso8601_string(),
    }
    return AccountStatus.from_data(account_data(credits=credits, healthy=healthy))


def seen(at, **kwargs) -> Observation:
    return Observation(status=status(**kwargs), observed_at=at)


def report_between(before: Observation, now_at, **kwargs) -> CreditReport:
    return build_credit_report(status(**kwargs), observed_at=now_at, previous=before)


def test_first_run_has_no_usage_rate_or_projection():
    report = build_credit_report(status(used=20), observed_at=T0)
    assert report.previous is None
    assert report.credits_used is None and report.elapsed_seconds is None
    assert report.daily_burn_rate is None
    assert report.projected_exhaustion_at is None
    assert report.runs_out_before_reset is None
    assert "first report" in report.notes[0]
    assert "first report, nothing to compare with" in report.render()


def test_usage_rate_and_projection_after_a_day():
    report = report_between(seen(T0, used=20), T0.add(days=1), used=30)
    assert report.elapsed_seconds == 86_400
    assert report.credits_used == 10
    assert report.reset_detected is False
    assert report.daily_burn_rate == pytest.approx(10.0)
    # 470 left at 10/day -> 47 days -> after the 1 Dec reset
    assert report.projected_exhaustion_at == T0.add(days=48)
    assert report.days_until_exhaustion == pytest.approx(47.0)
    assert report.runs_out_before_reset is False


def test_rate_uses_real_elapsed_time_not_whole_days():
    report = report_between(seen(T0, used=0), T0.add(hours=6), used=25)
    assert report.daily_burn_rate == pytest.approx(100.0)
    # 475 left at 100/day = 4.75 days after the observation
    assert report.projected_exhaustion_at == T0.add(hours=6).add(seconds=4.75 * 86_400)
    assert report.runs_out_before_reset is True


def test_runs_out_before_reset_when_burning_fast():
    report = report_between(seen(T0, used=100), T0.add(days=1), used=200)
    assert report.daily_burn_rate == pytest.approx(100.0)
    assert report.projected_exhaustion_at == T0.add(days=4)
    assert report.runs_out_before_reset is True
    assert "BEFORE the next reset" in report.render()


def test_no_usage_means_no_exhaustion():
    report = report_between(seen(T0, used=20), T0.add(days=1), used=20)
    assert report.credits_used == 0
    assert report.daily_burn_rate == 0
    assert report.projected_exhaustion_at is None
    assert report.runs_out_before_reset is False
    assert "not at the current burn rate" in report.render()


def test_reset_detected_when_used_drops():
    # 450 used at T0; the cycle rolled over at an unknown time; 5 used since.
    before = seen(T0, used=450, resets_at=None)
    report = report_between(before, T0.add(days=2), used=5, resets_at=None)
    assert report.reset_detected is True
    assert report.credits_used == 5  # never negative
    assert report.daily_burn_rate == pytest.approx(2.5)  # measured from the previous report
    assert any("lower bound" in note for note in report.notes)
    assert "since the reset" in report.render()


def test_reset_at_known_time_measures_from_the_reset():
    # previous report said "resets at T0+1d"; now T0+2d with 50 used since the reset
    before = seen(T0, used=400, resets_at=T0.add(days=1))
    report = report_between(before, T0.add(days=2), used=50, resets_at=T0.add(days=31))
    assert report.reset_detected is True
    assert report.credits_used == 50
    assert report.daily_burn_rate == pytest.approx(50.0)  # 50 credits over the 1 day since the reset
    assert not any("lower bound" in note for note in report.notes)
    # 450 left at 50/day = 9 days -> before the next reset 29 days later
    assert report.projected_exhaustion_at == T0.add(days=11)
    assert report.runs_out_before_reset is True


def test_reset_detected_by_date_even_when_used_grew():
    before = seen(T0, used=10, resets_at=T0.add(hours=12))
    report = report_between(before, T0.add(days=1), used=40, resets_at=T0.add(days=30))
    assert report.reset_detected is True
    assert report.credits_used == 40  # all since the reset, not 40 - 10
    assert report.daily_burn_rate == pytest.approx(80.0)  # 40 over 12 h


def test_a_reset_date_already_past_at_the_previous_report_is_not_a_new_reset():
    before = seen(T0, used=10, resets_at=T0.subtract(days=1))
    report = report_between(before, T0.add(days=1), used=15, resets_at=T0.subtract(days=1))
    assert report.reset_detected is False
    assert report.credits_used == 5


@pytest.mark.parametrize("elapsed", [0, -3600], ids=["same-instant", "previous-in-the-future"])
def test_zero_or_negative_elapsed_time_gives_no_rate(elapsed):
    report = report_between(seen(T0, used=10), T0.add(seconds=elapsed), used=12)
    assert report.credits_used == 2
    assert report.daily_burn_rate is None
    assert report.projected_exhaustion_at is None
    assert report.runs_out_before_reset is None
    assert any("no time elapsed" in note for note in report.notes)
    assert "Burn rate:   unknown" in report.render()


def test_unlimited_plan_never_runs_out():
    before = seen(T0, used=100, limit=None, remaining=None, resets_at=None)
    report = report_between(before, T0.add(days=1), used=300, limit=None, remaining=None, resets_at=None)
    assert report.unlimited is True
    assert report.credits_used == 200
    assert report.daily_burn_rate == pytest.approx(200.0)
    assert report.projected_exhaustion_at is None
    assert report.runs_out_before_reset is False
    text = report.render()
    assert "no credit cap" in text and "never" in text


def test_unlimited_first_run_is_known_not_to_run_out():
    report = build_credit_report(status(used=3, limit=None, remaining=None), observed_at=T0)
    assert report.runs_out_before_reset is False


def test_exhausted_account_is_out_now():
    report = build_credit_report(status(used=500, remaining=0), observed_at=T0)
    assert report.projected_exhaustion_at == T0
    assert report.days_until_exhaustion == 0
    assert report.runs_out_before_reset is True


def test_no_reset_date_means_running_out_before_any_reset():
    report = report_between(seen(T0, used=0, resets_at=None), T0.add(days=1), used=1, resets_at=None)
    assert report.projected_exhaustion_at == T0.add(days=500)
    assert report.runs_out_before_reset is True


def test_to_dict_is_json_and_feeds_the_next_report():
    first = build_credit_report(status(used=20), observed_at=T0)
    stored = json.loads(json.dumps(first.to_dict()))
    assert stored["observed_at"] == "2026-11-01T00:00:00Z"
    assert stored["account"]["credits"]["remaining"] == 480  # the API's own key names
    assert stored["resets_at"] == "2026-12-01T00:00:00Z"

    previous = Observation.from_report(stored)
    assert previous.observed_at == T0
    second = build_credit_report(status(used=44), observed_at=T0.add(days=2), previous=previous)
    data = json.loads(json.dumps(second.to_dict()))
    assert data["previous_observed_at"] == "2026-11-01T00:00:00Z"
    assert data["credits_used"] == 24
    assert data["daily_burn_rate"] == pytest.approx(12.0)
    assert data["elapsed_seconds"] == 172_800
    assert data["runs_out_before_reset"] is False
    exhaustion = T0.add(days=2).add(seconds=456 / 12 * 86_400)  # 456 left at 12/day
    assert data["projected_exhaustion_at"] == exhaustion.to_iso8601_string()


def test_render_is_a_short_readable_block():
    text = report_between(seen(T0, used=20), T0.add(days=1), used=30).render()
    lines = text.splitlines()
    assert lines[0] == "Leadpipe credit report, observed 2026-11-02T00:00:00Z"
    assert lines[1] == (
        "  Account:     Acme (trial, healthy): 470 of 500 credits left, resets 2026-12-01T00:00:00Z"
    )
    assert lines[2] == (
        "  Since last:  10 used since the previous report (previous report 2026-11-01T00:00:00Z, 24.0 h ago)"
    )
    assert lines[3] == "  Burn rate:   10/day"
    assert lines[4] == "  Exhaustion:  2026-12-19T00:00:00Z (in 47.0 days), after the next reset"
    assert len(lines) == 5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not a dict", "expected a credit report dict"),
        ({"account": account_data()}, "no 'observed_at'"),
        ({"observed_at": "2026-11-01T00:00:00Z"}, "no 'account'"),
        ({"observed_at": "yesterday", "account": account_data()}, "'observed_at' is not an ISO 8601"),
        ({"observed_at": 1_700_000_000, "account": account_data()}, "'observed_at' is not an ISO 8601"),
        (
            {"observed_at": "2026-11-01T00:00:00Z", "account": {"healthy": True}},
            "'account' is not an account status.*data.organization",
        ),
    ],
)
def test_from_report_rejects_values_that_are_not_reports(value, message):
    with pytest.raises(ValueError, match=message):
        Observation.from_report(value)


@given(
    used_before=st.integers(0, 10_000),
    used_now=st.integers(0, 10_000),
    limit=st.one_of(st.none(), st.integers(1, 10_000)),
    elapsed=st.integers(-86_400, 90 * 86_400),
)
def test_invariants_hold_for_any_pair_of_observations(used_before, used_now, limit, elapsed):
    def make(used):
        remaining = None if limit is None else max(limit - used, 0)
        return status(used=used, limit=limit, remaining=remaining)

    previous = Observation(status=make(used_before), observed_at=T0)
    report = build_credit_report(make(used_now), observed_at=T0.add(seconds=elapsed), previous=previous)
    assert report.credits_used is not None and report.credits_used >= 0
    assert report.daily_burn_rate is None or report.daily_burn_rate >= 0
    if elapsed <= 0:
        assert report.daily_burn_rate is None
    if limit is None:
        assert report.runs_out_before_reset is False and report.projected_exhaustion_at is None
    if report.projected_exhaustion_at is not None:
        assert report.projected_exhaustion_at >= report.observed_at
    json.dumps(report.to_dict())
    report.render()


# -- extreme values and another organisation ------------------------------------------------

#: Credit figures JSON can carry: whole numbers up to hundreds of digits, floats to the edge of
#: the format (subnormal to 1.8e308).
HUGE = st.one_of(
    st.integers(0, 10**400),
    st.floats(0, 1.7e308, allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 5e-324, 1e-300, 1.7e308, 10**300, 10**400]),
)


def extreme_status(used, limit, remaining, resets_at, organisation="Acme") -> AccountStatus:
    credits = {"used": used, "limit": limit, "remaining": remaining, "percentUsed": None}
    credits["resetsAt"] = None if resets_at is None else resets_at.to_iso8601_string()
    return AccountStatus.from_data(
        account_data(credits=credits, organization={"name": organisation, "status": "active"})
    )


@settings(max_examples=400, deadline=None)
@given(
    used_before=HUGE,
    used_now=HUGE,
    limit=st.one_of(st.none(), HUGE),
    remaining=st.one_of(st.none(), HUGE, st.integers(-(10**400), 0)),
    # Up to 200 years elapse after `start`: the last start keeps `now` inside the calendar (year
    # 9999), while projections from it still run past the calendar's end.
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(9790, 1, 1)),
    elapsed=st.one_of(st.integers(1, 10), st.integers(1, 200 * 365 * 86_400)),
    reset_in=st.one_of(st.none(), st.integers(-(10**6), 300 * 365 * 86_400)),
)
def test_projection_never_crashes_and_stays_json_for_extreme_values(
    used_before, used_now, limit, remaining, start, elapsed, reset_in
):
    before_at = pendulum.instance(start, tz="UTC")
    now_at = before_at.add(seconds=elapsed)
    try:
        resets_at = None if reset_in is None else now_at.add(seconds=reset_in)
    except (OverflowError, ValueError):
        resets_at = None  # beyond year 9999: not a date the API can send
    before = Observation(extreme_status(used_before, limit, remaining, None), before_at)
    report = build_credit_report(
        extreme_status(used_now, limit, remaining, resets_at), observed_at=now_at, previous=before
    )
    json.dumps(report.to_dict(), allow_nan=False)  # strict JSON: no Infinity or NaN in XCom
    text = report.render()
    rate = report.daily_burn_rate
    assert rate is None or (math.isfinite(rate) and rate >= 0)
    if report.projected_exhaustion_at is not None:
        assert report.observed_at <= report.projected_exhaustion_at
        assert report.days_until_exhaustion <= PROJECTION_YEARS * 366
    if report.exhaustion_not_within_years is not None:
        assert report.projected_exhaustion_at is None
        assert f"not within {PROJECTION_YEARS} years" in text


def test_a_huge_balance_at_a_tiny_burn_rate_is_not_within_the_horizon():
    before = Observation(extreme_status(0, 10**15, 10**15, RESET), T0)
    report = build_credit_report(
        extreme_status(1, 10**15, 10**15 - 1, RESET), observed_at=T0.add(days=20), previous=before
    )
    assert report.daily_burn_rate == pytest.approx(1 / 20)
    assert report.projected_exhaustion_at is None
    assert report.exhaustion_not_within_years == PROJECTION_YEARS
    assert report.runs_out_before_reset is False
    assert f"Exhaustion:  not within {PROJECTION_YEARS} years at the current burn rate" in report.render()
    data = report.to_dict()
    assert (data["projected_exhaustion_at"], data["exhaustion_not_within_years"]) == (None, PROJECTION_YEARS)


def test_a_previous_report_of_another_organisation_is_not_compared():
    before = Observation(extreme_status(400, 500, 100, RESET, organisation="Globex"), T0)
    report = build_credit_report(
        extreme_status(20, 500, 480, RESET, organisation="Acme"), observed_at=T0.add(days=1), previous=before
    )
    assert report.previous is None
    assert report.credits_used is None and report.daily_burn_rate is None and not report.reset_detected
    assert report.runs_out_before_reset is None
    reason = "the previous report is for another organisation ('Globex', now 'Acme')"
    assert reason in report.previous_ignored
    assert report.to_dict()["previous_ignored"] == report.previous_ignored
    assert f"Since last:  not compared: {reason}" in report.render()
