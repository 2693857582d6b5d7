"""airflow_provider_leadpipe.utils.storage on the local disk and on an object store (fsspec ``memory://``)."""

from __future__ import annotations

import gzip
import json
import logging
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_leadpipe.exceptions import (
    LeadpipeConfigError,
    LeadpipeIncompleteError,
    LeadpipeResponseError,
)
from airflow_provider_leadpipe.utils import storage
from tests.stores import listing, put


class Boom(Exception):
    pass


# -- the target ----------------------------------------------------------------------------------


def test_a_folder_or_prefix_holding_objects_is_refused_naming_the_path(store_root):
    put(store_root("visitors") / "2026-01-01.jsonl", b"{}\n")
    target = store_root("visitors")
    for given_as in (str(target), target):  # text and ObjectStoragePath alike
        with pytest.raises(LeadpipeConfigError, match="must name a file") as info:
            storage.file_target(given_as)
        assert str(target) in str(info.value)
    assert listing(store_root()) == ["visitors/2026-01-01.jsonl"], "nothing written, nothing moved"


def test_a_target_inside_a_file_is_refused(store_root):
    put(store_root("day.jsonl"), b"{}\n")
    with pytest.raises(LeadpipeConfigError, match="is a file, not a folder") as info:
        storage.file_target(store_root("day.jsonl/visitors.jsonl"))
    assert str(store_root("day.jsonl")) in str(info.value)


def test_a_new_or_existing_file_is_a_target(store_root):
    assert storage.file_target(store_root("new/v.jsonl")) == store_root("new/v.jsonl")
    put(store_root("old.jsonl"), b"old\n")
    assert storage.file_target(store_root("old.jsonl")) == store_root("old.jsonl")


@pytest.mark.parametrize("path", ["", "   ", "s3://bucket/folder/", "/tmp/x/", None, 3])
def test_path_text_checks_need_no_storage(path):
    with pytest.raises(LeadpipeConfigError, match="path must"):
        storage.check_path(path)


# -- the writer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_writer_moves_the_whole_file_into_place_and_leaves_nothing_else(store_root, compress):
    target = store_root("out/v.jsonl.gz")
    with storage.AtomicFile(target, compress=compress) as out:
        out.write(b'{"a":1}\n')
        out.flush()
        [temporary] = listing(store_root())
        assert temporary.startswith("out/.v.jsonl.gz.") and temporary.endswith(".tmp")
        assert not target.exists(), "nothing at the target before the block ends"
    data = target.read_bytes()
    assert (gzip.decompress(data) if compress else data) == b'{"a":1}\n'
    assert listing(store_root()) == ["out/v.jsonl.gz"]


def test_writer_failure_keeps_the_previous_file_and_removes_the_temporary(store_root):
    target = store_root("v.jsonl")
    target.write_bytes(b"previous\n")
    with pytest.raises(Boom), storage.AtomicFile(target) as out:
        out.write(b"partial")
        raise Boom
    assert target.read_bytes() == b"previous\n"
    assert listing(store_root()) == ["v.jsonl"]


def test_a_folder_that_appears_during_the_pull_is_refused_at_the_move(store_root):
    target = store_root("visitors")
    with (
        pytest.raises(LeadpipeConfigError, match="must name a file") as info,
        storage.AtomicFile(target) as out,
    ):
        out.write(b"{}\n")
        put(store_root("visitors") / "other.jsonl", b"theirs\n")  # someone else's folder
    assert str(target) in str(info.value)
    assert listing(store_root()) == ["visitors/other.jsonl"], "nothing hidden inside, no temporary left"


def test_discard_removes_the_temporary(store_root):
    writer = storage.AtomicFile(store_root("v.jsonl"))
    with pytest.raises(FileNotFoundError), writer as out:
        out.write(b"x")
        writer.discard()  # what on_kill does, from another thread
    assert listing(store_root()) == []


