"""Files the operators write: checked targets, written under a temporary name, moved when complete."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Callable
from typing import IO, Any, TypeVar, cast

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_leadpipe.exceptions import LeadpipeConfigError

_LOCAL_PROTOCOLS = ("", "file", "local")
T = TypeVar("T")


def path_text(path: Any) -> str:
    """The checks on ``path`` that need no storage access: a non-blank string not ending in ``/``."""
    if isinstance(path, ObjectStoragePath):
        return str(path)
    if not isinstance(path, str) or not path.strip():
        raise LeadpipeConfigError(f"path must be a file path or URL, got {path!r}")
    if path.strip().endswith("/"):
        raise LeadpipeConfigError(f"path must name a file, not a folder: {path!r}")
    return path.strip()


def target(path: Any, conn_id: str | None = None) -> ObjectStoragePath:
    """``path`` as an :class:`ObjectStoragePath` that names a file (not a folder)."""
    if isinstance(path, ObjectStoragePath):
        return path
    result = ObjectStoragePath(path_text(path), conn_id=conn_id or None)
    if not result.name or (result.protocol in _LOCAL_PROTOCOLS and result.is_dir()):
        raise LeadpipeConfigError(f"path must name a file, not a folder: {path!r}")
    return result


class AtomicFile:
    """Write ``target`` under a hidden temporary name beside it; move it into place when complete.

    A failure (or :meth:`discard` from ``on_kill``) removes the temporary object, so nothing is
    ever left at ``target`` half-written.
    """

    def __init__(self, target: ObjectStoragePath, *, use_gzip: bool, log: Any) -> None:
        self.target = target
        self.use_gzip = use_gzip
        self.log = log
        self.temporary: ObjectStoragePath | None = None

    def write(self, produce: Callable[[IO[bytes]], T]) -> T:
        """Call ``produce(out)`` on the temporary file, then move it to ``target``."""
        temporary = self.target.with_name(f".{self.target.name}.{uuid.uuid4().hex[:12]}.tmp")
        if self.target.protocol in _LOCAL_PROTOCOLS:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = temporary
        try:
            with temporary.open("wb") as raw:
                out = cast(
                    "IO[bytes]",
                    gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) if self.use_gzip else raw,
                )
                try:
                    result = produce(out)
                finally:
                    if self.use_gzip:
                        out.close()
            temporary.move(self.target)
        except BaseException:
            self.discard()
            raise
        finally:
            self.temporary = None
        return result

    def discard(self) -> None:
        """Remove the temporary object, if any (best effort)."""
        temporary = self.temporary
        if temporary is None:
            return
        try:
            temporary.unlink(missing_ok=True)
        except Exception as exc:  # best effort: the original error matters more
            self.log.warning("Could not remove the temporary file %s: %s", temporary, exc)
