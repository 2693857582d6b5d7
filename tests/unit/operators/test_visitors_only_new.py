"""``only_new`` on LeadpipeVisitorsToStorageOperator: file:// storage, API mocked with respx."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import respx

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError, LeadpipeStateError
from airflow_provider_leadpipe.utils import seen
from tests.unit.hooks.test_no_body_in_tracebacks import EMAIL, MARKER, exposures, failure_of
from tests.unit.hooks.test_visitors import VISITORS_URL, FakeVisitorsApi, visitors
from tests.unit.operators.test_visitors import make, output, read_jsonl


class Api:
    """The mocked API; ``serve(records)`` sets what the next pull returns."""

    def __init__(self) -> None:
        self.fake = FakeVisitorsApi([])

    def serve(self, records: list[dict]) -> None:
        self.fake.records = records


@pytest.fixture
def api(leadpipe_conn):
    api = Api()
    with respx.mock(assert_all_called=False) as mock:
        mock.get(VISITORS_URL).mock(side_effect=api.fake)
        yield api


def context(run_id: str, task_id: str = "pull") -> dict:
    ti = SimpleNamespace(dag_id="daily", task_id=task_id, run_id=run_id, map_index=-1)
    return {"ti": ti, "run_id": run_id}


def pull(folder, run_id: str, *, name: str | None = None, **kwargs) -> dict:
    op = make(folder / (name or f"{run_id}.jsonl"), only_new=True, concurrency=2, **kwargs)
    return op.execute(context(run_id))


def emails(path) -> list[str]:
    return [record["email"] for record in read_jsonl(path)]


def state_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".leadpipe-only-new"))


def test_overlapping_days_land_each_record_once(api, tmp_path):
    everyone = visitors(300)
    api.serve(everyone[:120])
    first = pull(tmp_path, "day1")
    api.serve(everyone[60:200])  # a window that overlaps the day before
    second = pull(tmp_path, "day2")

    assert emails(tmp_path / "day1.jsonl") == [r["email"] for r in everyone[:120]]
    assert emails(tmp_path / "day2.jsonl") == [r["email"] for r in everyone[120:200]]
    assert (first["records"], first["seen_before"], first["duplicates_skipped"]) == (120, 0, 0)
    assert (second["records"], second["seen_before"], second["duplicates_skipped"]) == (80, 60, 0)
    assert second["state_size"] == 200
    assert state_files(tmp_path) == [".leadpipe-only-new." + seen.task_key(context("x")) + ".state"]


def test_repeats_within_one_pull_are_dropped(api, tmp_path):
    records = visitors(120)
    api.serve(records[:50] + records[45:120])  # page 2 starts with five records of page 1 again
    result = pull(tmp_path, "day1")
    assert emails(tmp_path / "day1.jsonl") == [r["email"] for r in records]
    assert (result["records"], result["duplicates_skipped"], result["seen_before"]) == (120, 5, 0)
    assert result["expected_records"] == 125  # what the API announced, before de-duplication


def test_dedupe_keys_identify_a_record_by_those_fields(api, tmp_path):
    records = visitors(60)
    api.serve(records)
    pull(tmp_path, "day1", dedupe_keys=["email"])
    api.serve([{**r, "n": r["n"] + 1000} for r in records[:30]] + visitors(10, prefix="w"))
    result = pull(tmp_path, "day2", dedupe_keys=["email"])
    assert emails(tmp_path / "day2.jsonl") == [f"w{i}@example.com" for i in range(10)]
    assert result["seen_before"] == 30


def test_dedupe_keys_naming_an_absent_field_fail_and_write_nothing(api, tmp_path):
    api.serve(visitors(70))
    with pytest.raises(LeadpipeConfigError, match="'hashedEmail', which record 1 of the pull"):
        pull(tmp_path, "day1", dedupe_keys=["hashedEmail"])
    assert list(tmp_path.iterdir()) == []


def test_the_absent_field_error_keeps_no_record_in_reach(api, tmp_path):
    api.serve([{"email": EMAIL, "note": MARKER}] * 3)
    error = failure_of(lambda: pull(tmp_path, "day1", dedupe_keys=["hashedEmail"]))
    assert isinstance(error, LeadpipeConfigError)
    assert exposures(error) == []


@pytest.mark.parametrize("keys", [[], "", [""], ["a", "a"], [1]])
def test_bad_dedupe_keys_are_refused_when_the_task_is_made(tmp_path, keys):
    with pytest.raises(LeadpipeConfigError, match="dedupe_keys"):
        make(tmp_path / "x.jsonl", only_new=True, dedupe_keys=keys)


def test_a_retried_or_cleared_run_lands_again_what_it_landed(api, tmp_path):
    everyone = visitors(200)
    api.serve(everyone[:100])
    pull(tmp_path, "day1")
    api.serve(everyone[50:150])
    pull(tmp_path, "day2")
    api.serve(everyone[:100])
    again = pull(tmp_path, "day1")  # day 1 cleared after day 2 ran
    assert emails(tmp_path / "day1.jsonl") == [r["email"] for r in everyone[:100]]
    assert (again["records"], again["seen_before"], again["state_size"]) == (100, 0, 150)
    api.serve(everyone[50:150])
    assert pull(tmp_path, "day2")["records"] == 50  # and day 2 still lands its own again


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_crash_between_the_file_and_the_state_is_recovered(api, tmp_path, monkeypatch, suffix):
    everyone = visitors(200)
    api.serve(everyone[:100])

    def crash(self):
        raise KeyboardInterrupt("worker killed")

    real_commit = seen.SeenState.commit
    monkeypatch.setattr(seen.SeenState, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        pull(tmp_path, "day1", name="day1" + suffix)
    monkeypatch.setattr(seen.SeenState, "commit", real_commit)
    assert len(emails(tmp_path / ("day1" + suffix))) == 100  # the file was committed, the state not
    assert [n for n in state_files(tmp_path) if n.endswith(".pending")]

    api.serve(everyone[50:150])  # the next day: its pull first settles the pending state
    result = pull(tmp_path, "day2", name="day2" + suffix)
    assert emails(tmp_path / ("day2" + suffix)) == [r["email"] for r in everyone[100:150]]
    assert result["seen_before"] == 50
    assert not [n for n in state_files(tmp_path) if n.endswith(".pending")]


def test_a_crash_before_the_file_never_advances_the_state(api, tmp_path, monkeypatch):
    everyone = visitors(200)
    api.serve(everyone[:100])
    pull(tmp_path, "day1")
    real_prepare = seen.SeenState.prepare

    def prepare_then_crash(self, file, sha256):
        real_prepare(self, file, sha256)  # the pending state is written, the file never moves
        raise KeyboardInterrupt("worker killed")

    monkeypatch.setattr(seen.SeenState, "prepare", prepare_then_crash)
    api.serve(everyone[50:150])
    with pytest.raises(KeyboardInterrupt):
        pull(tmp_path, "day2")
    monkeypatch.setattr(seen.SeenState, "prepare", real_prepare)
    assert not (tmp_path / "day2.jsonl").exists()

    api.serve(everyone[50:150])
    retry = pull(tmp_path, "day2")  # the pending state is discarded: day 2's records are new again
    assert (retry["records"], retry["seen_before"], retry["state_size"]) == (50, 50, 150)


@pytest.mark.parametrize(
    "content",
    [
        b"not a state at all",
        seen.MAGIC + b'{"version": 2}\n',
        seen.MAGIC + b'{"version": 1, "salt": "00", "keys": null, "generations": '
        b'[{"run_id": "r", "records": 2}]}\n' + b"x" * 25,
    ],
    ids=["foreign", "other-version", "truncated"],
)
def test_a_corrupt_or_foreign_state_fails_by_name_and_nothing_is_overwritten(api, tmp_path, content):
    api.serve(visitors(10))
    state = tmp_path / "my.state"
    state.write_bytes(content)
    with pytest.raises(LeadpipeStateError, match=r"my\.state"):
        pull(tmp_path, "day1", state_path=str(state))
    assert state.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.state"]


def test_a_state_made_with_other_keys_is_refused(api, tmp_path):
    api.serve(visitors(10))
    pull(tmp_path, "day1")
    with pytest.raises(LeadpipeStateError, match="dedupe_keys"):
        pull(tmp_path, "day2", dedupe_keys=["email"])


def test_two_tasks_landing_to_different_paths_keep_separate_states(api, tmp_path):
    api.serve(visitors(40))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make(tmp_path / "a" / "v.jsonl", only_new=True).execute(context("day1", "a"))
    second = make(tmp_path / "b" / "v.jsonl", only_new=True).execute(context("day1", "b"))
    assert first["records"] == second["records"] == 40
    assert len(state_files(tmp_path / "a")) == len(state_files(tmp_path / "b")) == 1


def test_no_personal_data_in_the_state_the_xcom_or_the_logs(api, tmp_path, caplog, capsys):
    caplog.set_level("DEBUG")
    records = visitors(80)
    api.serve(records + records[:5])
    result = pull(tmp_path, "day1")
    pull(tmp_path, "day2", dedupe_keys=None)
    state = (tmp_path / state_files(tmp_path)[0]).read_bytes()
    shown = json.dumps(result) + output(caplog, capsys)
    for record in records:
        for text in (record["email"], record["person"]["name"]):
            assert text.encode() not in state
            assert text not in shown
    assert "only_new: skipped 5 repeated within the pull" in shown


def test_the_asset_events_of_the_outlets_carry_the_counts(api, tmp_path):
    from airflow.providers.common.compat.assets import Asset, AssetAlias

    try:
        from airflow.sdk.execution_time.context import OutletEventAccessors
    except ImportError:  # Airflow 2.x
        from airflow.utils.context import OutletEventAccessors  # type: ignore[no-redef]

    asset, alias = Asset("file:///warehouse/visitors"), AssetAlias("visitors-alias")
    api.serve(visitors(60) + visitors(5))
    op = make(tmp_path / "v.jsonl", only_new=True, outlets=[asset, alias])
    events = OutletEventAccessors()
    op.execute({**context("day1"), "outlet_events": events})
    assert events[asset].extra == {"path": str(tmp_path / "v.jsonl"), "records": 60, "duplicates_skipped": 5}
    assert events[alias].extra == {}  # an alias names its asset at runtime: the user's DAG does


def test_a_state_path_equal_to_the_path_is_refused_before_anything_is_pulled(api, tmp_path):
    target = tmp_path / "day1.jsonl"
    with pytest.raises(LeadpipeConfigError, match="state_path must differ from path"):
        pull(tmp_path, "day1", state_path=str(target))
    assert list(tmp_path.iterdir()) == [] and api.fake.pages == []