def test_a_try_removes_the_temporary_an_earlier_killed_try_of_its_task_left(store_root):
    # A try SIGKILLed mid-write (its worker lost) leaves its temporary: nothing ran to remove it.
    killed = storage.AtomicFile(store_root("v.jsonl"), owner="ti1")
    killed.__enter__().write(b"partial")
    killed._raw.close()
    other_task = storage.AtomicFile(store_root("v.jsonl"), owner="ti2")
    other_task.__enter__().write(b"theirs")
    other_task._raw.close()
    put(store_root("[v].jsonl"), b"unrelated\n")
    assert len(listing(store_root())) == 3

    with storage.AtomicFile(store_root("v.jsonl"), owner="ti1") as out:  # the retry
        out.write(b"whole\n")
    assert store_root("v.jsonl").read_bytes() == b"whole\n"
    # The killed try's temporary is gone; another task's (maybe still writing) is kept.
    assert listing(store_root()) == sorted(["[v].jsonl", "v.jsonl", other_task.temporary.name])


def test_without_an_owner_no_other_temporary_is_touched(store_root):
    leftover = storage.AtomicFile(store_root("v.jsonl"))
    leftover.__enter__().write(b"partial")
    leftover._raw.close()
    with storage.AtomicFile(store_root("v.jsonl")) as out:
        out.write(b"whole\n")
    assert listing(store_root()) == sorted(["v.jsonl", leftover.temporary.name])


def test_task_owner_is_the_same_for_every_try_of_a_task_instance_only():
    def ti(try_number=1, map_index=-1, task_id="pull"):
        return {
            "ti": SimpleNamespace(
                dag_id="d", run_id="r", task_id=task_id, map_index=map_index, try_number=try_number
            )
        }

    assert storage.task_owner(ti(1)) == storage.task_owner(ti(2))
    assert storage.task_owner({}) is None  # execute() called by hand: no task instance, no owner
    assert (
        len(
            {
                storage.task_owner(ti(map_index=0)),
                storage.task_owner(ti(map_index=1)),
                storage.task_owner(ti()),
                storage.task_owner(ti(task_id="other")),
            }
        )
        == 4
    )


# -- contents ------------------------------------------------------------------------------------

# Every kind of code point JSON can carry in a string, lone surrogates (high, low, reversed) included.
JSON_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=5), max_size=5))
def test_every_record_json_can_carry_is_written_as_valid_utf8_and_reads_back_equal(records):
    data = storage.jsonl(records)
    lines = data.decode("utf-8").splitlines()  # strict UTF-8: raises on any surrogate byte sequence
    assert [json.loads(line) for line in lines] == records


@pytest.mark.parametrize(
    "text",
    ["\ud83d", "\ude00", "\ude00\ud83d", "cut mid-emoji \ud83d", "\\\ud83d", "Zoë \ud83d 東京"],
)
def test_lone_surrogates_keep_their_escape_and_the_rest_stays_readable(text):
    wire = json.dumps({"name": text, text: 1})  # as the API sends it: escaped
    record = json.loads(wire)
    line = storage.jsonl([record]).decode("utf-8")
    assert json.loads(line) == record
    if "Zoë" in text:
        assert "Zoë" in line and "東京" in line, "other text is not escaped"


def test_a_record_that_cannot_be_written_is_named_by_position_not_content():
    records = [{"email": "a@example.com"}, {"email": "secret@example.com", "score": {1, 2}}]
    with pytest.raises(LeadpipeResponseError) as info:
        storage.jsonl(records, page=3, offset=100)
    message = str(info.value)
    assert "record 102 of the pull (position 2 on page 3)" in message
    assert "secret" not in message


# -- completeness --------------------------------------------------------------------------------


def test_check_complete_warns_with_both_numbers(caplog):
    caplog.set_level(logging.WARNING)
    assert storage.check_complete(90, 100, on_incomplete="warn", what="visitor records") is False
    assert "announced 100 visitor records but the pull returned 90" in caplog.text


