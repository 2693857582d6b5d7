"""GET /v1/data: pagination, filters, determinism, validation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox, SandboxError

ClientFactory = Callable[..., httpx.Client]
DOMAINS = ("acme.io", "shop.acme.io", "docs.acme.io")


def visited_at(record: dict) -> datetime:
    return datetime.fromisoformat(record["visit"]["visitedAt"].replace("Z", "+00:00"))


def test_first_page_has_50_records_and_meta(client: httpx.Client) -> None:
    body = client.get("/v1/data").json()
    assert body["meta"] == {"total": 1000, "page": 1, "perPage": 50}
    assert len(body["data"]) == 50
    record = body["data"][0]
    assert {"id", "email", "firstName", "lastName", "company", "visit"} <= record.keys()
    assert {"domain", "pageUrl", "visitedAt"} <= record["visit"].keys()
    assert record["visit"]["pageUrl"].startswith(f"https://{record['visit']['domain']}/")


def test_pages_cover_every_record_once_newest_first(client_for: ClientFactory, leadpipe_sandbox) -> None:
    leadpipe_sandbox.configure_key("sk_test_small", {"visitors": 120})
    client = client_for("sk_test_small")
    pages = [client.get("/v1/data", params={"page": page}).json() for page in (1, 2, 3, 4)]
    assert [len(p["data"]) for p in pages] == [50, 50, 20, 0]  # past the end: data []
    assert {p["meta"]["total"] for p in pages} == {120}
    records = [r for p in pages for r in p["data"]]
    assert len({r["id"] for r in records}) == 120
    times = [visited_at(r) for r in records]
    assert times == sorted(times, reverse=True)


def test_same_seed_same_data_other_seed_other_data(client_for: ClientFactory, leadpipe_sandbox) -> None:
    leadpipe_sandbox.configure_key("sk_test_seed7", {"visitorSeed": 7})
    ours = client_for().get("/v1/data", params={"page": 2}).json()["data"]
    again = client_for().get("/v1/data", params={"page": 2}).json()["data"]
    other = client_for("sk_test_seed7").get("/v1/data", params={"page": 2}).json()["data"]
    assert ours == again
    assert [r["email"] for r in ours] != [r["email"] for r in other]


def test_large_data_set_is_served_without_materialising(client_for: ClientFactory, leadpipe_sandbox) -> None:
    leadpipe_sandbox.configure_key("sk_test_big", {"visitors": 100_000})
    body = client_for("sk_test_big").get("/v1/data", params={"page": 2000}).json()
    assert body["meta"]["total"] == 100_000
    assert len(body["data"]) == 50
    assert client_for("sk_test_big").get("/v1/data", params={"page": 2001}).json()["data"] == []


@pytest.mark.parametrize("domain", DOMAINS)
def test_domain_filter_returns_only_that_site(client: httpx.Client, domain: str) -> None:
    first = client.get("/v1/data", params={"domain": domain}).json()
    last_page = -(-first["meta"]["total"] // 50)
    last = client.get("/v1/data", params={"domain": domain, "page": last_page}).json()
    assert first["meta"]["total"] in (333, 334)
    assert {r["visit"]["domain"] for r in first["data"] + last["data"]} == {domain}
    assert len(last["data"]) == first["meta"]["total"] - 50 * (last_page - 1)


def test_domain_filter_is_case_insensitive_and_unknown_domain_is_empty(client: httpx.Client) -> None:
    assert client.get("/v1/data", params={"domain": "SHOP.Acme.io"}).json()["meta"]["total"] > 0
    assert client.get("/v1/data", params={"domain": "elsewhere.example"}).json() == {
        "data": [],
        "meta": {"total": 0, "page": 1, "perPage": 50},
    }


@pytest.mark.parametrize(
    ("timeframe", "days"), [("24h", 1), ("7d", 7), ("14d", 14), ("30d", 30), ("90d", 90)]
)
def test_timeframe_keeps_only_recent_visits(client: httpx.Client, timeframe: str, days: int) -> None:
    total = client.get("/v1/data", params={"timeframe": timeframe}).json()["meta"]["total"]
    assert abs(total - 1000 * days / 180) <= 2  # 1000 visits spread evenly over 180 days
    cutoff = datetime.now(timezone.utc) - timedelta(days=days)
    last_page = client.get("/v1/data", params={"timeframe": timeframe, "page": -(-total // 50)}).json()
    assert visited_at(last_page["data"][-1]) >= cutoff - timedelta(seconds=5)  # the oldest one kept
    unfiltered = client.get("/v1/data", params={"timeframe": "all", "page": total // 50 + 1}).json()
    assert visited_at(unfiltered["data"][total % 50]) < cutoff  # the newest one left out


def test_email_filter_returns_one_persons_journey(client: httpx.Client) -> None:
    someone = client.get("/v1/data", params={"page": 3}).json()["data"][7]
    journey = client.get("/v1/data", params={"email": someone["email"].upper()}).json()
    assert journey["meta"]["total"] >= 2
    assert {r["email"] for r in journey["data"]} == {someone["email"]}
    assert {r["lastName"] for r in journey["data"]} == {someone["lastName"]}
    assert someone["id"] in {r["id"] for r in journey["data"]}


def test_filters_combine(client: httpx.Client) -> None:
    someone = client.get("/v1/data").json()["data"][0]
    domain = someone["visit"]["domain"]
    both = client.get("/v1/data", params={"email": someone["email"], "domain": domain}).json()
    assert both["meta"]["total"] >= 1
    assert all(r["visit"]["domain"] == domain and r["email"] == someone["email"] for r in both["data"])
    recent = client.get("/v1/data", params={"domain": domain, "timeframe": "7d"}).json()
    assert 0 < recent["meta"]["total"] < 20
    assert all(r["visit"]["domain"] == domain for r in recent["data"])


def test_unknown_email_and_empty_org_return_no_data(client_for: ClientFactory) -> None:
    assert (
        client_for().get("/v1/data", params={"email": "nobody@nowhere.example"}).json()["meta"]["total"] == 0
    )
    assert client_for("sk_test_empty").get("/v1/data").json() == {
        "data": [],
        "meta": {"total": 0, "page": 1, "perPage": 50},
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timeframe": "1y"}, "timeframe must be one of 24h, 7d, 14d, 30d, 90d, all"),
        ({"page": "0"}, "page must be an integer >= 1"),
        ({"page": "two"}, "page must be an integer >= 1"),
        ({"page": "-1"}, "page must be an integer >= 1"),
    ],
)
def test_bad_query_is_400_with_the_error_envelope(client: httpx.Client, params: dict, message: str) -> None:
    response = client.get("/v1/data", params=params)
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "HTTP_ERROR", "message": message}}


def test_limit_and_sort_are_ignored(client: httpx.Client) -> None:
    plain = client.get("/v1/data").json()
    assert client.get("/v1/data", params={"limit": 5, "sort": "asc"}).json() == plain


def test_sandbox_fixture_options_control_size(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    assert leadpipe_sandbox.visitors == 1000
    assert client.get("/v1/data").json()["meta"]["total"] == leadpipe_sandbox.visitors


def test_visitors_as_of_freezes_the_windows_end(
    client: httpx.Client, leadpipe_sandbox: LeadpipeSandbox
) -> None:
    newest = visited_at(client.get("/v1/data").json()["data"][0])
    # Frozen at the newest visit plus 7 days exactly: the 7-day window holds that visit alone...
    leadpipe_sandbox.update_key({"visitorsAsOf": (newest + timedelta(days=7)).isoformat()})
    week = client.get("/v1/data", params={"timeframe": "7d"}).json()
    assert [visited_at(r) for r in week["data"]] == [newest]
    # ...a second later, none; and "all" has no end to freeze.
    leadpipe_sandbox.update_key({"visitorsAsOf": (newest + timedelta(days=7, seconds=1)).isoformat()})
    assert client.get("/v1/data", params={"timeframe": "7d"}).json()["meta"]["total"] == 0
    assert client.get("/v1/data").json()["meta"]["total"] == 1000
    # null: the windows end now again.
    leadpipe_sandbox.update_key({"visitorsAsOf": None})
    assert client.get("/v1/data", params={"timeframe": "7d"}).json()["meta"]["total"] > 1


def test_visitors_as_of_needs_an_offset(leadpipe_sandbox: LeadpipeSandbox) -> None:
    with pytest.raises(SandboxError, match="visitorsAsOf"):
        leadpipe_sandbox.update_key({"visitorsAsOf": "2026-03-01T00:00:00"})
