"""HTML for the Leadpipe credits page: account cards and a server-rendered SVG credit chart.

Pure functions over plain data (no I/O), so every shape can be unit-tested; credit reports are
read with the reporting module's own parser (:class:`~airflow_provider_leadpipe.models.credit_report.
Observation`). Every
text that came from outside (connection ids, organization names, error messages) goes through
:func:`html.escape`; nothing here ever sees an API key.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pendulum

from airflow_provider_leadpipe.models.credit_report import Observation
from airflow_provider_leadpipe.utils.text import number_text, parse_datetime

#: The example DAG that produces credit reports; its page in Airflow shows its docs (doc_md).
EXAMPLE_DAG_ID = "leadpipe_daily_credit_report"

SECONDS_PER_DAY = 86_400.0
# Chart geometry (SVG user units).
WIDTH, HEIGHT = 520, 170
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 30


@dataclass(frozen=True)
class ReportPoint:
    """One credit report of one connection, as the chart needs it."""

    observed_at: pendulum.DateTime
    remaining: float | None
    limit: float | None
    resets_at: pendulum.DateTime | None = None
    projected_exhaustion_at: pendulum.DateTime | None = None
    organization: str | None = None

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> ReportPoint:
        """From the XCom dict of ``LeadpipeCreditReportOperator`` (``ValueError`` when unusable)."""
        try:
            observation = Observation.from_report(report)
            projected_exhaustion_at = _when(report.get("projected_exhaustion_at"))
        except ValueError as exc:
            raise ValueError(f"not a credit report: {exc}") from None
        credits = observation.status.credits
        return cls(
            observed_at=observation.observed_at.in_timezone("UTC"),
            remaining=_number(credits.remaining),
            limit=_number(credits.limit),
            resets_at=_when(credits.resets_at),
            projected_exhaustion_at=projected_exhaustion_at,
            organization=observation.status.organization.name,
        )


@dataclass(frozen=True)
class Card:
    """What one card shows: a connection's live account (or its error) and its report history."""

    conn_id: str
    account: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    reports: Sequence[ReportPoint] = field(default_factory=tuple)
    #: For the task-instance view: the one report the card is about.
    caption: str | None = None
    #: Where the "how to get reports" link points (the example DAG's page in this Airflow).
    docs_href: str = f"/dags/{EXAMPLE_DAG_ID}"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    return float(value)


def _when(value: Any) -> pendulum.DateTime | None:
    """A date-time (or its ISO 8601 text) in UTC; None for None or ""."""
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, pendulum.DateTime) else parse_datetime(str(value))
    return parsed.in_timezone("UTC")


def _fmt(value: float | None) -> str:
    return number_text(value, none="?", grouped=True)


def _date(value: pendulum.DateTime | None) -> str:
    return "—" if value is None else value.in_timezone("UTC").format("YYYY-MM-DD HH:mm [UTC]")


# -- chart ---------------------------------------------------------------------------------------


