"""The memories in any snapshot whose content or metadata match, with the snapshots they were in:
restic's ``find``, for memories.

Snapshots share their blobs (content-addressed: a memory unchanged across 100 snapshots is one
blob) and their base lists, so the search is planned over the repository, not per snapshot:

1. each snapshot's file list is opened as stored (``filelists``): the base rows it keeps (runs of
   positions) and the rows it writes out; the union of those is every (path, blob) any snapshot
   holds, and each distinct blob is read once, pack by pack;
2. a blob is decoded only when its bytes can match (the words, the key and value of ``--where``,
   are in them: gob keeps strings as their bytes), then matched exactly;
3. for the few (path, blob) pairs that match, which snapshots hold them is worked out from the runs
   (a binary search per base list and snapshot), so the memories' first and last sightings cost
   nothing per unmatched file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from guardian.errors import GuardianError, SnapshotError, UsageError
from guardian.format.chromem import Document, decode_document, gob_stream
from guardian.format.layout import collection_dir_name, document_stem
from guardian.memories.filelists import Base, FileLists
from guardian.memories.points import iso, snapshot_time
from guardian.memories.versions import document_file, title_of
from guardian.snapshots.manifest import HASH_PATTERN
from guardian.snapshots.repository import Repository


# The only characters whose lower case holds an ASCII letter (İ -> i + a dot, the Kelvin sign -> k), as
# UTF-8: a document holding neither can match an ASCII word only where its bytes, lowercased, hold the
# word's (tests/memories/test_find.py checks the list against Unicode).
LOWERS_TO_ASCII = ("\u0130".encode(), "\u212a".encode())


@dataclass(frozen=True)
class FindQuery:
    """What to look for; every part given must match. ``text``: in the content or any metadata
    value, ignoring case; ``where``: metadata keys with exactly these values; ``memory_id``: this ID."""

    text: str | None = None
    where: tuple[tuple[str, str], ...] = ()
    memory_id: str | None = None
    collection: str | None = None

    def __post_init__(self) -> None:
        if not (self.text or self.where or self.memory_id):
            raise UsageError("nothing to find", "give TEXT, --where KEY=VALUE or --id ID")

    @classmethod
    def parse_where(cls, pairs: list[str]) -> tuple[tuple[str, str], ...]:
        parsed = []
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"--where {pair!r} is not KEY=VALUE", "e.g. --where outcome=success")
            parsed.append((key, value))
        return tuple(parsed)

    @cached_property
    def needles(self) -> list[bytes]:
        """Byte strings every matching document file holds (its gob stream), to skip the others undecoded."""
        found = [part.encode("utf-8", "surrogateescape") for pair in self.where for part in pair if part]
        if self.memory_id:
            found.append(self.memory_id.encode("utf-8", "surrogateescape"))
        return found

    @cached_property
    def ascii_word(self) -> bytes | None:
        """The text, lowercased, when it is ASCII: looked for in a document's lowercased bytes."""
        return self.text.lower().encode() if self.text and self.text.isascii() else None

    def could_match(self, stream: bytes) -> bool:
        """False only when ``stream`` (a document's gob bytes) cannot match: a cheap look at bytes
        (other words than ASCII ones are decided on the decoded document)."""
        for needle in self.needles:
            if needle not in stream:
                return False
        word = self.ascii_word
        if word is None or word in stream.lower():
            return True
        return LOWERS_TO_ASCII[0] in stream or LOWERS_TO_ASCII[1] in stream

    def matched(self, document: Document) -> list[str]:
        """What of ``document`` matches ("content", "metadata:KEY", "id"); empty when it does not."""
        if self.memory_id is not None and document.id != self.memory_id:
            return []
        if any(document.metadata.get(key) != value for key, value in self.where):
            return []
        parts = [f"metadata:{key}" for key, _ in self.where] + (["id"] if self.memory_id else [])
        if self.text:
            needle = self.text.lower()
            hits = (["content"] if needle in document.content.lower() else []) + \
                [f"metadata:{key}" for key, value in sorted(document.metadata.items()) if needle in value.lower()]
            if not hits:
                return []
            parts += hits
        return sorted(set(parts))


