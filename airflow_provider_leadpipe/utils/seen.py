"""``only_new``: what a task has already landed, remembered as fingerprints beside its output.

A record's fingerprint is a keyed BLAKE2b digest (16 bytes) of its canonical JSON -- the whole
record, or the values of the user's ``dedupe_keys`` (people: ``hashedEmail``). The key is a random
salt kept in the state's header, so a fingerprint cannot be looked up in a precomputed table; the
state holds fingerprints, run ids and file paths, never a record's content.

**Where the state lives.** One object per task beside its output, on the same store and connection
(``.leadpipe-only-new.<task>.state`` in the output's folder, or ``state_path``), not in Airflow
3.3's task state store: it works the same on every Airflow the provider supports (2.11-3.3), it is
kept, backed up, moved and deleted with the data it describes, and a user who deletes the folder
to re-land everything deletes the state with it.

**Format** (version 1): the line ``LEADPIPE-ONLY-NEW``, one line of JSON (``version``, ``salt``,
``keys``, ``generations``: one per run that landed records, with its ``run_id``, ``records``,
``path`` and the file's ``sha256``), then one 20-byte entry per fingerprint: the 16-byte
fingerprint and its generation (4 bytes, big-endian), sorted. Memory holds these bytes (20 MB for
1,000,000 fingerprints) and the new fingerprints of the running pull, never records.

**File and state together.** The new state is written as ``<state>.pending`` (naming the file and
its SHA-256) before the file is moved into place, and moved onto the state after. Opening the state
first settles a pending one left by a crash between the two: promoted when the file it names holds
exactly those bytes, discarded otherwise. A failed run therefore never advances the state, and a
run that committed its file always gets its state. A run whose ``run_id`` already has a generation
(a retry, or a cleared run) ignores that generation: it lands again what it landed before.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError, LeadpipeStateError
from airflow_provider_leadpipe.utils.storage import AtomicFile, file_target, task_owner

MAGIC = b"LEADPIPE-ONLY-NEW\n"
VERSION = 1
FINGERPRINT = 16
ENTRY = FINGERPRINT + 4
#: Bytes read from the store at a time when hashing a committed file.
_CHUNK = 1 << 20

log = logging.getLogger(__name__)


def check_dedupe_keys(keys: Any) -> tuple[str, ...] | None:
    """None (fingerprint the whole record) or a non-empty list of distinct field names."""
    if keys is None:
        return None
    if isinstance(keys, str):
        keys = [keys]
    if (
        not isinstance(keys, (list, tuple))
        or not keys
        or not all(isinstance(key, str) and key.strip() for key in keys)
        or len(set(keys)) != len(keys)
    ):
        raise LeadpipeConfigError(f"dedupe_keys must be a list of distinct field names, got {keys!r}")
    return tuple(keys)


def default_state_path(target: ObjectStoragePath, owner: str | None) -> ObjectStoragePath:
    """``.leadpipe-only-new.<owner>.state`` in the target's folder (``owner``: the task's key)."""
    return target.with_name(f".leadpipe-only-new.{owner or 'task'}.state")


def task_key(context: Any) -> str | None:
    """The same for every run of one task (dag, task, map index), unlike any other task's."""
    ti = context.get("ti")
    if ti is None:
        return None
    identity = "\0".join(map(str, (ti.dag_id, ti.task_id, getattr(ti, "map_index", -1))))
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


class _Fingerprints(Sequence[bytes]):
    """The sorted fingerprints of a state body, for :mod:`bisect` (no copy of the body)."""

    def __init__(self, body: memoryview) -> None:
        self.body = body

    def __len__(self) -> int:
        return len(self.body) // ENTRY

    def __getitem__(self, index: Any) -> Any:
        start = index * ENTRY
        return self.body[start : start + FINGERPRINT].tobytes()

    def generation(self, index: int) -> int:
        start = index * ENTRY + FINGERPRINT
        return int.from_bytes(self.body[start : start + 4], "big")


