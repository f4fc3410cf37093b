"""Where the repository holds a good copy of a file: in other snapshots, nearest in time first.

A snapshot can hold no good copy of a file chromem needs: a collection's metadata lost in the second
before its repair (or, in snapshots taken before guardian kept the last good copy, simply missing),
a document first seen cut and never good before, a blob gone bad. A restore of that moment must
still give a store chromem loads when a good copy exists anywhere in the repository, and a take
keeps the last good metadata copy in its snapshot. Both search here.

Metadata is looked up in snapshot headers (each names its collections' metadata blob: no file list
is decoded), documents in file lists. Every candidate blob is read and judged as chromem would
(``store.judge``) before it counts as good; a blob judged once is not read again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from guardian.errors import SnapshotError
from guardian.format import layout
from guardian.snapshots.manifest import Manifest
from guardian.snapshots.repository import Repository
from guardian.store.judge import damage_of, role_of

DEFAULT_MODE = 0o644   # a copy found through a header: the header records no mode (chromem writes 0644)


@dataclass(frozen=True)
class FoundCopy:
    """A good copy of ``path``: where it comes from (for people), the row to write it with, and its
    bytes when they are in no blob yet (a rebuilt metadata file)."""

    path: str
    source: str
    row: list             # [path, size, mode, mtime_ns, inode, hash, flags]
    data: bytes | None = None

    @property
    def digest(self) -> str:
        return self.row[5]


@dataclass
class BlobJudge:
    """Reads and judges blobs once each: ``good(rel, digest)`` is the bytes when chromem would load them
    as ``rel`` (and the blob is present and intact), else None."""

    repo: Repository
    seen: dict[tuple[str, str], bytes | None] = field(default_factory=dict)

    def good(self, rel: str, digest: str | None) -> bytes | None:
        if not digest:
            return None
        key = (role_of(rel), digest)
        if key not in self.seen:
            try:
                data = self.repo.read_blob(digest)
            except SnapshotError:
                data = None
            self.seen[key] = data if data is not None and loads_as(rel, data) else None
        return self.seen[key]


def loads_as(rel: str, data: bytes) -> bool:
    """Would chromem load ``data`` as ``rel``, and (a collection's metadata) does it name the collection?"""
    return damage_of(rel, data) is None and not names_nothing(rel, data)


def names_nothing(rel: str, data: bytes) -> bool:
    """A collection's metadata file that decodes (``damage_of`` found nothing) and names no collection:
    chromem loads the file, then refuses a folder of documents with it."""
    if role_of(rel) != "metadata":
        return False
    from guardian.format.chromem import decode_collection   # loaded by damage_of already

    return not decode_collection(data).name


def search_order(ids: list[str], snapshot_id: str | None) -> list[str]:
    """The other snapshots to search: older ones newest first (the last good copy before the moment),
    then newer ones oldest first (the first good copy after it)."""
    if snapshot_id is None:
        return list(reversed(ids))
    return [i for i in reversed(ids) if i < snapshot_id] + [i for i in ids if i > snapshot_id]


class Snapshots:
    """The repository's other snapshots, each read once: a header (cheap) or a whole manifest, kept by
    id in ``known`` (which the caller may share: verifying every snapshot reads each one once). A
    damaged manifest is None (verify reports it; a search passes over it)."""

    def __init__(self, repo: Repository, known: dict[str, Manifest] | None = None) -> None:
        self.repo = repo
        self.known = {} if known is None else known
        self.damaged: set[str] = set()

    def header(self, snapshot_id: str) -> Manifest | None:
        if snapshot_id not in self.known and snapshot_id not in self.damaged:
            self._read(snapshot_id, self.repo.read_header)
        return self.known.get(snapshot_id)

    def manifest(self, snapshot_id: str) -> Manifest | None:
        held = self.known.get(snapshot_id)
        if (held is None or held.files is None) and snapshot_id not in self.damaged:
            self._read(snapshot_id, self.repo.read_manifest)
        held = self.known.get(snapshot_id)
        return held if held is not None and held.files is not None else None

    def _read(self, snapshot_id: str, read: Callable[[str], Manifest]) -> None:
        try:
            self.known[snapshot_id] = read(snapshot_id)
        except SnapshotError:
            self.damaged.add(snapshot_id)

    def names(self) -> set[str]:
        """Every collection name the snapshots read so far recorded."""
        return {c.name for m in self.known.values() for c in m.collections if c.name}


def metadata_copies(judge: BlobJudge, wanted: Iterable[str], compress: bool, order: Iterable[str],
                    snapshots: Snapshots) -> dict[str, FoundCopy]:
    """Folder -> a good metadata copy for each folder in ``wanted``, from the first snapshot in
    ``order`` whose header names one (of a store read with the same ``compress``)."""
    def copies_in(snapshot_id: str, remaining: set[str]):
        header = snapshots.header(snapshot_id)
        if header is None or header.compress != compress:
            return
        for info in header.collections:
            rel = f"{info.dir}/{layout.metadata_file_name(compress)}"
            data = judge.good(rel, info.metadata_hash) if info.dir in remaining else None
            if data is not None:
                yield info.dir, FoundCopy(rel, f"snapshot {snapshot_id}",
                                          header_row(rel, data, info.metadata_hash, header.time))
    return _first_copies(wanted, order, copies_in)


def header_row(rel: str, data: bytes, digest: str, when: datetime) -> list:
    """A file-list row for a copy known from a header: its size, chromem's mode, the snapshot's time."""
    return [rel, len(data), DEFAULT_MODE, int(when.timestamp() * 1_000_000_000), 0, digest, 0]


def document_copies(judge: BlobJudge, wanted: Iterable[str], order: Iterable[str],
                    snapshots: Snapshots) -> dict[str, FoundCopy]:
    """Path -> a good copy from the first snapshot in ``order`` whose file list has one."""
    def copies_in(snapshot_id: str, remaining: set[str]):
        manifest = snapshots.manifest(snapshot_id)
        for entry in manifest.files if manifest is not None else ():
            if entry.path in remaining and judge.good(entry.path, entry.hash) is not None:
                yield entry.path, FoundCopy(entry.path, f"snapshot {snapshot_id}", [*entry.row()[:6], 0])
    return _first_copies(wanted, order, copies_in)


def _first_copies(wanted: Iterable[str], order: Iterable[str],
                  copies_in: Callable[[str, set[str]], Iterable[tuple[str, FoundCopy]]]) -> dict[str, FoundCopy]:
    """Key -> the copy from the first snapshot in ``order`` that has one (``copies_in(id, remaining)``),
    reading no further snapshot once every key has its copy."""
    remaining = set(wanted)
    found: dict[str, FoundCopy] = {}
    for snapshot_id in order:
        if not remaining:
            break
        for key, copy in copies_in(snapshot_id, remaining):
            found[key] = copy
            remaining.discard(key)
    return found