@dataclass
class Match:
    """One memory that matched, over the snapshots that held a matching version of it."""

    dir: str
    collection: str
    id: str
    title: str
    matched: list[str]
    first_seen: str
    last_seen: str
    snapshots: int
    versions: int
    in_latest: bool

    def to_dict(self) -> dict:
        return {"collection": self.collection, "id": self.id, "title": self.title, "matched": self.matched,
                "first_seen": self.first_seen, "first_seen_time": iso(snapshot_time(self.first_seen)),
                "last_seen": self.last_seen, "last_seen_time": iso(snapshot_time(self.last_seen)),
                "snapshots": self.snapshots, "versions": self.versions, "in_latest": self.in_latest}


@dataclass
class Found:
    matches: list[Match]
    snapshots: int
    skipped: list[dict] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    blobs_read: int = 0
    bytes_read: int = 0      # the blobs' content (decompressed) bytes
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"matches": [match.to_dict() for match in self.matches], "snapshots": self.snapshots,
                "skipped": self.skipped, "unreadable": self.unreadable, "blobs_read": self.blobs_read,
                "bytes_read": self.bytes_read}


@dataclass
class Held:
    """What the snapshots hold, as stored: per base list its rows and, per snapshot using it, the
    runs it keeps; per snapshot the (path, sha256) of the rows it writes out."""

    snapshots: list[str]
    bases: dict[str, tuple[Base, list[tuple[int, np.ndarray, np.ndarray]]]]   # digest -> base, [(i, starts, ends)]
    written: list[tuple[int, list[tuple[str, str]]]]                            # (snapshot index, pairs)
    names: dict[str, str]


def gather(lists: FileLists, snapshot_ids: list[str], skipped: list[dict]) -> Held:
    held = Held([], {}, [], {})
    for snapshot_id in snapshot_ids:
        try:
            files = lists.open(snapshot_id)
            base = lists.base(files.base_digest) if files.base_digest is not None else None
            runs = files.kept_runs(len(base.rows)) if base is not None else []
            written = files.contents()
        except SnapshotError as exc:
            skipped.append({"snapshot": snapshot_id, "reason": exc.message})
            continue
        index = len(held.snapshots)
        held.snapshots.append(snapshot_id)
        held.names.update((info.dir, info.name) for info in files.manifest.collections if info.name)
        if base is not None:
            _, users = held.bases.setdefault(base.digest, (base, []))
            users.append((index, np.array([start for start, _ in runs], dtype=np.int64),
                          np.array([end for _, end in runs], dtype=np.int64)))
        if written:
            held.written.append((index, written))
    return held


