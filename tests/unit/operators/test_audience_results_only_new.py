"""``only_new`` on LeadpipeAudienceResultsToStorageOperator, against the sandbox over loopback HTTP.

The sandbox's daily runs of one audience share most people (the same ``hashedEmail``) while other
fields (titles, scores) differ from run to run: the case ``dedupe_keys=["hashedEmail"]`` is for.
"""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import pytest

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError
from airflow_provider_leadpipe.operators.audience_results import LeadpipeAudienceResultsToStorageOperator
from tests.orbit import api_people
from tests.unit.operators.test_audiences import read_lines
from tests.unit.operators.test_visitors import output


def context(run_id: str) -> dict:
    ti = SimpleNamespace(dag_id="orbit", task_id="land", run_id=run_id, map_index=-1)
    return {"ti": ti, "run_id": run_id}


def land(audience_id, run, target, run_id, **kwargs) -> dict:
    op = LeadpipeAudienceResultsToStorageOperator(
        task_id="land",
        audience_id=audience_id,
        audience_run_id=run["id"],
        path=str(target),
        only_new=True,
        concurrency=2,
        hook_params={"retry_backoff": 0.001},
        **kwargs,
    )
    return op.execute(context(run_id))


@pytest.fixture
def two_days(leadpipe_sandbox):
    audience = leadpipe_sandbox.create_audience("Daily people", people=180)
    first = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-04")
    second = leadpipe_sandbox.add_daily_run(audience["id"], data_date="2026-05-05")
    return audience["id"], first, second


def test_daily_runs_land_each_person_once_by_hashed_email(leadpipe_sandbox, two_days, tmp_path):
    audience_id, first, second = two_days
    people = {run["id"]: api_people(leadpipe_sandbox, audience_id, run["id"]) for run in (first, second)}
    landed: set[str] = set()
    expected = []
    for run in (first, second):
        new, repeated, before = [], 0, 0
        for person in people[run["id"]]:
            key = person["hashedEmail"]
            if key in {p["hashedEmail"] for p in new}:
                repeated += 1
            elif key in landed:
                before += 1
            else:
                new.append(person)
        landed |= {p["hashedEmail"] for p in new}
        expected.append((new, repeated, before))
    assert expected[1][2] > 100  # the days overlap, or this test proves nothing

    for day, run in enumerate((first, second)):
        target = tmp_path / f"day{day}.jsonl"
        result = land(audience_id, run, target, f"day{day}", dedupe_keys=["hashedEmail"])
        new, repeated, before = expected[day]
        assert [json.loads(line) for line in read_lines(target)] == new
        assert (result["records"], result["duplicates_skipped"], result["seen_before"]) == (
            len(new),
            repeated,
            before,
        )
        assert (result["audience_run_id"], result["data_date"]) == (run["id"], f"2026-05-0{4 + day}")
    assert result["state_size"] == len(landed)


def test_whole_record_fingerprints_treat_a_changed_person_as_new(leadpipe_sandbox, two_days, tmp_path):
    audience_id, first, second = two_days
    land(audience_id, first, tmp_path / "a.jsonl", "day0")
    again = land(audience_id, first, tmp_path / "b.jsonl", "day1")  # the same run's people again
    assert (again["records"], again["seen_before"]) == (0, 180)
    assert read_lines(tmp_path / "b.jsonl") == []
    other = land(audience_id, second, tmp_path / "c.jsonl", "day2")
    assert other["seen_before"] < 180  # titles and scores differ between runs


def test_only_new_as_csv_takes_its_columns_from_the_first_page_written(leadpipe_sandbox, two_days, tmp_path):
    audience_id, first, second = two_days
    land(audience_id, first, tmp_path / "a.csv", "day0", format="csv", dedupe_keys=["hashedEmail"])
    result = land(audience_id, second, tmp_path / "b.csv", "day1", format="csv", dedupe_keys=["hashedEmail"])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "b.csv").read_text())))
    assert len(rows) == result["records"] > 0
    assert "hashedEmail" in rows[0]


def test_only_new_with_the_export_method_is_refused():
    with pytest.raises(LeadpipeConfigError, match=r"only_new.*method='results'"):
        LeadpipeAudienceResultsToStorageOperator(
            task_id="t",
            audience_id="6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
            path="/tmp/x.csv",
            method="export",
            format="csv",
            only_new=True,
        )


def test_a_key_no_person_has_fails_naming_it_and_writes_nothing(leadpipe_sandbox, two_days, tmp_path):
    audience_id, first, _ = two_days
    with pytest.raises(LeadpipeConfigError, match="'hashed_email', which record 1 of the pull"):
        land(audience_id, first, tmp_path / "a.jsonl", "day0", dedupe_keys=["hashed_email"])
    assert list(tmp_path.iterdir()) == []


def test_no_personal_data_in_the_state_the_xcom_or_the_logs(
    leadpipe_sandbox, two_days, tmp_path, caplog, capsys
):
    caplog.set_level("DEBUG")
    audience_id, first, second = two_days
    results = [
        land(audience_id, first, tmp_path / "a.jsonl", "day0", dedupe_keys=["hashedEmail"]),
        land(audience_id, second, tmp_path / "b.jsonl", "day1", dedupe_keys=["hashedEmail"]),
    ]
    state = (tmp_path / results[0]["state_path"].rsplit("/", 1)[1]).read_bytes()
    shown = json.dumps(results) + output(caplog, capsys)
    people = api_people(leadpipe_sandbox, audience_id, first["id"])
    for person in people:
        for text in (person["hashedEmail"], person["email"], person["fullName"]):
            assert text.encode() not in state
            assert text not in shown
        assert bytes.fromhex(person["hashedEmail"])[:8] not in state


def test_the_asset_events_carry_the_counts_and_the_data_date_as_partition(
    leadpipe_sandbox, two_days, tmp_path
):
    from airflow.providers.common.compat.assets import Asset

    try:
        from airflow.sdk.execution_time.context import OutletEventAccessors
    except ImportError:  # Airflow 2.x
        from airflow.utils.context import OutletEventAccessors  # type: ignore[no-redef]

    audience_id, first, _ = two_days
    asset = Asset("s3://warehouse/orbit/people")
    op = LeadpipeAudienceResultsToStorageOperator(
        task_id="land",
        audience_id=audience_id,
        audience_run_id=first["id"],
        path=str(tmp_path / "p.jsonl"),
        outlets=[asset],
    )
    events = OutletEventAccessors()
    result = op.execute({**context("day0"), "outlet_events": events})
    assert events[asset].extra == {
        "path": str(tmp_path / "p.jsonl"),
        "records": 180,
        "audience_run_id": first["id"],
        "data_date": "2026-05-04",
        "duplicates_skipped": 0,
    }
    if hasattr(events[asset], "add_partitions"):  # Airflow 3.3+; below, data_date in extra only
        assert events[asset].partition_keys == {"2026-05-04"}
    assert "duplicates_skipped" not in result  # the XCom keeps its shape without only_new