def credit_chart(
    points: Sequence[ReportPoint], *, docs_href: str = f"/dags/{EXAMPLE_DAG_ID}", history: bool = True
) -> str:
    """An inline SVG of remaining credits over time, with projected exhaustion and reset marked.

    Returns an explanatory paragraph instead when there is nothing to draw (no reports, an
    uncapped plan). ``history=False`` (one task's own report) drops the "needs two" note.
    """
    capped = sorted((p for p in points if p.remaining is not None), key=lambda p: p.observed_at)
    if not points:
        return (
            '<p class="hint">No credit reports for this connection yet. Schedule '
            "<code>LeadpipeCreditReportOperator</code> (the example DAG "
            f"<code>{EXAMPLE_DAG_ID}</code> runs it daily) and the chart of remaining credits "
            f'appears here. <a href="{html.escape(docs_href)}" target="_top">How</a>.</p>'
        )
    if not capped:
        return '<p class="hint">Uncapped plan: credits never run out, so there is nothing to chart.</p>'

    latest = capped[-1]
    # A connection whose key now belongs to another organization: its older reports describe a
    # different account (the credit report itself does not compare them either).
    stated: list[str] = []
    if any(p.organization != latest.organization for p in capped):
        capped = [p for p in capped if p.organization == latest.organization]
        stated.append("Earlier reports of another organization are not charted.")
    start = capped[0].observed_at
    end = latest.observed_at
    # Marks (the next reset, the projected exhaustion) are drawn when they fall within three times
    # the reported history after the last report; farther ones would squash the history into a
    # sliver, so they are stated under the chart instead.
    window = (end - start).total_seconds() or SECONDS_PER_DAY
    reach = end.add(seconds=3 * window)
    marks: list[tuple[str, pendulum.DateTime]] = []
    exhaustion = latest.projected_exhaustion_at
    for name, when in (("reset", latest.resets_at), ("exhaustion", exhaustion)):
        if when is None or when <= end:
            continue
        if when <= reach:
            marks.append((name, when))
        elif name == "exhaustion":
            stated.append(f"At the current burn rate credits run out {html.escape(_date(when))}.")
        else:
            stated.append(f"Next reset {html.escape(_date(when))}.")
    x_end = max([end, *(when for _, when in marks)])
    x0, x1 = start.timestamp(), max(x_end.timestamp(), start.timestamp() + 60.0)
    top = max([p.limit or 0.0 for p in capped] + [p.remaining or 0.0 for p in capped] + [1.0])

    def x(when: pendulum.DateTime) -> float:
        return LEFT + (when.timestamp() - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT)

    def y(value: float) -> float:
        return TOP + (1 - value / top) * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<p class="chart-title">Remaining credits, {len(capped)} report(s)</p>',
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Remaining credits over time, {len(capped)} report(s)">',
        f'<line class="axis" x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{y(0):.1f}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{_fmt(top)}</text>',
        f'<text class="tick" x="{LEFT - 6}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>',
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 8}">{_tick(start, x1 - x0)}</text>',
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{_tick(pendulum.from_timestamp(x1), x1 - x0)}</text>",
    ]
    coords = " ".join(f"{x(p.observed_at):.1f},{y(p.remaining or 0.0):.1f}" for p in capped)
    if len(capped) > 1:
        parts.append(f'<polyline class="line" points="{coords}"/>')
    if exhaustion is not None and any(name == "exhaustion" for name, _ in marks):
        parts.append(
            f'<line class="projection" x1="{x(end):.1f}" y1="{y(latest.remaining or 0.0):.1f}" '
            f'x2="{x(exhaustion):.1f}" y2="{y(0):.1f}"/>'
        )
    for p in capped:
        parts.append(
            f'<circle class="point" cx="{x(p.observed_at):.1f}" cy="{y(p.remaining or 0.0):.1f}" r="3.5">'
            f"<title>{html.escape(_date(p.observed_at))}: {_fmt(p.remaining)} left</title></circle>"
        )
    label_row = {"reset": 10, "exhaustion": 24}  # two rows, so close marks never overlap
    for name, when in marks:
        label = "reset" if name == "reset" else "runs out"
        parts.append(
            f'<line class="mark {name}" data-mark="{name}" x1="{x(when):.1f}" y1="{TOP}" '
            f'x2="{x(when):.1f}" y2="{y(0):.1f}"><title>{label}: {html.escape(_date(when))}</title></line>'
            f'<text class="mark-label {name}" x="{x(when) - 4:.1f}" y="{TOP + label_row[name]}" '
            f'text-anchor="end">{label}</text>'
        )
    parts.append("</svg>")
    legend = stated
    if len(capped) == 1 and history:
        legend.append("One report: the line needs two.")
    note = f'<p class="hint">{" ".join(legend)}</p>' if legend else ""
    return "".join(parts) + note


def report_caption(report: dict[str, Any]) -> str:
    """One line about a credit report's outlook: burn rate and when credits run out."""
    rate = report.get("daily_burn_rate")
    parts = [
        "burn rate unknown (first report)" if rate is None else f"burning {_fmt(float(rate))} credits/day"
    ]
    if report.get("unlimited"):
        parts.append("uncapped plan")
    elif report.get("projected_exhaustion_at"):
        when = _date(_when(report["projected_exhaustion_at"]))
        before = report.get("runs_out_before_reset")
        parts.append(f"runs out {when}" + (" — before the reset" if before else ""))
    return "; ".join(parts)


