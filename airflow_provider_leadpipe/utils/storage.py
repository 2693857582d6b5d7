"""Writing a pull to one file on any object storage, shared by every operator that writes a file.

* :func:`check_path`, :func:`check_compression`, :func:`check_on_incomplete`: argument checks that
  need no storage access (run when the DAG is parsed, or once a templated value is rendered).
* :func:`file_target`: the :class:`ObjectStoragePath` to write, refused with a
  :class:`LeadpipeConfigError` naming the path when it is an existing folder -- on an object store,
  a prefix that holds objects (``s3://b/visitors`` when ``s3://b/visitors/...`` exists) -- or when
  its parent is a file. Checked before anything is pulled.
* :class:`AtomicFile`: write through a hidden temporary object beside the target, then move it
  into place; on any failure the temporary is removed and the target is left untouched. The
  temporary's name fits wherever the target's does (:func:`temporary_prefix`); a path too long for
  the store is refused with a :class:`LeadpipeConfigError` before anything is pulled.
* :func:`jsonl`: records as UTF-8 JSON Lines, every record JSON can carry (lone UTF-16 surrogates
  included); a record that cannot be written is named by page and position, never quoted.
* :class:`DownloadSink`: a download written to a path (through :class:`AtomicFile`) or a binary
  file object, counted and hashed, then verified against its announced size and SHA-1.
* :func:`check_complete`: compare what a pull returned with what the API announced, and warn or
  fail (``on_incomplete``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import IO, Any, cast

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe.exceptions import (
    LeadpipeConfigError,
    LeadpipeIncompleteError,
    LeadpipeResponseError,
)

COMPRESSIONS = ("infer", "gzip", None)
#: ``on_incomplete`` values; None turns the comparison off.
ON_INCOMPLETE = ("warn", "fail", None)
LOCAL_PROTOCOLS = ("", "file", "local")
#: Longest file name, in bytes, where the file system does not say (ext4, xfs, btrfs, APFS; NTFS
#: counts 255 UTF-16 units) and on object stores, whose keys have no separate name limit.
NAME_MAX = 255
#: Longest local path, in bytes, where the file system does not say (Linux's PATH_MAX).
PATH_MAX = 4096
#: Longest object key, in bytes, of the object stores that bound it (S3, GCS, Azure Blob).
KEY_MAX = dict.fromkeys(("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "wasb", "wasbs"), 1024)
#: What follows a temporary's prefix: the random id and ``.tmp``.
_TEMPORARY_SUFFIX = len("0123456789ab.tmp")
#: The length of :func:`task_owner`'s owners, assumed when checking a target before its writer exists.
_OWNER_LENGTH = 12

log = logging.getLogger(__name__)


# -- argument checks (no storage access) -----------------------------------------------------


def check_path(path: Any, name: str = "path") -> str:
    """A target given as text: non-blank, not ending in ``/`` (an ObjectStoragePath is taken as is)."""
    if isinstance(path, ObjectStoragePath):
        return str(path)
    if not isinstance(path, str) or not path.strip():
        raise LeadpipeConfigError(f"{name} must be a file path or URL, got {path!r}")
    if path.strip().endswith("/"):
        raise LeadpipeConfigError(f"{name} must name a file, not a folder: {path!r}")
    return path.strip()


def check_compression(value: Any) -> str | None:
    """``"infer"`` (gzip when the file name ends in ``.gz``), ``"gzip"`` or None."""
    if value not in COMPRESSIONS:
        raise LeadpipeConfigError(f"compression must be 'infer', 'gzip' or None, got {value!r}")
    return cast("str | None", value)


def check_on_incomplete(value: Any) -> str | None:
    """``"warn"``, ``"fail"``, or None (do not compare)."""
    if value not in ON_INCOMPLETE:
        raise LeadpipeConfigError(f"on_incomplete must be 'warn', 'fail' or None, got {value!r}")
    return cast("str | None", value)


def uses_gzip(target: ObjectStoragePath, compression: str | None) -> bool:
    """Whether the file is gzip-compressed, after :func:`check_compression`."""
    return compression == "gzip" or (compression == "infer" and target.name.endswith(".gz"))


# -- the target --------------------------------------------------------------------------------


def file_target(
    path: str | ObjectStoragePath, *, conn_id: str | None = None, name: str = "path"
) -> ObjectStoragePath:
    """The file to write, checked against the store: not a folder or prefix, not inside a file.

    :param conn_id: the object store's Airflow connection (None: the store's default); ignored
        for an ``ObjectStoragePath``, which carries its own.
    :param name: the argument's name, for the error message.
    :raises LeadpipeConfigError: naming the path.
    """
    if isinstance(path, ObjectStoragePath):
        target, shown = path, str(path)
    else:
        shown = check_path(path, name)
        target = ObjectStoragePath(shown, conn_id=conn_id or None)
    if not target.name:
        raise LeadpipeConfigError(f"{name} must name a file, not a folder: {shown!r}")
    check_length(target, name, shown=shown)
    check_target(target, name, shown=shown)
    return target


def temporary_prefix(name: str, owner: str | None = None, *, limit: int = NAME_MAX) -> str:
    """The start of the name of every temporary of the target file ``name``: ``.<name>.<owner>.``
    (``.<name>.`` without an owner); a random id and ``.tmp`` follow.

    The whole temporary name stays within ``max(len(name), limit)`` bytes (UTF-8): a name too long
    for that keeps its head and gets the SHA-256 of the whole name instead of its tail
    (``.<head>~<sha256:12>.<owner>.``), so a target whose name fits has a temporary that fits, and
    the prefix stays the same for every try (leftovers are found as for short names).
    """
    owner_part = f"{owner}." if owner else ""
    budget = max(len(name.encode("utf-8", "surrogatepass")), limit) - _TEMPORARY_SUFFIX
    whole = f".{name}.{owner_part}"
    if len(whole.encode("utf-8", "surrogatepass")) <= budget:
        return whole
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    tail = f"~{digest}.{owner_part}"
    room = max(budget - 1 - len(tail.encode("utf-8", "surrogatepass")), 0)
    head = name.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")  # whole characters
    return f".{head}{tail}"


def _local_limits(target: ObjectStoragePath) -> tuple[int, int]:
    """(longest name, longest path) in bytes of the local file system that will hold ``target``."""
    folder = os.path.dirname(str(target.path)) or os.sep
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)  # the nearest existing folder: the one asked
    limits = []
    for key, default in (("PC_NAME_MAX", NAME_MAX), ("PC_PATH_MAX", PATH_MAX)):
        try:
            limits.append(os.pathconf(folder, key) or default)
        except (OSError, ValueError, AttributeError):  # no such limit here (or no pathconf: Windows)
            limits.append(default)
    return limits[0], limits[1]


def check_length(
    target: ObjectStoragePath,
    name: str = "path",
    *,
    shown: str | None = None,
    temporary: ObjectStoragePath | None = None,
) -> int:
    """Refuse a target, or its temporary (``temporary``, else the longest a task's would be), that
    is too long for its store: a name over the local file system's limit, a local path over its
    path limit, an object key over the store's key limit. Returns the name limit to keep within.

    Without this check the write fails with ``[Errno 36] File name too long`` on every try.
    """
    shown = shown or str(target)
    if target.protocol in LOCAL_PROTOCOLS:
        name_max, path_max = _local_limits(target)
        length, limit, what = len(str(target.path).encode("utf-8", "surrogatepass")), path_max, "path"
    else:
        name_max, limit, what = NAME_MAX, KEY_MAX.get(target.protocol, 0), "object key"
        length = len(str(target.key).encode("utf-8", "surrogatepass"))
    size = len(target.name.encode("utf-8", "surrogatepass"))
    if target.protocol in LOCAL_PROTOCOLS and size > name_max:
        raise LeadpipeConfigError(
            f"{name} is too long: the file name of {shown!r} has {size} bytes (UTF-8), and the file "
            f"system allows {name_max}; shorten it"
        )
    if limit:
        if temporary is None:
            prefix = temporary_prefix(target.name, "o" * _OWNER_LENGTH, limit=name_max)
            extra = len(prefix.encode("utf-8", "surrogatepass")) + _TEMPORARY_SUFFIX - size
        else:
            extra = len(temporary.name.encode("utf-8", "surrogatepass")) - size
        if length + max(extra, 0) > limit:
            raise LeadpipeConfigError(
                f"{name} is too long: {shown!r} is a {what} of {length} bytes (UTF-8), and the "
                f"temporary written beside it needs up to {max(extra, 0)} more; the store allows "
                f"{limit}. Shorten the path"
            )
    return name_max


def check_target(target: ObjectStoragePath, name: str = "path", *, shown: str | None = None) -> None:
    """Refuse a target that is an existing folder (a prefix holding objects), or whose parent is a file.

    Moving a file onto a folder puts it *inside* the folder, under the temporary's hidden name, on
    every fsspec store: the data would be there but not where the user looks.

    :param shown: the path as the user wrote it, for the message (default: ``str(target)``).
    """
    if target.is_dir():
        where = "a folder" if target.protocol in LOCAL_PROTOCOLS else "a folder (a prefix holding objects)"
        raise LeadpipeConfigError(f"{name} must name a file, but {shown or str(target)!r} is {where}")
    parent = target.parent
    if parent != target and parent.is_file():
        raise LeadpipeConfigError(
            f"{name} cannot be written: its parent {str(parent)!r} is a file, not a folder"
        )


class AtomicFile:
    """``with AtomicFile(target, compress=True) as out: out.write(...)``: all or nothing at ``target``.

    Bytes go to a hidden temporary beside the target (``.<name>.<id>.tmp``, shortened for a long
    name: :func:`temporary_prefix`), which is moved onto
    the target only when the block ends without an exception, after checking the target again (a
    pull can take hours; a folder may have appeared meanwhile). On any exception, and on
    :meth:`discard` (call it from ``on_kill``), the temporary is removed and the target is left as
    it was. gzip output is reproducible (no name, mtime 0). Parent folders are created for local
    paths; object stores have none to create.

    A process killed outright (SIGKILL, a worker lost with its machine) cleans nothing up. With
    ``owner`` (:func:`task_owner`: the same for every try of one task instance), the temporary is
    named ``.<name>.<owner>.<id>.tmp`` and entering the block first removes the temporaries an
    earlier try of that owner left beside the target. Airflow runs one try of a task instance at a
    time, so none of them is still being written.

    ``before_commit`` is called with the SHA-256 (hex) of the bytes stored, once they are complete
    and before the move; if it raises, nothing is moved (``only_new`` records its pending state there).
    """

    def __init__(
        self,
        target: ObjectStoragePath,
        *,
        compress: bool = False,
        owner: str | None = None,
        before_commit: Callable[[str], None] | None = None,
    ) -> None:
        self.target = target
        self.compress = compress
        self.owner = owner
        self.before_commit = before_commit
        name_max = check_length(target)
        self._prefix = temporary_prefix(target.name, owner, limit=name_max)
        self.temporary = target.with_name(f"{self._prefix}{uuid.uuid4().hex[:12]}.tmp")
        check_length(target, temporary=self.temporary)
        self._raw: IO[bytes] | None = None
        self._out: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self.target.protocol in LOCAL_PROTOCOLS:
            try:
                self.target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise LeadpipeConfigError(
                    f"path cannot be written: a part of {str(self.target.parent)!r} is a file, not a folder"
                ) from None
        if self.owner:
            self._remove_leftovers()
        raw = cast("IO[bytes]", _Hashing(cast("IO[bytes]", self.temporary.open("wb"))))
        self._raw = raw
        out = gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) if self.compress else raw
        self._out = cast("IO[bytes]", out)
        return self._out

    def _remove_leftovers(self) -> None:
        """Remove this owner's temporaries beside the target (an earlier try killed mid-write)."""
        parent = self.target.parent
        if not parent.exists():
            return
        for sibling in parent.iterdir():
            # Compared as text, not as a glob: the target's name may hold "[", "*" or "?".
            if sibling.name.startswith(self._prefix) and sibling.name.endswith(".tmp"):
                sibling.unlink(missing_ok=True)
                log.info("Removed %s, left by an earlier try that was killed", sibling)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            try:
                if self.compress and self._out is not None:
                    self._out.close()  # writes the gzip trailer into the still-open raw file
            finally:
                if self._raw is not None:
                    self._raw.close()
            if exc_type is None:
                check_target(self.target)
                if self.before_commit is not None:
                    self.before_commit(cast("_Hashing", self._raw).sha256.hexdigest())
                self.temporary.move(self.target)
        except BaseException:
            self.discard()
            raise
        if exc_type is not None:
            self.discard()

    def discard(self) -> None:
        """Remove the temporary, best effort (the error that got us here matters more)."""
        try:
            self.temporary.unlink(missing_ok=True)
        except Exception as exc:
            log.warning("Could not remove the temporary file %s: %s", self.temporary, exc)


class _Hashing:
    """A binary file that hashes (SHA-256) what is written through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()


class DownloadSink:
    """Writes downloaded bytes, counting and hashing them; verifies them against the size and the
    SHA-1 announced (``what`` names the download in errors, e.g. ``Leadpipe audience export <id>``).

    A destination given as a path (text, ``os.PathLike`` or ``ObjectStoragePath``) is written
    through :class:`AtomicFile`: it gets the bytes only when the download is complete and verified,
    and is left as it was otherwise.
    """

    def __init__(self, destination: Any, *, what: str, size: int, sha1: str | None):
        self.what, self.expected_size, self.expected_sha1 = what, size, (sha1 or "").strip().lower()
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.size = 0
        self._file: IO[bytes] | None = destination if hasattr(destination, "write") else None
        self._atomic = None if self._file is not None else AtomicFile(_storage_path(destination))

    def __enter__(self) -> DownloadSink:
        if self._atomic is not None:
            self._file = self._atomic.__enter__()
        return self

    def write(self, chunk: bytes) -> None:
        self.sha1.update(chunk)
        self.size += len(chunk)
        assert self._file is not None
        self._file.write(chunk)

    def too_large(self) -> LeadpipeResponseError:
        """The error of a download that announces or sends more than the size announced."""
        return LeadpipeResponseError(
            f"{self.what} download is corrupt: more than byteSize ({self.expected_size:,} bytes) "
            "announced or sent; stopped, nothing kept"
        )

    def verified(self) -> int:
        """The byte count, once it and the SHA-1 match (call it inside the block)."""
        problem = None
        if self.size != self.expected_size:
            problem = f"{self.size} bytes received, byteSize says {self.expected_size}"
        elif self.sha1.hexdigest() != self.expected_sha1:
            problem = "the SHA-1 of the bytes received differs from contentSha1"
        if problem:
            raise LeadpipeResponseError(f"{self.what} download is corrupt: {problem}")
        return self.size

    def __exit__(self, *exc: Any) -> None:
        if self._atomic is not None:
            self._atomic.__exit__(*exc)


def _storage_path(destination: Any) -> ObjectStoragePath:
    if isinstance(destination, ObjectStoragePath):
        return destination
    if isinstance(destination, (str, os.PathLike)) and str(destination).strip():
        return ObjectStoragePath(os.fspath(destination))
    raise LeadpipeConfigError(
        "destination must be a path, an ObjectStoragePath or a binary file object, "
        f"got {type(destination).__name__}"
    )


def task_owner(context: Any) -> str | None:
    """:class:`AtomicFile`'s ``owner`` for a task instance: equal for all its tries, unlike any other's.

    None outside a task instance (``execute()`` called with a context that has no ``ti``).
    """
    ti = context.get("ti")
    if ti is None:
        return None
    identity = "\0".join(map(str, (ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))))
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


# -- contents ----------------------------------------------------------------------------------


def jsonl(records: Iterable[dict[str, Any]], *, page: int | None = None, offset: int = 0) -> bytes:
    """Records as UTF-8 JSON Lines: one compact object per line, key order and text kept.

    Line-break characters other than ``\n`` (U+0085, U+2028, U+2029) are written as JSON escapes,
    so a reader that splits on any of them still sees one record per line.

    A lone UTF-16 surrogate (valid JSON, e.g. ``"\\ud83d"`` from an API that cut a string
    mid-emoji) has no UTF-8 form; it is written as the JSON escape it arrived as, so the line
    reads back to the same string. (``backslashreplace`` turns exactly those code points into
    ``\\udXXX``, which is a valid JSON escape since they only occur inside JSON strings. Escaping
    everything with ``ensure_ascii=True`` would do too, but makes every non-ASCII name unreadable.)

    :param page: the page these records came from, and ``offset`` how many records of the pull
        came before them: both only name a record that cannot be written.
    :raises LeadpipeResponseError: naming the record's position (never its content, which is
        personal data).
    """
    records = list(records)
    try:
        text = "".join(_line(record) for record in records)
    except (TypeError, ValueError, RecursionError):
        for index, record in enumerate(records):
            try:
                _line(record)
            except (TypeError, ValueError, RecursionError) as exc:
                where = f" (position {index + 1} on page {page})" if page is not None else ""
                raise LeadpipeResponseError(
                    f"record {offset + index + 1} of the pull{where} cannot be written as JSON: "
                    f"{type(exc).__name__}"
                ) from None
        raise  # pragma: no cover -- every record passed alone
    # JSON Lines splits on "\n" only, but many readers (Python's str.splitlines, older JavaScript)
    # also break lines at these three, which JSON allows raw inside strings: escape them.
    for char, escape in _LINE_BREAKS:
        if char in text:
            text = text.replace(char, escape)
    return text.encode("utf-8", "backslashreplace")


_LINE_BREAKS = (("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\x85", "\\u0085"))


def _line(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


# -- completeness ------------------------------------------------------------------------------


def check_complete(
    received: int,
    expected: int | None,
    *,
    on_incomplete: str | None,
    what: str = "records",
    logger: Any = None,
) -> bool:
    """Compare a pull's record count with the count the API announced (``meta.total``, ``total``).

    Returns False when fewer arrived than announced (after warning, with ``on_incomplete="warn"``);
    True when complete, when nothing was announced, or when ``on_incomplete`` is None.

    :param logger: where the warning goes (an operator's ``self.log``); this module's by default.
    :raises LeadpipeIncompleteError: when fewer arrived and ``on_incomplete="fail"``; call this
        inside the :class:`AtomicFile` block so that nothing is written.
    """
    if on_incomplete is None or expected is None or received >= expected:
        return True
    message = (
        f"Leadpipe announced {expected} {what} but the pull returned {received} "
        f"({expected - received} missing)"
    )
    if on_incomplete == "fail":
        raise LeadpipeIncompleteError(
            f"{message}; nothing was written (on_incomplete='fail')", expected=expected, received=received
        )
    (logger or log).warning("%s; the file holds what arrived (on_incomplete='warn')", message)
    return False
