"""The credits page's HTML: cards for each account shape, the SVG chart, escaping."""

from __future__ import annotations

import re

import pendulum
import pytest

from airflow_provider_leadpipe.plugins.render import Card, ReportPoint, card, credit_chart, live_footer, page

T0 = pendulum.datetime(2026, 11, 1, tz="UTC")


def account(
    *,
    remaining=400,
    limit=500,
    used=100,
    healthy=True,
    name="Acme",
    intent=True,
    resets="2026-12-01T00:00:00Z",
):
    return {
        "healthy": healthy,
        "organization": {"name": name, "status": "active"},
        "credits": {
            "used": used,
            "limit": limit,
            "remaining": remaining,
            "percentUsed": None if limit is None else 100 * used / limit,
            "resetsAt": resets,
        },
        "pixels": {"total": 3, "active": 2, "paused": 1},
        "intent": {
            "audienceSlots": 5,
            "audienceSlotsUsed": 2,
            "audienceSlotsAvailable": 3,
            "status": "active",
        }
        if intent
        else None,
    }


def report(day: int, remaining, *, limit=500, exhaustion=None, resets="2026-12-01T00:00:00Z"):
    return {
        "observed_at": T0.add(days=day).to_iso8601_string(),
        "account": account(remaining=remaining, limit=limit, resets=resets),
        "projected_exhaustion_at": exhaustion,
        "leadpipe_conn_id": "leadpipe_default",
    }


def points(svg: str) -> list[tuple[float, float]]:
    return [
        (float(x), float(y)) for x, y in re.findall(r'<circle class="point" cx="([\d.]+)" cy="([\d.]+)"', svg)
    ]


def test_chart_draws_one_point_per_report_in_time_order_with_falling_line():
    reports = [ReportPoint.from_report(report(d, r)) for d, r in [(2, 300), (0, 500), (1, 420)]]
    svg = credit_chart(reports)
    drawn = points(svg)
    assert len(drawn) == 3
    xs = [x for x, _ in drawn]
    ys = [y for _, y in drawn]
    assert xs == sorted(xs)  # oldest first, left to right
    assert ys == sorted(ys)  # fewer credits left = lower on the chart = larger y
    assert '<polyline class="line"' in svg


def test_chart_marks_exhaustion_before_reset_and_the_reset():
    reports = [
        ReportPoint.from_report(report(0, 500)),
        ReportPoint.from_report(report(10, 200, exhaustion="2026-11-19T00:00:00Z")),
    ]
    svg = credit_chart(reports)
    marks = dict(re.findall(r'data-mark="(\w+)" x1="([\d.]+)"', svg))
    assert set(marks) == {"reset", "exhaustion"}
    assert float(marks["exhaustion"]) < float(marks["reset"])  # runs out before the reset
    assert 'class="projection"' in svg


def test_marks_beyond_three_times_the_history_are_stated_not_drawn():
    reports = [
        ReportPoint.from_report(report(0, 500)),
        ReportPoint.from_report(report(1, 499, exhaustion="2031-01-01T00:00:00Z")),
    ]
    html = credit_chart(reports)
    assert 'data-mark="exhaustion"' not in html and 'data-mark="reset"' not in html
    assert "run out 2031-01-01 00:00 UTC" in html
    assert "Next reset 2026-12-01 00:00 UTC" in html


def test_one_report_is_a_point_and_a_note():
    html = credit_chart([ReportPoint.from_report(report(0, 500))])
    assert len(points(html)) == 1
    assert "polyline" not in html
    assert "One report" in html


def test_no_reports_explains_how_to_get_them():
    html = credit_chart([], docs_href="/base/dags/leadpipe_daily_credit_report")
    assert "<svg" not in html
    assert "LeadpipeCreditReportOperator" in html
    assert 'href="/base/dags/leadpipe_daily_credit_report"' in html


def test_uncapped_reports_draw_no_chart():
    html = credit_chart([ReportPoint.from_report(report(0, None, limit=None))])
    assert "<svg" not in html and "Uncapped" in html


def test_capped_card_shows_balance_bar_reset_pixels_and_slots():
    html = card(Card(conn_id="leadpipe_default", account=account()))
    assert "<strong>400</strong> of 500 credits left" in html
    assert "(20 % used)" in html
    assert 'aria-valuenow="80"' in html and "width:80.0%" in html
    assert "Credits reset 2026-12-01 00:00 UTC" in html
    assert "Pixels: 2 active, 1 paused" in html
    assert "Audience slots: 2 of 5 used" in html
    assert "healthy" in html and "not healthy" not in html


def test_uncapped_card_says_so_instead_of_a_bar():
    html = card(Card(conn_id="c", account=account(limit=None, remaining=None, used=1234)))
    assert "Uncapped plan: 1,234 credits used, no limit." in html
    assert 'class="bar"' not in html


def test_unhealthy_low_and_no_orbit_card():
    html = card(Card(conn_id="c", account=account(remaining=5, used=495, healthy=False, intent=False)))
    assert "not healthy" in html
    assert 'class="fill low"' in html
    assert "Audience slots: no Orbit plan" in html


def test_down_card_shows_typed_error():
    html = card(
        Card(
            conn_id="down",
            error="Leadpipe API unreachable: connection refused",
            error_type="LeadpipeConnectionError",
        )
    )
    assert 'class="card down"' in html
    assert "<strong>LeadpipeConnectionError</strong>: Leadpipe API unreachable: connection refused" in html


@pytest.mark.parametrize("evil", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "a&b"])
def test_everything_from_outside_is_escaped(evil):
    cards = [
        Card(conn_id=evil, account=account(name=evil)),
        Card(conn_id=evil, error=evil, error_type=evil),
    ]
    html = page(cards, title="Leadpipe credits", footer=live_footer(T0, 15))
    assert evil not in html
    assert "<script" not in html and "<img" not in html


def test_page_lists_cards_and_says_it_caches():
    html = page(
        [Card(conn_id="a", account=account()), Card(conn_id="b", error="x", error_type="E")],
        title="Leadpipe credits",
        footer=live_footer(T0, 15),
    )
    assert html.count('<section class="card') == 2
    assert "cached for 15 s" in html
    assert "<script" not in html and "http" not in html  # no scripts, nothing fetched from elsewhere


def test_report_without_account_is_rejected():
    with pytest.raises(ValueError, match="not a credit report"):
        ReportPoint.from_report({"observed_at": T0.to_iso8601_string()})


def test_report_caption_states_the_outlook():
    from airflow_provider_leadpipe.plugins.render import report_caption

    caption = report_caption(
        {
            "daily_burn_rate": 12.5,
            "projected_exhaustion_at": "2026-11-20T00:00:00Z",
            "runs_out_before_reset": True,
        }
    )
    assert caption == "burning 12.5 credits/day; runs out 2026-11-20 00:00 UTC — before the reset"
    assert report_caption({"daily_burn_rate": None, "unlimited": True}) == (
        "burn rate unknown (first report); uncapped plan"
    )


def test_a_task_view_card_has_no_history_note():
    item = Card(
        conn_id="c", account=account(), reports=[ReportPoint.from_report(report(0, 500))], caption="x"
    )
    assert "One report" not in card(item)


def test_reports_of_another_organization_are_not_charted():
    old = [ReportPoint.from_report(report(d, 500 - d)) for d in range(3)]
    other = report(3, 42)
    other["account"]["organization"]["name"] = "Globex"
    html = credit_chart([*old, ReportPoint.from_report(other)])
    assert len(points(html)) == 1
    assert "Earlier reports of another organization are not charted." in html