def _tick(when: pendulum.DateTime, window_seconds: float) -> str:
    if window_seconds > 2 * SECONDS_PER_DAY:
        text = when.format("MMM D")
    elif window_seconds > 600:
        text = when.format("MMM D HH:mm")
    else:
        text = when.format("HH:mm:ss")
    return html.escape(text)


# -- cards ---------------------------------------------------------------------------------------


def card(item: Card) -> str:
    """One account card: header, credits (bar or 'uncapped'), pixels, audience slots, chart."""
    head = f"<h2><code>{html.escape(item.conn_id)}</code></h2>"
    caption = f'<p class="caption">{html.escape(item.caption)}</p>' if item.caption else ""
    if item.account is None:
        kind = html.escape(item.error_type or "Error")
        message = html.escape(item.error or "no answer")
        return (
            f'<section class="card down" data-conn-id="{html.escape(item.conn_id)}">{head}{caption}'
            f'<p class="badge bad">unreachable</p><p class="error"><strong>{kind}</strong>: {message}</p>'
            f"{_chart(item)}</section>"
        )
    account = item.account
    organization = account.get("organization") or {}
    credits = account.get("credits") or {}
    healthy = bool(account.get("healthy"))
    badge = (
        '<span class="badge ok">healthy</span>' if healthy else '<span class="badge bad">not healthy</span>'
    )
    org = (
        f'<p class="org">{html.escape(str(organization.get("name", "?")))} '
        f'<span class="status">{html.escape(str(organization.get("status", "?")))}</span> {badge}</p>'
    )
    return (
        f'<section class="card" data-conn-id="{html.escape(item.conn_id)}">{head}{caption}{org}'
        f"{_credits(credits)}{_facts(account)}{_chart(item)}</section>"
    )


def _chart(item: Card) -> str:
    return credit_chart(item.reports, docs_href=item.docs_href, history=item.caption is None)


def _credits(credits: dict[str, Any]) -> str:
    used = _number(credits.get("used"))
    limit = _number(credits.get("limit"))
    remaining = _number(credits.get("remaining"))
    resets = _when(credits.get("resetsAt"))
    reset_line = f'<p class="reset">Credits reset {html.escape(_date(resets))}</p>' if resets else ""
    if limit is None:
        return f'<p class="credits">Uncapped plan: {_fmt(used)} credits used, no limit.</p>{reset_line}'
    percent = _number(credits.get("percentUsed"))
    if percent is None:
        percent = 100.0 * (used or 0.0) / limit if limit else 100.0
    left = max(0.0, min(100.0, 100.0 - percent))
    level = "low" if left < 10 else "mid" if left < 30 else "high"
    return (
        f'<p class="credits"><strong>{_fmt(remaining)}</strong> of {_fmt(limit)} credits left '
        f'<span class="muted">({percent:.0f} % used)</span></p>'
        f'<div class="bar" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{left:.0f}">'
        f'<div class="fill {level}" style="width:{left:.1f}%"></div></div>{reset_line}'
    )


def _facts(account: dict[str, Any]) -> str:
    pixels = account.get("pixels") or {}
    intent = account.get("intent")
    rows = [
        f"Pixels: {_fmt(_number(pixels.get('active')))} active, {_fmt(_number(pixels.get('paused')))} paused"
    ]
    if intent:
        rows.append(
            f"Audience slots: {_fmt(_number(intent.get('audienceSlotsUsed')))} of "
            f"{_fmt(_number(intent.get('audienceSlots')))} used"
        )
    else:
        rows.append("Audience slots: no Orbit plan")
    return '<ul class="facts">' + "".join(f"<li>{html.escape(row)}</li>" for row in rows) + "</ul>"


# -- page ----------------------------------------------------------------------------------------

