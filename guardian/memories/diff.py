"""What changed between two points in time, memory by memory.

The two file sets are compared by hash (no blob read); only the document files that differ are
decoded, on each side, and matched by (collection, ID): on one side only, a memory was added or
removed; on both with other content, metadata or embedding, it changed. Bytes that differ while
the document is the same (the same memory written compressed) are no change of the memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from guardian.memories.filelists import FileList, FileLists, kept
from guardian.memories.filesets import FileSet, snapshot_fileset
from guardian.memories.points import STORE, iso
from guardian.memories.versions import Version, changed_fields, changed_keys, document_file
from guardian.snapshots.manifest import validated_rows

CHANGE_ORDER = {"added": 0, "removed": 1, "changed": 2}


@dataclass
class Change:
    change: str                     # added | removed | changed
    before: Version | None
    after: Version | None
    fields: list[str] = field(default_factory=list)   # content, metadata, embedding (changed only)

    @property
    def version(self) -> Version:
        return self.after or self.before

    def to_dict(self) -> dict:
        version = self.version
        keys = changed_keys(self.before.document.metadata, self.after.document.metadata) \
            if self.change == "changed" else []
        return {"collection": version.collection, "id": version.id, "change": self.change,
                "fields": list(self.fields), "title": version.title, "metadata_keys": keys,
                "facts": version.facts(),
                "before": self.before.sha256 if self.before else None,
                "after": self.after.sha256 if self.after else None}


@dataclass
class Diff:
    from_point: str
    from_time: datetime
    to_point: str
    to_time: datetime
    changes: list[Change]
    unreadable: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CHANGE_ORDER, 0)
        for change in self.changes:
            counts[change.change] += 1
        return counts

    def to_dict(self) -> dict:
        return {"from": self.from_point, "to": self.to_point, "from_time": iso(self.from_time),
                "to_time": iso(self.to_time), "changes": [change.to_dict() for change in self.changes],
                "unreadable": self.unreadable}


def differing_files(old: dict[str, str], new: dict[str, str], dirs: set[str] | None = None) -> list[str]:
    """The document files whose content differs between two file sets (or that only one holds),
    sorted; ``dirs``: only in these collection folders. Pure."""
    paths = [path for path, digest in old.items() if new.get(path) != digest]
    paths += [path for path in new if path not in old]
    found = []
    for path in paths:
        where = document_file(path)
        if where is not None and (dirs is None or where.dir in dirs):
            found.append(path)
    return sorted(found)


def classify(before: dict[tuple[str, str], Version], after: dict[tuple[str, str], Version]) -> list[Change]:
    """The changes between the versions read on each side, keyed by (collection folder, ID). Pure."""
    changes = []
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old is None:
            changes.append(Change("added", None, new))
        elif new is None:
            changes.append(Change("removed", old, None))
        else:
            fields = changed_fields(old.document, new.document)
            if fields:
                changes.append(Change("changed", old, new, fields))
    changes.sort(key=lambda c: (c.version.collection, CHANGE_ORDER[c.change], c.version.title, c.version.id))
    return changes


def versions_of(side: FileSet, paths: list[str], unreadable: list[dict]) -> dict[tuple[str, str], Version]:
    """Decode ``side``'s content of each path it holds (a blob at most once)."""
    found: dict[tuple[str, str], Version] = {}
    documents: dict = {}
    for path in paths:
        digest = side.files.get(path)
        if digest is None:
            continue
        version = side.version(path, digest, documents)
        if isinstance(version, dict):
            unreadable.append(version)
        else:
            found[version.key] = version
    return found


def one_sided(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The base positions kept by exactly one of two snapshots' runs, as (start, end) ranges. Pure."""
    points = sorted({point for start, end in a + b for point in (start, end)})
    found: list[tuple[int, int]] = []
    for low, high in zip(points, points[1:]):
        if kept(a, low) != kept(b, low):
            if found and found[-1][1] == low:
                found[-1] = (found[-1][0], high)
            else:
                found.append((low, high))
    return found


def snapshot_pair(lists: FileLists, old_id: str, new_id: str) -> tuple[FileSet, FileSet]:
    """Two snapshots' file sets, limited to the files that can differ. Against one base list (the
    common case: continuous capture writes many snapshots against one) those are the rows either
    writes out and the base rows one keeps and the other does not, so the 100k rows both keep are
    never looked at; across base lists, every row's hash is compared."""
    old, new = lists.open(old_id), lists.open(new_id)
    if old.base_digest is None or old.base_digest != new.base_digest:
        return every_row_pair(old, new)
    paths = set(old.written()) | set(new.written())
    base_rows = lists.base(old.base_digest).rows
    for start, end in one_sided(old.runs(), new.runs()):
        paths.update(row[0] for row in base_rows[start:end])
    return tuple(snapshot_fileset(side, validated_rows([row for row in map(side.lookup, sorted(paths)) if row],
                                                       side.id))
                 for side in (old, new))


def every_row_pair(old: FileList, new: FileList) -> tuple[FileSet, FileSet]:
    """:func:`snapshot_pair` across base lists: every row's hash compared, the rows that differ kept."""
    old_rows, new_rows = old.row_index(), new.row_index()
    paths = differing_files({p: r[5] for p, r in old_rows.items()}, {p: r[5] for p, r in new_rows.items()})
    return tuple(snapshot_fileset(side, validated_rows([rows[p] for p in paths if p in rows], side.id))
                 for side, rows in ((old, old_rows), (new, new_rows)))


def diff_filesets(old: FileSet, new: FileSet, dirs: set[str] | None = None) -> Diff:
    paths = differing_files(old.files, new.files, dirs)
    unreadable = [u for u in old.unreadable + new.unreadable if dirs is None or document_file(u["path"]).dir in dirs]
    before = versions_of(old, paths, unreadable)
    after = versions_of(new, paths, unreadable)
    return Diff(old.point, old.time, new.point if new.point != STORE else STORE, new.time,
                classify(before, after), unreadable)