def test_check_complete_fails_with_both_numbers():
    with pytest.raises(LeadpipeIncompleteError, match="announced 100 rows but the pull returned 90") as info:
        storage.check_complete(90, 100, on_incomplete="fail", what="rows")
    assert (info.value.expected, info.value.received) == (100, 90)


@pytest.mark.parametrize(
    ("received", "expected", "on_incomplete"),
    [(100, 100, "fail"), (101, 100, "fail"), (5, None, "fail"), (0, 100, None)],
)
def test_check_complete_passes_when_complete_unannounced_or_off(received, expected, on_incomplete, caplog):
    assert storage.check_complete(received, expected, on_incomplete=on_incomplete) is True
    assert caplog.text == ""


@pytest.mark.parametrize("value", ["ignore", "", True, 0])
def test_on_incomplete_is_validated(value):
    with pytest.raises(LeadpipeConfigError, match="on_incomplete must be"):
        storage.check_on_incomplete(value)


# -- long names: the temporary fits wherever the target does ---------------------------------------

#: Names up to the 255-byte limit of local file systems (ext4, xfs, APFS, NTFS), ASCII and not.
LONG_NAMES = ["v" * 200 + ".jsonl", "v" * 235 + ".jsonl", "p" * 249 + ".jsonl", "é" * 124 + ".csv.gz"]


@pytest.mark.parametrize("owner", [None, "0123456789ab"])
@pytest.mark.parametrize("name", LONG_NAMES, ids=lambda name: f"{len(name.encode())}B")
def test_a_target_name_that_fits_gets_a_temporary_that_fits(store_root, name, owner):
    assert len(name.encode()) <= 255
    target = storage.file_target(store_root(name))
    for _ in range(2):  # a second try finds (and removes) what the first left, as with short names
        killed = storage.AtomicFile(target, owner=owner)
        killed.__enter__().write(b"partial")
        killed._raw.close()
        assert len(killed.temporary.name.encode()) <= 255
        with storage.AtomicFile(target, owner=owner) as out:
            out.write(b"whole\n")
        assert target.read_bytes() == b"whole\n"
        leftovers = [] if owner else [killed.temporary.name]
        assert listing(store_root()) == sorted([name, *leftovers])
        if not owner:
            killed.temporary.unlink()


def test_temporaries_of_two_long_names_sharing_a_head_differ_and_leave_each_other_alone(store_root):
    first, second = "v" * 240 + "-a.jsonl", "v" * 240 + "-b.jsonl"
    theirs = storage.AtomicFile(store_root(second), owner="0123456789ab")
    theirs.__enter__().write(b"theirs")
    theirs._raw.close()
    with storage.AtomicFile(store_root(first), owner="0123456789ab") as out:
        out.write(b"whole\n")
    assert listing(store_root()) == sorted([first, theirs.temporary.name])


def test_a_local_name_longer_than_the_file_system_allows_is_refused_naming_the_path(tmp_path):
    target = f"{tmp_path}/{'v' * 251}.jsonl"  # 257 bytes
    for text in (target, f"file://{target}"):
        with pytest.raises(LeadpipeConfigError, match="too long") as info:
            storage.file_target(text)
        assert target in str(info.value)
    with pytest.raises(LeadpipeConfigError, match="too long"):
        storage.AtomicFile(storage.ObjectStoragePath(target))
    assert list(tmp_path.iterdir()) == []


def test_an_object_key_too_long_for_its_temporary_is_refused_before_writing(memory_store, monkeypatch):
    monkeypatch.setitem(storage.KEY_MAX, "memory", 100)  # as S3's 1024 bytes, scaled down
    root = storage.ObjectStoragePath("memory://bucket")
    assert storage.file_target(root / ("k" * 40 + ".csv"))  # 44 bytes + a 31-byte temporary suffix
    for key in ("k" * 80 + ".csv", "k" * 120 + ".csv"):  # the temporary, or even the target, too long
        with pytest.raises(LeadpipeConfigError, match="too long") as info:
            storage.file_target(root / key)
        assert key in str(info.value) and "allows 100" in str(info.value)
    assert memory_store.find("/bucket") == []