STYLE = """
:root{color-scheme:light dark;--bg:#f7f8fa;--card:#fff;--text:#1f2328;--muted:#6a737d;--line:#d0d7de;
--ok:#1a7f37;--bad:#cf222e;--accent:#0969da;--mid:#bf8700}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--text:#e6edf3;--muted:#8b949e;
--line:#30363d;--accent:#4493f8}}
*{box-sizing:border-box}body{margin:0;padding:24px;background:var(--bg);color:var(--text);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;align-items:baseline;gap:16px;flex-wrap:wrap;margin-bottom:16px}
h1{font-size:22px;margin:0}.muted,.hint,.caption,.tick{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px}
.card.down{border-color:var(--bad)}h2{font-size:15px;margin:0 0 6px}code{font-size:13px}
.org{margin:0 0 8px;font-size:15px}.status{color:var(--muted);font-size:13px}
.badge{display:inline-block;font-size:12px;border-radius:999px;padding:1px 8px;margin:0;
border:1px solid currentColor}.badge.ok{color:var(--ok)}.badge.bad{color:var(--bad)}
.credits{margin:6px 0 4px;font-size:15px}
.bar{height:10px;background:var(--line);border-radius:5px;overflow:hidden}
.fill{height:100%}.fill.high{background:var(--ok)}.fill.mid{background:var(--mid)}.fill.low{background:var(--bad)}
.reset{margin:6px 0}.facts{margin:8px 0;padding-left:18px}.error{color:var(--bad);overflow-wrap:anywhere}
.chart{width:100%;height:auto}.chart-title{margin:12px 0 0;font-size:12px;color:var(--muted)}
.axis{stroke:var(--line)}.tick{font-size:11px;fill:var(--muted)}
.line{fill:none;stroke:var(--accent);stroke-width:2}.point{fill:var(--accent)}
.projection{stroke:var(--bad);stroke-width:1.5;stroke-dasharray:5 4}
.mark{stroke-width:1.5;stroke-dasharray:2 3}.mark.reset{stroke:var(--ok)}.mark.exhaustion{stroke:var(--bad)}
.mark-label{font-size:11px}.mark-label.reset{fill:var(--ok)}.mark-label.exhaustion{fill:var(--bad)}
footer{margin-top:18px;color:var(--muted);font-size:12px}a{color:var(--accent)}
"""


NO_CONNECTIONS = (
    '<p class="hint">No <code>leadpipe</code> connections yet. Add one under Admin &gt; '
    "Connections (type <strong>Leadpipe</strong>).</p>"
)
NO_REPORT = (
    '<p class="hint">This task instance pushed no Leadpipe credit report (only '
    "<code>LeadpipeCreditReportOperator</code> tasks do, once they succeed).</p>"
)


def no_such_connection(conn_id: str, all_href: str) -> str:
    """What a page filtered to ``conn_id`` says when it has no card: the same whether the
    connection does not exist, is not a listed ``leadpipe`` one, or the user may not read it."""
    return (
        f'<p class="hint">No <code>leadpipe</code> connection <code>{html.escape(conn_id)}</code> that '
        "you may read is listed here (connections that live only in a secrets backend cannot be). "
        f'<a href="{html.escape(all_href)}">All connections</a>.</p>'
    )


def live_footer(fetched_at: pendulum.DateTime, cache_seconds: float) -> str:
    return (
        f"Live account status fetched {html.escape(_date(fetched_at))}; answers are cached for "
        f"{cache_seconds:g} s. Charts come from the XCom of <code>LeadpipeCreditReportOperator</code> "
        "tasks. Read-only."
    )


def page(
    cards: Sequence[Card],
    *,
    title: str,
    footer: str,
    empty: str = NO_CONNECTIONS,
    subtitle: str | None = None,
) -> str:
    """The whole HTML document (no scripts, no external resources); ``footer`` is trusted HTML."""
    body = "".join(card(item) for item in cards) or empty
    subtitle = f"{len(cards)} connection(s)" if subtitle is None else subtitle
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>{html.escape(title)}</h1><span class="muted">{html.escape(subtitle)}</span></header>'
        f'<main class="grid">{body}</main><footer>{footer}</footer></body></html>'
    )