def _kept(starts: np.ndarray, ends: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which base positions fall in one of the runs (sorted by start, never overlapping)."""
    if not len(starts):
        return np.zeros(len(positions), dtype=bool)
    at = np.searchsorted(starts, positions, side="right") - 1
    return (at >= 0) & (positions < ends[np.maximum(at, 0)])


def candidates(held: Held, query: FindQuery) -> dict[str, set[str]]:
    """blob -> the document paths holding it in any snapshot (filtered by collection and ID)."""
    folder = collection_dir_name(query.collection) if query.collection is not None else None
    stem = document_stem(query.memory_id) if query.memory_id is not None else None
    pairs: set[tuple[str, str]] = set()
    for base, users in held.bases.values():
        rows = base.rows
        kept = np.zeros(len(rows) + 1, dtype=np.int32)
        for _, starts, ends in users:
            np.add.at(kept, starts, 1)
            np.add.at(kept, ends, -1)
        pairs.update((rows[p][0], rows[p][5]) for p in np.flatnonzero(np.cumsum(kept[:-1]) > 0).tolist()
                     if rows[p][5])
    for _, written in held.written:
        pairs.update(written)
    wanted: dict[str, bool] = {}
    found: dict[str, set[str]] = {}
    for path, digest in pairs:
        ok = wanted.get(path)
        if ok is None:
            where = document_file(path) if isinstance(path, str) else None
            ok = wanted[path] = where is not None and (folder is None or where.dir == folder) and \
                (stem is None or where.stem == stem)
        if ok:
            if not (isinstance(digest, str) and HASH_PATTERN.match(digest)):
                raise SnapshotError(f"a base list names {path!r} with an invalid hash (damaged or tampered)")
            found.setdefault(digest, set()).add(path)
    return found


def sightings(held: Held, matching: set[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """(path, blob) -> the indexes of the snapshots holding it, for the matching pairs only."""
    seen: dict[tuple[str, str], list] = {pair: [] for pair in matching}
    for base, users in held.bases.values():
        rows = base.rows
        positions = np.array(sorted(i for i in (base.positions.get(path) for path, _ in matching)
                                    if i is not None and (rows[i][0], rows[i][5]) in matching), dtype=np.int64)
        if not len(positions):
            continue
        for index, starts, ends in users:
            for position in positions[_kept(starts, ends, positions)].tolist():
                seen[(rows[position][0], rows[position][5])].append(index)
    for index, written in held.written:
        for pair in written:
            if pair in seen:
                seen[pair].append(index)
    return {pair: np.unique(np.array(indexes, dtype=np.int64)) for pair, indexes in seen.items()}


def find_memories(repo: Repository, query: FindQuery, snapshot_ids: list[str] | None = None) -> Found:
    started = time.perf_counter()
    ids = repo.list_ids() if snapshot_ids is None else snapshot_ids
    skipped: list[dict] = []
    held = gather(FileLists(repo), ids, skipped)
    wanted = candidates(held, query)
    found = Found([], len(held.snapshots), skipped)
    hits: dict[str, tuple[Document, list[str]]] = {}
    for digest, data in repo.iter_blobs(sorted(wanted)):
        found.blobs_read += 1
        found.bytes_read += len(data)
        try:
            if not query.could_match(gob_stream(data)):
                continue
            document = decode_document(data)
        except GuardianError as exc:
            found.unreadable.append({"path": sorted(wanted[digest])[0], "sha256": digest, "reason": exc.message})
            continue
        parts = query.matched(document)
        if parts:
            hits[digest] = (document, parts)
    found.matches = matches(held, wanted, hits)
    found.seconds = time.perf_counter() - started
    return found


def matches(held: Held, wanted: dict[str, set[str]], hits: dict[str, tuple[Document, list[str]]]) -> list[Match]:
    """The matching versions, gathered per memory (collection folder, ID)."""
    pairs = {(path, digest) for digest in hits for path in wanted[digest]}
    seen = sightings(held, pairs)
    last = len(held.snapshots) - 1
    memories: dict[tuple[str, str], dict] = {}
    for (path, digest), indexes in seen.items():
        if not len(indexes):
            continue
        document, parts = hits[digest]
        folder = document_file(path).dir
        memory = memories.setdefault((folder, document.id), {"first": indexes[0], "last": -1, "count": 0,
                                                             "versions": 0, "parts": set(), "title": ""})
        memory["first"] = min(memory["first"], indexes[0])
        if indexes[-1] >= memory["last"]:
            memory["last"], memory["title"] = indexes[-1], title_of(document.metadata, document.content)
        memory["count"] += len(indexes)
        memory["versions"] += 1
        memory["parts"].update(parts)
    found = [Match(folder, held.names.get(folder) or f"({folder})", memory_id, memory["title"], sorted(memory["parts"]),
                   held.snapshots[memory["first"]], held.snapshots[memory["last"]], memory["count"],
                   memory["versions"], bool(memory["last"] == last))
             for (folder, memory_id), memory in memories.items()]
    found.sort(key=lambda m: (m.collection, m.title, m.id))
    return found