class SeenState:
    """The state of one task: what it landed, and what the running pull adds.

    ``with SeenState.open(path, keys, run_id) as state``; :meth:`admit` each record, then
    :meth:`prepare` (before the file moves) and :meth:`commit` (after).
    """

    def __init__(
        self, path: ObjectStoragePath, keys: tuple[str, ...] | None, run_id: str, conn_id: str | None
    ) -> None:
        self.path = path
        self.pending = path.with_name(f"{path.name}.pending")
        self.keys = keys
        self.run_id = run_id
        self.conn_id = conn_id
        self.salt = os.urandom(16)
        self.generations: list[dict[str, Any]] = []
        self.body = memoryview(b"")
        self.fingerprints = _Fingerprints(self.body)
        self.ignored: int | None = None  # this run's earlier generation, if any
        self.new: set[bytes] = set()
        self.duplicates = 0
        self.seen_before = 0

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: ObjectStoragePath,
        keys: tuple[str, ...] | None,
        run_id: str,
        *,
        conn_id: str | None = None,
    ) -> SeenState:
        """The state at ``path`` (empty if there is none), after settling a pending one."""
        state = cls(path, keys, run_id, conn_id)
        if state.pending.exists():
            state._settle()
        if path.exists():
            state._load(path.read_bytes(), path)
        return state

    def _settle(self) -> None:
        """Promote or discard the pending state a crash left between the file and the state."""
        header, _ = _parse(self.pending.read_bytes(), self.pending)
        commit = header.get("commit") or {}
        file = ObjectStoragePath(str(commit.get("path", "")), conn_id=self.conn_id)
        if commit.get("path") and file.is_file() and _sha256(file) == commit.get("sha256"):
            self.pending.move(self.path)
            log.info("Recovered the only_new state of %s: its file was committed, its state not yet", file)
        else:
            self.pending.unlink(missing_ok=True)
            log.info("Discarded the pending only_new state %s: its file was never committed", self.pending)

    def _load(self, data: bytes, where: ObjectStoragePath) -> None:
        header, body = _parse(data, where)
        keys = tuple(header["keys"]) if header.get("keys") is not None else None
        if keys != self.keys:
            raise LeadpipeStateError(
                f"The only_new state {str(where)!r} was built with dedupe_keys={list(keys or []) or None}, "
                f"this task has dedupe_keys={list(self.keys or []) or None}; give it another state_path "
                "or move the state away"
            )
        self.salt = bytes.fromhex(header["salt"])
        self.generations = header["generations"]
        self.body = memoryview(body)
        self.fingerprints = _Fingerprints(self.body)
        for index, generation in enumerate(self.generations):
            if generation["run_id"] == self.run_id:
                self.ignored = index

    # -- the pull ------------------------------------------------------------------------------

    def fingerprint(self, record: Any, position: int) -> bytes:
        """The record's fingerprint; ``position`` (1-based, in the pull) names a record missing a key."""
        if self.keys is None:
            value = record
        else:
            missing = [key for key in self.keys if not isinstance(record, dict) or key not in record]
            if missing:
                raise LeadpipeConfigError(
                    f"dedupe_keys names {missing[0]!r}, which record {position} of the pull does not have"
                )
            value = [record[key] for key in self.keys]
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        data = text.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, digest_size=FINGERPRINT, key=self.salt).digest()

    def admit(self, record: Any, position: int) -> bool:
        """Whether to land the record: neither landed by an earlier run nor already in this pull."""
        fingerprint = self.fingerprint(record, position)
        if fingerprint in self.new:
            self.duplicates += 1
            return False
        index = bisect.bisect_left(self.fingerprints, fingerprint)
        if (
            index < len(self.fingerprints)
            and self.fingerprints[index] == fingerprint
            and self.fingerprints.generation(index) != self.ignored
        ):
            self.seen_before += 1
            return False
        self.new.add(fingerprint)
        return True

    @property
    def size(self) -> int:
        """Fingerprints remembered once this run is committed."""
        kept = len(self.fingerprints) - (
            self.generations[self.ignored]["records"] if self.ignored is not None else 0
        )
        return kept + len(self.new)

    # -- writing -------------------------------------------------------------------------------

    def prepare(self, file: ObjectStoragePath, sha256: str) -> None:
        """Write the new state as pending, naming the file about to be committed and its SHA-256."""
        remap: dict[int, int] = {}
        generations: list[dict[str, Any]] = []
        for index, generation in enumerate(self.generations):
            if index != self.ignored:
                remap[index] = len(generations)
                generations.append(generation)
        commit = {"run_id": self.run_id, "records": len(self.new), "path": str(file), "sha256": sha256}
        if self.new:
            generations.append({k: commit[k] for k in ("run_id", "records", "path", "sha256")})
        header = {
            "version": VERSION,
            "salt": self.salt.hex(),
            "keys": list(self.keys) if self.keys is not None else None,
            "generations": generations,
            "commit": {"path": str(file), "sha256": sha256},
        }
        new_generation = (len(generations) - 1).to_bytes(4, "big")
        with AtomicFile(self.pending) as out:
            out.write(MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n")
            chunk = bytearray()
            for entry in heapq.merge(self._kept(remap), (f + new_generation for f in sorted(self.new))):
                chunk += entry
                if len(chunk) >= _CHUNK:
                    out.write(bytes(chunk))
                    chunk.clear()
            out.write(bytes(chunk))

    def _kept(self, remap: dict[int, int]) -> Iterator[bytes]:
        for index in range(len(self.fingerprints)):
            generation = self.fingerprints.generation(index)
            if generation != self.ignored:
                yield self.fingerprints[index] + remap[generation].to_bytes(4, "big")

    def commit(self) -> None:
        """Move the pending state onto the state (after the file is in place)."""
        self.pending.move(self.path)


def new_only(state: SeenState | None, records: list[Any], before: int) -> list[Any]:
    """The records of one page to write: all of them without a state, else the ones not seen.

    ``before``: how many records of the pull came before this page. A record missing a dedupe key
    raises a fresh :class:`LeadpipeConfigError` with no record in reach of its traceback (the
    caller deletes its own reference to the page before re-raising).
    """
    if state is None:
        return records
    problem = None
    try:
        return [
            record for position, record in enumerate(records, before + 1) if state.admit(record, position)
        ]
    except LeadpipeConfigError as exc:
        problem = str(exc)
    records = []  # personal data: not kept in this frame, which the error's traceback holds
    raise LeadpipeConfigError(problem)


def open_for_task(
    target: ObjectStoragePath,
    context: Any,
    keys: tuple[str, ...] | None,
    *,
    state_path: Any = None,
    conn_id: str | None = None,
) -> SeenState:
    """The ``only_new`` state of the task running in ``context`` that writes ``target``."""
    if state_path:
        path = file_target(state_path, conn_id=conn_id, name="state_path")
        if str(path) in (str(target), f"{target}.pending"):
            raise LeadpipeConfigError(f"state_path must differ from path, got {str(path)!r} for both")
    else:
        path = default_state_path(target, task_key(context))
    run_id = str(context.get("run_id") or getattr(context.get("ti"), "run_id", "") or "manual")
    return SeenState.open(path, keys, run_id, conn_id=conn_id)


def open_landing(
    target: ObjectStoragePath,
    context: Any,
    *,
    only_new: bool,
    keys: tuple[str, ...] | None,
    state_path: Any = None,
    conn_id: str | None = None,
    compress: bool = False,
) -> tuple[AtomicFile, SeenState | None]:
    """The atomic file a pull writes ``target`` through and, with ``only_new``, its state.

    The state's new version is prepared by the file's commit (``before_commit``), so the file and
    the state change together or not at all; call :meth:`SeenState.commit` after the block.
    """
    state = open_for_task(target, context, keys, state_path=state_path, conn_id=conn_id) if only_new else None
    file = AtomicFile(
        target,
        compress=compress,
        owner=task_owner(context),
        before_commit=(lambda sha256: state.prepare(target, sha256)) if state else None,
    )
    return file, state


def logged_summary(state: SeenState, log: logging.Logger | Any) -> dict[str, Any]:
    """Log what ``only_new`` skipped (counts only) and return :func:`summary`."""
    log.info(
        "only_new: skipped %d repeated within the pull and %d landed before; %d fingerprints in %s",
        state.duplicates,
        state.seen_before,
        state.size,
        state.path,
    )
    return summary(state)


def summary(state: SeenState) -> dict[str, Any]:
    """The XCom entries of ``only_new``: counts and the state's size and path, no record."""
    return {
        "duplicates_skipped": state.duplicates,
        "seen_before": state.seen_before,
        "state_size": state.size,
        "state_path": str(state.path),
    }


def _parse(data: bytes, where: ObjectStoragePath) -> tuple[dict[str, Any], bytes]:
    """(header, body) of a state object, or a :class:`LeadpipeStateError` naming it."""
    if not data.startswith(MAGIC):
        raise LeadpipeStateError(
            f"{str(where)!r} is not a Leadpipe only_new state object; nothing was overwritten"
        )
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : end]) if end > 0 else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("version") != VERSION:
        version = header.get("version") if isinstance(header, dict) else None
        raise LeadpipeStateError(
            f"The only_new state {str(where)!r} has an unreadable header or version {version!r} "
            f"(this provider reads version {VERSION}); nothing was overwritten"
        )
    body = data[end + 1 :]
    try:
        bytes.fromhex(header["salt"])
        records = sum(int(g["records"]) for g in header["generations"])
        [str(g["run_id"]) for g in header["generations"]]
    except (KeyError, TypeError, ValueError):
        records = -1
    if records * ENTRY != len(body):
        raise LeadpipeStateError(
            f"The only_new state {str(where)!r} is corrupt (its header and its fingerprints disagree); "
            "nothing was overwritten"
        )
    return header, body


def _sha256(file: ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
