"""The visitor generator without HTTP: the arithmetic filters agree with brute-force filtering."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from leadpipe_sandbox.visitors import PAGE_SIZE, TIMEFRAMES, VisitorSet

ANCHOR = datetime(2026, 8, 1, 12, tzinfo=timezone.utc)


def _all_pages(
    visitors: VisitorSet, now: datetime, timeframe: str, domain: str | None, email: str | None
) -> tuple[list[dict], int]:
    """Every page of a query, concatenated, and ``meta.total``."""
    records: list[dict] = []
    page, total = 1, 1
    while len(records) < total:
        more, total = visitors.query(page=page, timeframe=timeframe, domain=domain, email=email, now=now)
        assert more or total == 0, "a page before the end came back empty"
        records += more
        page += 1
    return records, total


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(0, 260),
    timeframe=st.sampled_from(list(TIMEFRAMES)),
    domain=st.sampled_from([None, "acme.io", "shop.acme.io", "docs.acme.io"]),
    pick=st.integers(0, 10**6),
    by_email=st.booleans(),
)
def test_query_equals_brute_force_filtering(
    seed: int, count: int, timeframe: str, domain: str | None, pick: int, by_email: bool
) -> None:
    visitors = VisitorSet(seed, count, ANCHOR)
    everything = [visitors.record(i) for i in range(count)]
    email = everything[pick % count]["email"] if by_email and count else None
    window = TIMEFRAMES[timeframe]
    now = ANCHOR + timedelta(hours=1)

    def wanted(record: dict) -> bool:
        when = datetime.fromisoformat(record["visit"]["visitedAt"].replace("Z", "+00:00"))
        return (
            (domain is None or record["visit"]["domain"] == domain)
            and (email is None or record["email"] == email)
            and (window is None or when >= now - window - timedelta(milliseconds=1))
        )

    records, total = _all_pages(visitors, now, timeframe, domain, email)
    expected = [r for r in everything if wanted(r)]
    assert total == len(expected)
    assert [r["id"] for r in records] == [r["id"] for r in expected]


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(1, 5_000_000), pick=st.integers(0, 10**9))
def test_every_generated_email_decodes_to_its_person(seed: int, count: int, pick: int) -> None:
    visitors = VisitorSet(seed, count, ANCHOR)
    index = pick % count
    assert visitors.person_of_email(visitors.record(index)["email"]) == index % visitors.people


def test_people_are_distinct_and_have_about_three_visits() -> None:
    visitors = VisitorSet(42, 3000, ANCHOR)
    emails = {visitors.person(p)["email"] for p in range(visitors.people)}
    assert len(emails) == visitors.people == 1000


def test_pages_are_fifty_records() -> None:
    records, total = VisitorSet(1, 120, ANCHOR).query(page=3, now=ANCHOR)
    assert (len(records), total, PAGE_SIZE) == (20, 120, 50)


def test_unrelated_addresses_are_not_matched() -> None:
    visitors = VisitorSet(42, 1000, ANCHOR)
    for address in ["olivia.smith@gmail.com", "not-an-email", "olivia.smith01@northwindanalytics.com", ""]:
        assert visitors.person_of_email(address) is None
