"""Every version of one memory across the snapshots: when it appeared, each change, when it went.

The memory's file is known from its ID (``<collection>/<sha256(id)[:8]>.gob``), so each snapshot
costs the lookup of that one row in its file list (see ``filelists``), not a read of the whole
list; each distinct blob the row names across all snapshots is decoded once. Without a collection
the memory is looked for in every collection (the same ID in two collections is two memories:
each has its own versions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from guardian.errors import SnapshotError
from guardian.format.layout import GOB_EXT, GZ_EXT, collection_dir_name, document_stem
from guardian.memories.filelists import FileLists
from guardian.memories.filesets import FileSet
from guardian.memories.points import NotFound, iso, snapshot_time
from guardian.memories.versions import Version, changed_fields, changed_keys
from guardian.snapshots.repository import Repository


@dataclass
class Sighting:
    """Where one snapshot holds a memory's file, per collection folder: (path, sha256)."""

    snapshot: str
    files: dict[str, tuple[str, str]]


@dataclass
class Step:
    """One entry of a memory's history: a version appearing (added, changed) or the memory going."""

    snapshot: str
    change: str                 # added | changed | removed
    version: Version            # the new version; for ``removed``, the last one
    previous: Version | None = None
    last_seen: str | None = None   # the last snapshot holding this version (added/changed)

    @property
    def fields(self) -> list[str]:
        return changed_fields(self.previous.document, self.version.document) if self.change == "changed" else []

    def to_dict(self) -> dict:
        return {"snapshot": self.snapshot, "time": iso(snapshot_time(self.snapshot)), "change": self.change,
                "sha256": None if self.change == "removed" else self.version.sha256,
                "title": self.version.title, "collection": self.version.collection, "id": self.version.id,
                "fields": self.fields,
                "metadata_keys": changed_keys(self.previous.document.metadata, self.version.document.metadata)
                if self.change == "changed" else [],
                "last_seen": self.last_seen}


@dataclass
class History:
    memory_id: str
    steps: list[Step]
    snapshots: int                                   # snapshots looked at
    skipped: list[dict] = field(default_factory=list)   # {"snapshot", "reason"}: damaged ones
    unreadable: list[dict] = field(default_factory=list)   # {"point", "path", "sha256", "reason"}

    def to_list(self) -> list[dict]:
        return [step.to_dict() for step in self.steps]


def sightings(lists: FileLists, snapshot_ids: list[str], memory_id: str, collection: str | None,
              skipped: list[dict]) -> tuple[list[Sighting], dict[str, str]]:
    """Where each snapshot holds the memory's file (in each collection, or in ``collection``), and
    the collections' names; damaged snapshots go to ``skipped``."""
    stem = document_stem(memory_id)
    only = collection_dir_name(collection) if collection is not None else None
    found, names = [], {}
    for snapshot_id in snapshot_ids:
        try:
            files = lists.open(snapshot_id)
            manifest = files.manifest
            folders = [only] if only is not None else [info.dir for info in manifest.collections]
            exts = (GZ_EXT, GOB_EXT) if manifest.compress else (GOB_EXT, GZ_EXT)
            rows = files.rows_at([f"{folder}/{stem}{ext}" for folder in folders for ext in exts])
        except SnapshotError as exc:   # a damaged manifest, or its base list
            skipped.append({"snapshot": snapshot_id, "reason": exc.message})
            continue
        names.update((info.dir, info.name) for info in manifest.collections if info.name)
        held = {}
        for folder in folders:
            for ext in exts:
                row = rows[f"{folder}/{stem}{ext}"]
                if row is not None and row[5]:
                    held[folder] = (row[0], row[5])
                    break
        found.append(Sighting(snapshot_id, held))
    return found, names


def timeline(seen: list[Sighting], versions: dict[tuple[str, str], Version | None], memory_id: str) -> list[Step]:
    """The steps of each collection's copy of the memory, oldest first. ``versions[(folder, sha256)]``
    is the version a blob holds there: None when it cannot be read (that snapshot tells nothing
    about the memory, neither a change nor its removal). A document with another ID sharing the
    file name is not this memory. Pure."""
    steps: list[Step] = []
    folders = sorted({folder for sighting in seen for folder in sighting.files})
    for folder in folders:
        current: Step | None = None
        previous_snapshot = None
        for sighting in seen:
            held = sighting.files.get(folder)
            if held is not None and versions.get((folder, held[1])) is None:
                continue   # unreadable here
            version = versions[(folder, held[1])] if held else None
            if version is not None and version.id != memory_id:
                version = None
            if current is not None and current.change != "removed" and \
                    (version is None or version.sha256 != current.version.sha256):
                current.last_seen = previous_snapshot
            if version is None:
                if current is not None and current.change != "removed":
                    current = Step(sighting.snapshot, "removed", current.version, current.version)
                    steps.append(current)
            elif current is None or current.change == "removed":
                current = Step(sighting.snapshot, "added", version)
                steps.append(current)
            elif version.sha256 != current.version.sha256:
                current = Step(sighting.snapshot, "changed", version, current.version)
                steps.append(current)
            previous_snapshot = sighting.snapshot
        if current is not None and current.change != "removed":
            current.last_seen = previous_snapshot
    steps.sort(key=lambda step: (step.snapshot, step.version.collection))
    return steps


def memory_history(repo: Repository, memory_id: str, collection: str | None = None,
                   snapshot_ids: list[str] | None = None) -> History:
    ids = repo.list_ids() if snapshot_ids is None else snapshot_ids
    if not ids:
        raise NotFound("there are no snapshots of this store yet", "take one with `guardian snapshot`")
    skipped: list[dict] = []
    lists = FileLists(repo)
    seen, names = sightings(lists, ids, memory_id, collection, skipped)
    reader = FileSet("", datetime.min, {}, names, repo)
    documents: dict = {}
    versions: dict[tuple[str, str], Version | None] = {}
    unreadable = []
    for sighting in seen:
        for folder, (path, digest) in sighting.files.items():
            if (folder, digest) not in versions:
                version = reader.version(path, digest, documents)
                if isinstance(version, dict):
                    unreadable.append({**version, "point": sighting.snapshot})
                    version = None
                versions[(folder, digest)] = version
    steps = timeline(seen, versions, memory_id)
    if not steps:
        where = f" of collection {collection!r}" if collection is not None else ""
        raise NotFound(f"memory {memory_id!r} is in none of the {len(seen)} snapshots{where}",
                       "check the ID with `guardian find TEXT` (it finds memories by their words)")
    return History(memory_id, steps, len(seen), skipped, unreadable)
