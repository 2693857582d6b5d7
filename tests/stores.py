"""Real fsspec stores for the storage tests: the local disk and an object store (``memory://``).

fsspec's memory filesystem behaves like an object store: folders are prefixes of object keys, and
moving a file onto a prefix that holds objects puts it *inside* (as S3, GCS and Azure do through
their fsspec implementations). Airflow resolves ``memory://`` once it is attached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath
from fsspec.implementations.memory import MemoryFileSystem

try:
    from airflow.sdk.io.store import attach
except ImportError:  # Airflow 2.x
    from airflow.io.store import attach  # type: ignore[no-redef]

STORES = ("file", "memory")


@pytest.fixture
def memory_store() -> Iterator[MemoryFileSystem]:
    """An empty ``memory://`` object store, attached for ObjectStoragePath (fsspec shares one store)."""
    fs = MemoryFileSystem()
    attach("memory", fs=fs)
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]
    yield fs
    fs.store.clear()
    fs.pseudo_dirs[:] = [""]


@pytest.fixture(params=STORES)
def store_root(request, tmp_path: Path) -> Callable[[str], ObjectStoragePath]:
    """``root("a/b.jsonl")`` -> an ObjectStoragePath under an empty folder of the store under test."""
    if request.param == "memory":
        request.getfixturevalue("memory_store")
        base = "memory://bucket/leadpipe"
    else:
        base = f"file://{tmp_path}"
    return lambda relative="": ObjectStoragePath(f"{base}/{relative}" if relative else base)


def listing(root: ObjectStoragePath) -> list[str]:
    """Every file under ``root``, relative to it, hidden ones included."""
    prefix = str(root.path).rstrip("/") + "/"
    return sorted(str(found).removeprefix(prefix) for found in root.fs.find(root.path))


def put(path: ObjectStoragePath, data: bytes) -> None:
    """Write a file as another program would (local folders are created; object stores have none)."""
    if path.protocol == "file":
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
