"""Orbit run results and stats in the sandbox: 202 / 200 / 409 bodies, paging, generated people."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from leadpipe_sandbox import LeadpipeSandbox
from leadpipe_sandbox.people import PeopleSet
from orbit_helpers import (
    CONFIG,
    PERSON_FIELDS,
    all_rows,
    completed_run,
    data,
    error,
    results,
    runs_path,
    start_run,
)

ClientFactory = Callable[..., httpx.Client]


@pytest.fixture
def audience_id(leadpipe_sandbox: LeadpipeSandbox) -> str:
    return leadpipe_sandbox.create_audience("People", people=2500, config=CONFIG)["id"]


def test_202_while_queued_or_running_then_200(client: httpx.Client, audience_id: str) -> None:
    run = start_run(client, audience_id)
    for state in ("queued", "running"):
        assert data(results(client, audience_id, run["id"], limit=50, offset=100), 202) == {
            "run": {
                "id": run["id"],
                "status": state,
                "runType": "manual",
                "candidateCount": 0,
                "resultCount": 0,
            },
            "state": state,
            "results": [],
            "total": 0,
            "limit": 50,
            "offset": 100,
        }
    page = data(results(client, audience_id, run["id"], limit=50, offset=100))
    assert (page["state"], page["total"], page["limit"], page["offset"]) == ("completed", 2500, 50, 100)
    assert page["run"]["status"] == "completed" and page["run"]["resultCount"] == 2500
    assert page["run"]["completedAt"].endswith("Z")
    assert len(page["results"]) == 50


def test_every_row_once_with_the_documented_person_fields(client: httpx.Client, audience_id: str) -> None:
    run = completed_run(client, audience_id)
    rows = all_rows(client, audience_id, run["id"], page=700)
    assert len(rows) == 2500
    assert len({row["businessEmail"] or row["personalEmail"] for row in rows}) > 2490
    assert len({row["hashedEmail"] for row in rows}) == len({row["email"] for row in rows})
    for row in rows:
        assert set(row) == PERSON_FIELDS
        assert row["hashedEmail"] == hashlib.sha256(row["email"].encode()).hexdigest()
        assert row["email"] == row["primaryContactEmail"] == (row["businessEmail"] or row["personalEmail"])
        assert row["fullName"] == f"{row['firstName']} {row['lastName']}"
        assert set(row["company"]) == {"name", "domain", "industry", "industryGroup"}
        if row["businessEmail"]:
            assert row["businessEmail"].endswith("@" + row["company"]["domain"])
        intent = row["intent"]
        assert 70 <= intent["score"] <= 99  # the audience's minScore
        assert intent["topicOverlap"] == len(intent["matchedTopics"]) >= 1
        assert {t["topicId"] for t in intent["matchedTopics"]} <= {101, 102, 103}
        assert set(intent["matchedTopics"][0]) == {"topicId", "topicName", "type", "industry", "category"}
    # Realistic gaps: some people lack a business address, a personal one or a phone.
    assert 0 < sum(row["phone"] is None for row in rows) < 2500
    assert 0 < sum(row["personalEmail"] is None for row in rows) < 2500
    assert 0 < sum(row["businessEmail"] is None for row in rows) < 250


def test_pages_are_stable_and_past_the_end_is_empty(client: httpx.Client, audience_id: str) -> None:
    run = completed_run(client, audience_id)
    whole = data(results(client, audience_id, run["id"], limit=10, offset=20))["results"]
    assert data(results(client, audience_id, run["id"], limit=10, offset=20))["results"] == whole
    assert data(results(client, audience_id, run["id"], limit=5, offset=25))["results"] == whole[5:]
    past = data(results(client, audience_id, run["id"], limit=10, offset=2500))
    assert (past["results"], past["total"]) == ([], 2500)
    assert len(data(results(client, audience_id, run["id"]))["results"]) == 100  # default limit
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "ten"}):
        error(results(client, audience_id, run["id"], **bad), 400, "VALIDATION_ERROR")


def test_people_are_deterministic_by_seed_and_differ_between_runs(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client, audience_id: str
) -> None:
    first = completed_run(client, audience_id)
    rows = data(results(client, audience_id, first["id"], limit=20))["results"]
    second = completed_run(client, audience_id)
    assert data(results(client, audience_id, second["id"], limit=20))["results"] != rows

    leadpipe_sandbox.reset()  # same seed, same calls: same ids and the same people
    again = leadpipe_sandbox.create_audience("People", people=2500, config=CONFIG)["id"]
    assert again == audience_id
    replay = completed_run(client, again)
    assert replay["id"] == first["id"]
    assert data(results(client, again, replay["id"], limit=20))["results"] == rows
    other_seed = PeopleSet.of_run(7, first["id"], 2500, CONFIG)
    assert list(other_seed.rows(0, 20)) != rows


def test_a_100000_people_run_serves_any_page(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    big = leadpipe_sandbox.create_audience("Big", people=100_000)["id"]
    run = completed_run(client, big)
    last = data(results(client, big, run["id"], limit=1000, offset=99_500))
    assert (last["total"], len(last["results"])) == (100_000, 500)


def test_stats_of_a_completed_run_match_its_rows(client: httpx.Client, audience_id: str) -> None:
    run = start_run(client, audience_id)
    pending = data(client.get(runs_path(audience_id, run["id"], "/stats")), 202)
    assert (pending["state"], pending["stats"]) == ("queued", None)
    for _ in range(2):  # stats polls count too: this is polls 2 and 3 (running, completed)
        results(client, audience_id, run["id"])
    stats_body = data(client.get(runs_path(audience_id, run["id"], "/stats")))
    assert stats_body["run"]["id"] == run["id"] and stats_body["run"]["audienceId"] == audience_id
    stats = stats_body["stats"]
    rows = all_rows(client, audience_id, run["id"])
    assert stats["total"] == len(rows) == 2500
    assert stats["fillRates"]["phone"]["count"] == sum(row["phone"] is not None for row in rows)
    assert stats["fillRates"]["company.name"] == {"count": 2500, "percent": 100.0}
    buckets = Counter("90-99" if r["intent"]["score"] >= 90 else "70-89" for r in rows)
    assert {b["bucket"]: b["count"] for b in stats["scoreHistogram"]} == {"50-69": 0, **buckets}
    average = round(sum(r["intent"]["score"] for r in rows) / 2500, 2)
    assert stats["averages"]["score"] == average


def test_an_empty_run(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    empty = leadpipe_sandbox.create_audience("Nobody", people=0)["id"]
    run = completed_run(client, empty)
    page = data(results(client, empty, run["id"]))
    assert (page["results"], page["total"], page["run"]["resultCount"]) == ([], 0, 0)
    assert data(client.get(runs_path(empty, run["id"], "/stats")))["stats"]["total"] == 0


def test_the_fast_row_encoding_is_exactly_json_dumps() -> None:
    people = PeopleSet.of_run(42, "run", 5000, {"topicIds": [101, 104, 999], "minScore": 10, "maxScore": 60})
    rows = list(people.rows(1200, 1700))
    assert people.rows_json(1200, 1700) == json.dumps(rows, separators=(",", ":"))
    assert people.rows_json(4990, 6000) == json.dumps(list(people.rows(4990)), separators=(",", ":"))
    assert {row["intent"]["score"] for row in rows} <= set(range(50, 61))  # minScore < 50 counts as 50
    assert {t["topicName"] for row in rows for t in row["intent"]["matchedTopics"]} == {
        "Customer Data Platforms",
        "CRM Software",
        "Topic 999",
    }


def test_a_run_keeps_the_config_it_was_created_with(client: httpx.Client, audience_id: str) -> None:
    run = start_run(client, audience_id)
    data(
        client.patch(
            f"/v1/intent/audiences/{audience_id}", json={"config": {"topicIds": [108], "minScore": 95}}
        )
    )
    completed_run(client, audience_id)  # polls its own run only
    for _ in range(2):
        results(client, audience_id, run["id"])
    rows = data(results(client, audience_id, run["id"], limit=1000))["results"]
    assert min(row["intent"]["score"] for row in rows) < 95
    assert {t["topicId"] for row in rows for t in row["intent"]["matchedTopics"]} == {101, 102, 103}
    newer = data(client.get(runs_path(audience_id)))
    assert newer[0]["configHash"] != newer[1]["configHash"]
