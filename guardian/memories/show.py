"""One memory in full at a point in time: a snapshot (its one row looked up), or the store now (its
one file read). The memory's file name comes from its ID, so nothing else is read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from guardian.errors import UsageError
from guardian.format.layout import GOB_EXT, GZ_EXT, collection_dir_name, document_stem, metadata_file_name
from guardian.memories.filelists import FileLists
from guardian.memories.filesets import FileSet, name_collection, read_held, store_folders
from guardian.memories.points import STORE, NotFound, iso
from guardian.memories.versions import Version
from guardian.snapshots.repository import Repository


@dataclass
class MemoryAt:
    point: str        # the snapshot it comes from, or STORE
    time: datetime
    version: Version

    def to_dict(self) -> dict:
        return {"snapshot": self.point, "time": iso(self.time), **self.version.to_dict(full=True)}


def candidates_in_snapshot(repo: Repository, snapshot_id: str, memory_id: str,
                           collection: str | None) -> FileSet:
    """The snapshot's files that can hold the memory (its file name, in each collection)."""
    files = FileLists(repo).open(snapshot_id)
    manifest = files.manifest
    stem = document_stem(memory_id)
    folders = [collection_dir_name(collection)] if collection is not None else [c.dir for c in manifest.collections]
    rows = files.rows_at([f"{folder}/{stem}{ext}" for folder in folders for ext in (GOB_EXT, GZ_EXT)])
    held = {path: row[5] for path, row in rows.items() if row is not None and row[5]}
    names = {info.dir: info.name for info in manifest.collections if info.name}
    return FileSet(snapshot_id, manifest.time, held, names, repo)


def candidates_in_store(store: Path, memory_id: str, collection: str | None, now: datetime) -> FileSet:
    """The store's files that can hold the memory, read now."""
    stem = document_stem(memory_id)
    found = FileSet(STORE, now, {}, {})
    for folder, fd in store_folders(store, {collection_dir_name(collection)} if collection is not None else None):
        name_collection(found, fd, folder, metadata_file_name(False))
        name_collection(found, fd, folder, metadata_file_name(True))
        for ext in (GOB_EXT, GZ_EXT):
            read_held(found, fd, folder, f"{stem}{ext}")
    return found


def memory_at(files: FileSet, memory_id: str, collection: str | None) -> MemoryAt:
    """The memory among ``files`` (decoded); NotFound when none holds it, UsageError when it is in
    several collections and none was named."""
    documents: dict = {}
    found, unreadable = [], []
    for path, digest in sorted(files.files.items()):
        version = files.version(path, digest, documents)
        if isinstance(version, dict):
            unreadable.append(version)
        elif version.id == memory_id:
            found.append(version)
    where = "the store now" if files.point == STORE else f"snapshot {files.point}"
    if not found:
        why = f" ({unreadable[0]['path']} cannot be read: {unreadable[0]['reason']})" if unreadable else ""
        scope = f" in collection {collection!r}" if collection is not None else ""
        raise NotFound(f"memory {memory_id!r} is not in {where}{scope}{why}",
                       "see its versions with `guardian history ID`, or look for it with `guardian find`")
    if len(found) > 1:
        names = ", ".join(repr(v.collection) for v in found)
        raise UsageError(f"memory {memory_id!r} is in {len(found)} collections of {where}: {names}",
                         "pass --collection NAME to pick one (each is its own memory)")
    return MemoryAt(files.point, files.time, found[0])
