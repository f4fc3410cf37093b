"""Fixtures for the snapshot tests: state paths for a copied fixture store, tree comparison."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from guardian.local.paths import StatePaths


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every regular file under root (relative path -> bytes); symlinks as 'LINK:target'."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            found[rel] = f"LINK:{os.readlink(path)}".encode() if os.path.islink(path) else Path(path).read_bytes()
    return found


def age_files(root: Path, seconds: float = 3600) -> None:
    """Set every file's mtime in the past (so the stat cache may trust it)."""
    past = time.time() - seconds
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (past, past), follow_symlinks=False)


def damage_blob(repo, digest: str) -> None:
    """Overwrite a stored blob's compressed bytes in place (inside its pack): a damaged blob."""
    path, offset, length = repo.blob_location(digest)
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write((b"\x28\xb5\x2f\xfd garbage" * length)[:length])


def drop_blob(repo, digest: str) -> None:
    """Take one blob out of the repository (its pack rewritten without it): a missing blob."""
    pack_id = repo.blob_location(digest)[0].name[:-len(".pack")]
    repo.repack({pack_id: {e[0] for e in repo.pack_entries(pack_id)} - {digest}})


class Clock:
    """A settable UTC clock for snapshot times."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(timezone.utc) - timedelta(hours=10)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def store_paths(any_store, state_dir) -> StatePaths:
    age_files(any_store)
    return StatePaths.for_store(any_store, state_dir)


@pytest.fixture
def plain_paths(plain_store, state_dir) -> StatePaths:
    age_files(plain_store)
    return StatePaths.for_store(plain_store, state_dir)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def doc_bytes(text: str) -> bytes:
    """A valid chromem document holding ``text`` (snapshots never keep bytes chromem would refuse)."""
    from guardian.format.chromem import Document, encode_document

    return encode_document(Document(id=text, content=text))
