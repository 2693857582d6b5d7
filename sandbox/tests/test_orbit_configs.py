"""Orbit configs before an audience exists: validate, preview, the filter catalog and topic look-ups."""

from __future__ import annotations

import httpx
import pytest

from leadpipe_sandbox import Fault, LeadpipeSandbox
from orbit_helpers import AUDIENCES, data, error

VALIDATE = f"{AUDIENCES}/validate"
PREVIEW = f"{AUDIENCES}/preview"
CONFIG = {
    "topicIds": [103, 101, 101],
    "minScore": 20,
    "filters": {
        "role.seniority": {"values": ["VP", "Director"]},
        "contact": {"hasBusinessEmail": True},
    },
}


def test_validate_normalizes_and_hashes(client: httpx.Client) -> None:
    check = data(client.post(VALIDATE, json=CONFIG))
    assert check["valid"] is True and check["errors"] == []
    assert check["normalizedConfig"] == {
        "topicIds": [101, 103],
        "minScore": 50,  # below 50 is raised to 50
        "maxScore": 99,
        "minTopicOverlap": 1,
        "filters": {
            "contact.hasBusinessEmail": True,
            "role.seniority": {"values": ["Director", "VP"], "operator": "in", "mode": "any"},
        },
    }
    assert [f["key"] for f in check["appliedFilters"]] == ["contact.hasBusinessEmail", "role.seniority"]
    # The same audience written another way has the same hash; another audience another hash.
    flat = {
        "topicIds": [101, 103],
        "filters": {"contact.hasBusinessEmail": True, "role.seniority": ["VP", "Director"]},
    }
    assert data(client.post(VALIDATE, json=flat))["configHash"] == check["configHash"]
    other = data(client.post(VALIDATE, json={**CONFIG, "minScore": 80}))["configHash"]
    assert other != check["configHash"]


def test_validate_names_each_bad_key_and_value(client: httpx.Client) -> None:
    bad = {
        "topicIds": [101],
        "maxScore": 10,
        "filters": {
            "role.seniorty": {"values": ["VP"]},
            "role.seniority": {"values": ["VP", "boss", "czar"]},
        },
    }
    check = data(client.post(VALIDATE, json=bad))
    assert check["valid"] is False and check["configHash"] is None
    assert [(e["field"], e["code"], e.get("value")) for e in check["errors"]] == [
        ("maxScore", "INVALID_VALUE", None),
        ("filters.role.seniorty", "UNKNOWN_FILTER", "role.seniorty"),
        ("filters.role.seniority", "INVALID_VALUE", "boss"),
        ("filters.role.seniority", "INVALID_VALUE", "czar"),
    ]
    assert all(e["message"] for e in check["errors"])
    missing = data(client.post(VALIDATE, json={"filters": {}}))
    assert [e["field"] for e in missing["errors"]] == ["topicIds"]
    error(client.post(VALIDATE, content=b"[1]"), 400, "VALIDATION_ERROR")


def test_preview_counts_the_generated_people_and_masks_the_sample(
    leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client
) -> None:
    everyone = data(client.post(PREVIEW, json={"topicIds": [101]}))
    assert everyone["totalCount"] == 1000  # the key's default audience size, no filter
    narrowed = data(client.post(PREVIEW, json=CONFIG))
    assert 0 < narrowed["totalCount"] < everyone["totalCount"]
    seniorities = {row["value"]: row["count"] for row in narrowed["breakdowns"]["seniorities"]}
    assert set(seniorities) <= {"VP", "Director"}
    assert sum(seniorities.values()) == narrowed["totalCount"]
    assert sum(row["count"] for row in narrowed["breakdowns"]["industries"]) == narrowed["totalCount"]
    assert narrowed["configHash"] == data(client.post(VALIDATE, json=CONFIG))["configHash"]
    assert 0 < len(narrowed["sample"]) <= 5
    for person in narrowed["sample"]:
        assert person["lastName"].endswith(".") and len(person["lastName"]) == 2
        assert person["phone"] is None and person["linkedinUrl"] is None
        assert person["businessEmail"].split("@")[0].endswith("***")
        assert person["seniority"] in ("vp", "director")  # the person's own field, as results show it
    nobody = data(
        client.post(PREVIEW, json={"topicIds": [101], "filters": {"jobTitle.include": ["Astronaut"]}})
    )
    assert (nobody["totalCount"], nobody["sample"]) == (0, [])
    refused = error(
        client.post(PREVIEW, json={"topicIds": [101], "filters": {"x.y": True}}), 400, "VALIDATION_ERROR"
    )
    assert [e["field"] for e in refused["data"]["errors"]] == ["filters.x.y"]


def test_filter_catalog(client: httpx.Client) -> None:
    catalog = data(client.get(f"{AUDIENCES}/filters"))
    assert catalog["version"]["status"] == "catalog"
    keys = [f["key"] for group in catalog["groups"] for f in group["filters"]]
    assert catalog["summary"] == {"groupCount": len(catalog["groups"]), "filterCount": len(keys)}
    assert {"company.industries", "role.seniority", "jobTitle.include", "contact.hasBusinessEmail"} <= set(
        keys
    )
    seniority = next(f for g in catalog["groups"] for f in g["filters"] if f["key"] == "role.seniority")
    assert seniority["type"] == "multi_select" and {"value": "VP", "label": "VP"} in seniority["values"]


def test_topic_search_and_list(client_for, leadpipe_sandbox: LeadpipeSandbox) -> None:
    public = client_for(None)  # topic discovery needs no key
    found = data(public.get("/v1/intent/topics/search", params={"q": "intent data"}))
    assert sorted(t["topicId"] for t in found) == [102, 109]
    assert set(found[0]) == {"topicId", "topicName", "type", "industry", "category"}
    assert data(public.get("/v1/intent/topics/search", params={"q": "crm", "limit": 1}))[0]["topicId"] == 104
    error(public.get("/v1/intent/topics/search"), 400, "VALIDATION_ERROR")
    error(public.get("/v1/intent/topics/search", params={"q": "a", "limit": 51}), 400, "VALIDATION_ERROR")
    by_id = data(public.get("/v1/intent/topics", params={"ids": "104,101,999"}))
    assert [t["topicId"] for t in by_id] == [101, 104]
    assert len(data(public.get("/v1/intent/topics"))) == 9
    assert leadpipe_sandbox.request_count("/v1/intent/topics/search", api_key="<missing>") == 4


def test_faults_and_request_log(leadpipe_sandbox: LeadpipeSandbox, client: httpx.Client) -> None:
    leadpipe_sandbox.queue_faults(
        Fault.rate_limit(path=VALIDATE, retry_after=7), Fault.error(500, path="/v1/intent/topics/search")
    )
    limited = client.post(VALIDATE, json=CONFIG)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    assert client.get("/v1/intent/topics/search", params={"q": "crm"}).status_code == 500
    data(client.post(VALIDATE, json=CONFIG))
    assert leadpipe_sandbox.request_count(VALIDATE, method="POST") == 2
    assert leadpipe_sandbox.request_count(VALIDATE, method="POST", status=429) == 1
    assert leadpipe_sandbox.request_count(PREVIEW) == 0
    assert leadpipe_sandbox.request_count(AUDIENCES, method="POST") == 0


@pytest.mark.parametrize("path", [VALIDATE, PREVIEW])
def test_config_endpoints_need_a_key(client_for, path: str) -> None:
    assert client_for(None).post(path, json=CONFIG).status_code == 401
