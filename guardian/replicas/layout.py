"""What a replica holds, and how its records and object lists are encoded.

Keys on the target::

    guardian-replica.json      header (plaintext): format, encrypted or not, how the key is derived,
                               a key check value (so a wrong key is refused before anything is read),
                               the owner (the one store that pushes here: guardian.replicas.owner)
    data/…                     one object per local repository file (opaque, immutable); encrypted ones
                               sealed in units, a blob each (guardian.replicas.units)
    lists/…                    object lists shared by many records (see below), and a second copy of
                               each base file list the snapshots' manifests are encoded against
                               (``dict-…``: every file of a snapshot depends on it)
    snapshots/<id>             one record per snapshot, written LAST: the commit point

A record holds the snapshot's manifest file (as the local repository stores it) and the list of
data objects the snapshot needs, each with the sha256 and size of its plaintext. To keep records
of a large store small, that list is written as a delta (added entries, removed paths) against a
*base list* object, exactly as manifests are deltas against a base file list: every record needs at
most its own base, so deleting any record never breaks another one.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone

import zstandard

from guardian.errors import ReplicaError

HEADER_KEY = "guardian-replica.json"
DATA_PREFIX = "data/"
LISTS_PREFIX = "lists/"
SNAPSHOTS_PREFIX = "snapshots/"
FORMAT = 1
RECORD_MAGIC = b"GRR1"
MAX_PLAIN = 4 << 30
REL_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
ID_PATTERN = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{4}$")


def _compressor() -> zstandard.ZstdCompressor:
    """Records and lists carry zstd's content checksum: on a plain replica nothing else would
    catch a flipped byte that still decodes (a count, a hash in an entry)."""
    return zstandard.ZstdCompressor(level=3, write_checksum=True)


def data_key(name: str, encrypted: bool) -> str:
    """``data/<name>``; keyed-hash names are fanned out by their first two characters."""
    return f"{DATA_PREFIX}{name[:2]}/{name}" if encrypted else f"{DATA_PREFIX}{name}"


def record_key(snapshot_id: str) -> str:
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}"


def dictionary_name(digest: str) -> str:
    """The name (before sealing) of the copy of base file list ``digest`` under ``lists/``."""
    return f"dict-{digest}"


def list_name(encoded: bytes) -> str:
    """The name (before sealing) of an object list: its content hash."""
    return "list-" + hashlib.sha256(encoded).hexdigest()


def snapshot_ids(keys) -> list[str]:
    """The ids of the records among ``keys`` (oldest first); anything else is ignored."""
    ids = (key[len(SNAPSHOTS_PREFIX):] for key in keys if key.startswith(SNAPSHOTS_PREFIX))
    return sorted(i for i in ids if ID_PATTERN.match(i))


def id_time(snapshot_id: str) -> datetime:
    return datetime.strptime(snapshot_id[:23], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)


def check_rel(rel: str) -> str:
    """A repository-relative path from a replica: refused unless it is plainly inside the repository."""
    if not isinstance(rel, str) or not REL_PATTERN.match(rel) or any(p in (".", "..") for p in rel.split("/")):
        raise ReplicaError(f"replica record names a bad path {rel!r} (damaged or tampered)",
                           "run `guardian verify --from …`; restore another snapshot")
    return rel


@dataclass
class Entry:
    """One data object of a snapshot: the local repository path, plaintext sha256 and size."""

    rel: str
    sha256: str
    size: int

    def row(self) -> list:
        return [self.rel, self.sha256, self.size]


def _entries(rows, what: str) -> list[Entry]:
    try:
        return [Entry(check_rel(rel), str(sha), int(size)) for rel, sha, size in rows]
    except (TypeError, ValueError):
        raise ReplicaError(f"replica {what} is damaged (bad entry)", "run `guardian verify --from …`") from None


def encode_list(entries: list[Entry]) -> bytes:
    rows = [e.row() for e in sorted(entries, key=lambda e: e.rel)]
    return _compressor().compress(json.dumps(rows, separators=(",", ":")).encode())


def decode_list(data: bytes) -> list[Entry]:
    try:
        rows = json.loads(zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_PLAIN))
    except (zstandard.ZstdError, ValueError):
        raise ReplicaError("replica object list is damaged", "run `guardian verify --from …`") from None
    return _entries(rows, "object list")


def encode_dictionary(raw: bytes) -> bytes:
    """A base file list (a blob of the local repository) as its copy under ``lists/`` holds it."""
    return _compressor().compress(raw)


def decode_dictionary(data: bytes, digest: str) -> bytes:
    """The base file list ``digest`` from its copy; ReplicaError unless it matches its hash."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_PLAIN)
    except zstandard.ZstdError:
        raw = b""
    if hashlib.sha256(raw).hexdigest() != digest:
        raise ReplicaError(f"replica copy of base file list {digest[:12]} is damaged", "run `guardian replicate`")
    return raw


@dataclass
class Record:
    """A snapshot on the replica."""

    id: str
    time: datetime
    documents: int
    collections: list[str]
    manifest_rel: str
    manifest_sha256: str
    manifest: bytes = b""
    base: str | None = None                                # key of the base list object
    added: list[Entry] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def entries(self, base_entries: list[Entry] | None) -> list[Entry]:
        """Every data object this snapshot needs (the base with the delta applied)."""
        removed = set(self.removed)
        merged = {e.rel: e for e in base_entries or () if e.rel not in removed}
        merged.update((e.rel, e) for e in self.added)
        return sorted(merged.values(), key=lambda e: e.rel)

    def summary(self) -> dict:
        return {"id": self.id, "time_utc": self.time.isoformat().replace("+00:00", "Z"),
                "time_local": self.time.astimezone().isoformat(timespec="seconds"),
                "documents": self.documents, "collections": self.collections}


def encode_record(record: Record) -> bytes:
    header = json.dumps({
        "format": FORMAT, "id": record.id, "time": record.time.isoformat(), "documents": record.documents,
        "collections": record.collections, "manifest": record.manifest_rel,
        "manifest_sha256": record.manifest_sha256, "base": record.base,
        "added": [e.row() for e in record.added], "removed": record.removed,
    }, separators=(",", ":")).encode()
    raw = RECORD_MAGIC + struct.pack(">I", len(header)) + header + record.manifest
    return _compressor().compress(raw)


def decode_record(data: bytes, snapshot_id: str) -> Record:
    bad = ReplicaError(f"replica snapshot {snapshot_id} is damaged (record unreadable)",
                       "run `guardian verify --from …`; pick another --at")
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_PLAIN)
        if not raw.startswith(RECORD_MAGIC) or len(raw) < 8:
            raise bad
        (length,) = struct.unpack(">I", raw[4:8])
        header = json.loads(raw[8:8 + length])
        record = Record(
            id=header["id"], time=datetime.fromisoformat(header["time"]), documents=int(header["documents"]),
            collections=[str(c) for c in header["collections"]], manifest_rel=check_rel(header["manifest"]),
            manifest_sha256=str(header["manifest_sha256"]), manifest=raw[8 + length:],
            base=header["base"], added=_entries(header["added"], f"snapshot {snapshot_id}"),
            removed=[check_rel(r) for r in header["removed"]])
    except ReplicaError:
        raise
    except (zstandard.ZstdError, ValueError, KeyError, TypeError, struct.error):
        raise bad from None
    if record.id != snapshot_id:
        raise ReplicaError(f"replica snapshot {snapshot_id} claims to be {record.id} (tampered)",
                           "run `guardian verify --from …`")
    if record.base is not None and not (isinstance(record.base, str) and record.base.startswith(LISTS_PREFIX)):
        raise bad
    return record
