"""The snapshot record (manifest): what a snapshot holds, how it is encoded, how it is validated.

On disk a manifest is ``MAGIC``, then a zstd-compressed JSON header (time, store, compression,
collections, statistics), then a zstd frame holding the file list. To keep 24 hourly manifests of a
large store small, the file list may be written as a delta against a *base list*: the raw file list of
an earlier snapshot, stored once as an ordinary content-addressed blob (``header.files_dict``).
Runs of unchanged entries are then written as ``[start, count]`` references into the base list, so
they cost almost nothing; there is no chain between manifests (every manifest needs at most its
base blob), so deleting any manifest never breaks another one.

Validation on read refuses any path that is absolute, empty, has ``.`` or ``..`` parts or a NUL,
so a damaged or tampered repository cannot direct a restore outside the store.
"""

from __future__ import annotations

import bisect
import json
import re
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import zstandard

from guardian.errors import SnapshotError

MAGIC = b"GUARDIAN-SNAPSHOT-1\n"
FORMAT_VERSION = 2      # 2: blobs live in pack files and the header names them ("packs")
READABLE_VERSIONS = (1, 2)
HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
ID_PATTERN = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{4}$")
FLAG_UNSTABLE = 1  # the file kept changing while read: not stored from this snapshot's read
FLAG_RACY = 2      # modified too close to the scan: the next snapshot must re-read it
FLAG_DAMAGED = 4   # the file as read would not load in chromem: the row keeps the previous good copy
FLAG_ABSENT = 8    # (with FLAG_DAMAGED) a collection's metadata file was missing: the row keeps its last good copy
FLAG_LOST = 16     # fetched from a damaged replica: its content was lost; the row keeps an older intact copy, or none
NO_CONTENT_FLAGS = FLAG_UNSTABLE | FLAG_DAMAGED | FLAG_LOST  # a row with one of these may have no hash (no good copy)
MAX_HEADER = 64 << 20
MAX_BODY = 2 << 30


@dataclass(frozen=True)
class ManifestEntry:
    path: str          # relative to the store root, "/" separated
    size: int
    mode: int          # permission bits
    mtime_ns: int
    inode: int
    hash: str | None   # sha256 of the content (the blob name); None only when unstable or damaged
    flags: int = 0

    @property
    def unstable(self) -> bool:
        return bool(self.flags & FLAG_UNSTABLE)

    @property
    def damaged(self) -> bool:
        return bool(self.flags & FLAG_DAMAGED)

    @property
    def absent(self) -> bool:
        return bool(self.flags & FLAG_ABSENT)

    @property
    def lost(self) -> bool:
        return bool(self.flags & FLAG_LOST)

    @property
    def racy(self) -> bool:
        return bool(self.flags & FLAG_RACY)

    def row(self) -> list:
        return [self.path, self.size, self.mode, self.mtime_ns, self.inode, self.hash, self.flags]


@dataclass(frozen=True)
class CollectionInfo:
    dir: str
    name: str | None
    documents: int
    metadata_hash: str | None = None

    def to_dict(self) -> dict:
        return {"dir": self.dir, "name": self.name, "documents": self.documents,
                "metadata_hash": self.metadata_hash}


@dataclass
class Manifest:
    id: str
    time: datetime
    store: str
    compress: bool
    collections: list[CollectionInfo] = field(default_factory=list)
    dirs: list[tuple[str, int]] = field(default_factory=list)       # (path, mode) of every folder
    skipped: list[tuple[str, str]] = field(default_factory=list)    # (path, why)
    stats: dict = field(default_factory=dict)
    files_dict: str | None = None
    files: list[ManifestEntry] | None = None  # None when only the header was read
    packs: list[str] | None = None        # the packs holding every blob it names (None: not recorded)
    extra: dict = field(default_factory=dict)   # header fields this version does not know: kept as they are

    @property
    def documents(self) -> int:
        return sum(c.documents for c in self.collections)

    def header(self) -> dict:
        return {
            **self.extra,
            "version": FORMAT_VERSION, "id": self.id,
            "time": self.time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "store": self.store, "compress": self.compress,
            "collections": [c.to_dict() for c in self.collections],
            "dirs": [list(d) for d in self.dirs], "skipped": [list(s) for s in self.skipped],
            "stats": self.stats, "files_dict": self.files_dict, "packs": self.packs,
        }

    def blob_hashes(self) -> set[str]:
        hashes = {entry.hash for entry in self.files or () if entry.hash}
        if self.files_dict:
            hashes.add(self.files_dict)
        return hashes

def encode_files(files: list[ManifestEntry]) -> bytes:
    """The raw (uncompressed) file list: one JSON array of rows, sorted by path."""
    rows = [entry.row() for entry in sorted(files, key=lambda entry: entry.path)]
    return json.dumps(rows, separators=(",", ":")).encode()


_BASE_INDEX: dict[int, tuple[list, dict[str, int]]] = {}


def base_index(base_rows: list[list]) -> dict[str, int]:
    """path -> position in a base list (the last one built is kept: every continuous snapshot uses it)."""
    cached = _BASE_INDEX.get(id(base_rows))
    if cached is not None and cached[0] is base_rows:
        return cached[1]
    index = {row[0]: i for i, row in enumerate(base_rows)}
    _BASE_INDEX.clear()
    _BASE_INDEX[id(base_rows)] = (base_rows, index)
    return index


def delta_rows(rows: list[list], base_rows: list[list]) -> list[list]:
    """Rows as ops: ``[start, count]`` copies base rows, a 7-item row is itself."""
    if rows and rows == base_rows:
        return [[0, len(rows)]]  # nothing changed since the base list was written
    index = base_index(base_rows)
    ops: list[list] = []
    for row in rows:
        i = index.get(row[0])
        if i is None or (base_rows[i] is not row and base_rows[i] != row):
            ops.append(row)
        elif ops and len(ops[-1]) == 2 and ops[-1][0] + ops[-1][1] == i:
            ops[-1][1] += 1
        else:
            ops.append([i, 1])
    return ops


def sparse_delta(base_rows: list[list], base_paths: list[str], explicit: dict[str, list], dropped: set[int]) -> list:
    """The ops of :func:`delta_rows` when the difference to the base is known: the base rows minus the
    positions in ``dropped``, merged by path with the ``explicit`` rows. Costs O(changes x log n), not
    O(n): continuous capture writes a manifest every few seconds against one base list."""
    events = sorted([(bisect.bisect_left(base_paths, path), 0, path) for path in explicit]
                    + [(index, 1, "") for index in dropped])
    ops: list = []
    pos = 0
    for index, kind, path in events:
        if index > pos:
            ops.append([pos, index - pos])
            pos = index
        if kind == 0:
            ops.append(explicit[path])
        else:
            pos = index + 1
    if pos < len(base_rows):
        ops.append([pos, len(base_rows) - pos])
    return ops


def apply_delta(ops, base_rows: list[list]) -> list:
    if not isinstance(ops, list):
        raise ValueError("delta is not a list")
    rows: list = []
    for op in ops:
        if isinstance(op, list) and len(op) == 2:
            start, count = op
            if not (isinstance(start, int) and isinstance(count, int) and 0 <= start and 0 < count
                    and start + count <= len(base_rows)):
                raise ValueError("delta reference out of range")
            rows.extend(base_rows[start:start + count])
        else:
            rows.append(op)
    return rows


def file_rows(files: list[ManifestEntry]) -> list[list]:
    return [entry.row() for entry in sorted(files, key=lambda entry: entry.path)]


def encode_manifest(manifest: Manifest, base_rows: list[list] | None = None, level: int = 3,
                    rows: list[list] | None = None, ops: list | None = None) -> bytes:
    """Encode; with ``base_rows`` (the header must name their blob) the file list is a delta.
    ``rows`` (``file_rows(manifest.files)``) may be passed when already computed, ``ops`` (the delta
    itself, see :func:`sparse_delta`) too."""
    if ops is not None:
        body = zstandard.ZstdCompressor(level=level).compress(json.dumps(ops, separators=(",", ":")).encode())
        return encode_with_body(manifest, body, level)
    rows = rows if rows is not None else file_rows(manifest.files or [])
    return encode_with_body(manifest, encode_body(rows, base_rows, level), level)


def encode_body(rows: list[list], base_rows: list[list] | None = None, level: int = 3) -> bytes:
    """The compressed file list: ``rows``, or with ``base_rows`` a delta against them."""
    listed = delta_rows(rows, base_rows) if base_rows is not None else rows
    return zstandard.ZstdCompressor(level=level).compress(json.dumps(listed, separators=(",", ":")).encode())


def encode_with_body(manifest: Manifest, body: bytes, level: int = 3) -> bytes:
    """A manifest whose file list is ``body``: another manifest's compressed file list, taken as it is
    (with the same ``files_dict``). A snapshot of an unchanged store copies its predecessor's list
    this way, without decoding or re-encoding 100k rows (rows it does not know stay as they were)."""
    header = zstandard.ZstdCompressor(level=level).compress(json.dumps(manifest.header()).encode())
    return MAGIC + struct.pack(">I", len(header)) + header + body


def body_of(data: bytes, where: str = "?") -> bytes:
    """The compressed file list of an encoded manifest."""
    return _split(data, where)[1]


def _split(data: bytes, where: str) -> tuple[bytes, bytes]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise SnapshotError(f"manifest {where} is not a guardian snapshot manifest (damaged)")
    (length,) = struct.unpack(">I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if length > MAX_HEADER or start + length > len(data):
        raise SnapshotError(f"manifest {where} is truncated (damaged)")
    return data[start:start + length], data[start + length:]


# A real file list is JSON of paths, sha256 hex digests and numbers: zstd shrinks it a few times, never
# hundreds of times. Inflating past MAX_RATIO x its compressed size (at least MIN_INFLATE) is a bomb.
MAX_RATIO = 256
MIN_INFLATE = 16 << 20


def inflate_limit(compressed: int, cap: int) -> int:
    return min(cap, max(MIN_INFLATE, compressed * MAX_RATIO))


def _decompress(blob: bytes, where: str, what: str, limit=MAX_BODY) -> bytes:
    """zstd, bounded by both ``limit`` and the ratio a real manifest can have (a 33 KB bomb cannot
    make guardian hold gigabytes)."""
    bound = inflate_limit(len(blob), limit)
    try:
        return zstandard.ZstdDecompressor().decompress(blob, max_output_size=bound)
    except zstandard.ZstdError as exc:
        raise SnapshotError(f"manifest {where}: cannot decompress its {what} within {bound} bytes ({exc}) "
                            "(damaged or hostile)") from None


def _json(raw: bytes, where: str, what: str):
    """json.loads that turns every failure (a deeply nested body too) into a damaged-manifest error."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise SnapshotError(f"manifest {where}: its {what} is nested too deeply (damaged or hostile)") from None


def decode_manifest(data: bytes, where: str = "?", load_dictionary: Callable[[str], list] | None = None,
                    header_only: bool = False) -> Manifest:
    """Decode and validate a manifest; raises SnapshotError (damaged/tampered) on any problem.

    ``load_dictionary(hash)`` returns the parsed base rows of a delta-encoded file list.
    """
    if header_only:
        return decode_header(data, where)
    manifest, rows = decode_manifest_rows(data, where, load_dictionary)
    manifest.files = entries_from_rows(rows, where, checked=True)
    return manifest


def decode_header(data: bytes, where: str = "?") -> Manifest:
    header_bytes, _ = _split(data, where)
    try:
        header = _json(_decompress(header_bytes, where, "header", limit=MAX_HEADER), where, "header")
        return _manifest_from_header(header)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise SnapshotError(f"manifest {where}: invalid header ({exc}) (damaged)") from None


def decode_manifest_rows(data: bytes, where: str = "?",
                         load_dictionary: Callable[[str], list] | None = None) -> tuple[Manifest, list[list]]:
    """The header (``files`` left None) and the validated file list as raw rows (no ManifestEntry objects)."""
    manifest = decode_header(data, where)
    _, body = _split(data, where)
    try:
        rows = _json(_decompress(body, where, "file list") or b"[]", where, "file list")
        if manifest.files_dict:
            if load_dictionary is None:
                raise SnapshotError(f"manifest {where} needs its base list blob {manifest.files_dict[:12]}")
            rows = apply_delta(rows, load_dictionary(manifest.files_dict))
    except ValueError as exc:
        raise SnapshotError(f"manifest {where}: unreadable file list ({exc}) (damaged)") from None
    return manifest, validated_rows(rows, where)


def referenced_hashes(data: bytes, where: str, base_hashes: Callable[[str], set[str]]) -> set[str]:
    """Every blob a manifest may need, without rebuilding its file list (garbage collection).

    A delta manifest needs its base list blob, the blobs of its own rows and at most every blob of
    the base list (``base_hashes(digest)``, which callers cache: thousands of small continuous
    snapshots share one base). A superset is safe here: it only keeps more."""
    manifest = decode_header(data, where)
    _, body = _split(data, where)
    try:
        ops = json.loads(_decompress(body, where, "file list") or b"[]")
    except ValueError as exc:
        raise SnapshotError(f"manifest {where}: unreadable file list ({exc}) (damaged)") from None
    if not isinstance(ops, list):
        raise SnapshotError(f"manifest {where}: file list is not a list (damaged)")
    hashes = {op[5] for op in ops if isinstance(op, list) and len(op) == 7 and isinstance(op[5], str)}
    if manifest.files_dict:
        hashes.add(manifest.files_dict)
        if any(isinstance(op, list) and len(op) == 2 for op in ops):
            hashes |= base_hashes(manifest.files_dict)
    return hashes


def parse_rows(raw: bytes) -> list:
    try:
        rows = json.loads(raw) if raw.strip() else []
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(rows, list):
        raise ValueError("not a list")
    return rows


def entries_from_rows(rows, where: str = "?", checked: bool = False) -> list[ManifestEntry]:
    """ManifestEntry objects for ``rows``; ``checked`` means they came from :func:`validated_rows`."""
    if not checked:
        rows = validated_rows(rows, where)
    return [ManifestEntry(*row) for row in rows]


def validated_rows(rows, where: str = "?") -> list[list]:
    """The file list as 7-item rows, validated; SnapshotError naming the first bad entry.

    A fast whole-list pass accepts the common case; anything it does not accept goes through the
    per-entry checks, which give the exact error (or accept, and normalise, an unusual valid row)."""
    if not isinstance(rows, list):
        raise SnapshotError(f"manifest {where}: file list is not a list (damaged)")
    if _rows_look_valid(rows):
        return rows
    return [entry.row() for entry in _checked_entries(rows, where)]


def _rows_look_valid(rows: list) -> bool:
    """True if every row is a well-formed entry with a safe, unique path (column-wise checks)."""
    if not rows:
        return True
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {7}:
        return False
    paths, sizes, modes, mtimes, inodes, hashes, flags = zip(*rows)
    for column in (sizes, modes, mtimes, inodes, flags):
        if set(map(type, column)) != {int} or min(column) < 0:
            return False
    if max(modes) > 0o7777:
        return False
    if None in hashes:
        if any(digest is None and not flag & NO_CONTENT_FLAGS for digest, flag in zip(hashes, flags)):
            return False
        hashes = [digest for digest in hashes if digest is not None]
    return _paths_look_safe(paths) and len(set(paths)) == len(paths) and _hashes_look_valid(hashes)


# In "\x00" + "\x00".join(paths) + "\x00", each of these marks an absolute path, an empty path or
# part, a "." or ".." part, or a backslash.
UNSAFE_IN_JOINED_PATHS = ("\x00/", "//", "/\x00", "\x00\x00", "\\", "/./", "/../", "\x00./", "\x00../", "/.\x00",
                          "/..\x00", "\x00.\x00", "\x00..\x00")
NOT_LOWER_HEX = str.maketrans("", "", "0123456789abcdef")


def _paths_look_safe(paths) -> bool:
    """All paths are non-empty relative strings without NUL, backslash, empty, '.' or '..' parts."""
    if set(map(type, paths)) != {str}:
        return False
    joined = "\x00" + "\x00".join(paths) + "\x00"
    if joined.count("\x00") != len(paths) + 1:
        return False  # a path holds a NUL
    return not any(marker in joined for marker in UNSAFE_IN_JOINED_PATHS)


def _hashes_look_valid(hashes) -> bool:
    """All are 64-character lowercase hex strings."""
    if not hashes:
        return True
    if set(map(type, hashes)) != {str} or set(map(len, hashes)) != {64}:
        return False
    return "".join(hashes).translate(NOT_LOWER_HEX) == ""


def _checked_entries(rows: list, where: str) -> list[ManifestEntry]:
    files: list[ManifestEntry] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, 1):
        try:
            entry = ManifestEntry(*row)
            _check_entry(entry)
        except (ValueError, TypeError) as exc:
            raise SnapshotError(f"manifest {where}: file entry {number} is invalid ({exc}) "
                                "(damaged or tampered)") from None
        if entry.path in seen:
            raise SnapshotError(f"manifest {where}: {entry.path!r} is listed twice (damaged or tampered)")
        seen.add(entry.path)
        files.append(entry)
    return files


def _check_entry(entry: ManifestEntry) -> None:
    check_rel_path(entry.path)
    for name in ("size", "mode", "mtime_ns", "inode", "flags"):
        value = getattr(entry, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
    if entry.mode > 0o7777:
        raise ValueError("mode out of range")
    if entry.hash is None:
        if not entry.flags & NO_CONTENT_FLAGS:
            raise ValueError("missing content hash")
    elif not isinstance(entry.hash, str) or not HASH_PATTERN.match(entry.hash):
        raise ValueError("content hash is not a sha256 hex digest")


def check_rel_path(path) -> str:
    """Refuse any path that could point outside the store: absolute, '..', '.', empty parts, NUL."""
    if not isinstance(path, str) or not path:
        raise ValueError("empty path")
    if path.startswith("/") or "\x00" in path or "\\" in path:
        raise ValueError(f"unsafe path {path!r}")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"unsafe path {path!r}")
    return path


def _manifest_from_header(header: dict) -> Manifest:
    if header.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"unknown manifest version {header.get('version')!r}")
    if not isinstance(header["id"], str) or not ID_PATTERN.match(header["id"]):
        raise ValueError("invalid snapshot id")
    time = datetime.fromisoformat(header["time"].replace("Z", "+00:00"))
    if time.tzinfo is None:
        raise ValueError("time without zone")
    collections = [CollectionInfo(c["dir"], c.get("name"), int(c.get("documents", 0)), c.get("metadata_hash"))
                   for c in header.get("collections", [])]
    for collection in collections:
        check_rel_path(collection.dir)
    dirs = [(check_rel_path(d[0]), int(d[1]) & 0o7777) for d in header.get("dirs", [])]
    files_dict = header.get("files_dict")
    if files_dict is not None and not HASH_PATTERN.match(str(files_dict)):
        raise ValueError("invalid dictionary hash")
    packs = header.get("packs")
    if packs is not None and (not isinstance(packs, list) or not all(HASH_PATTERN.match(str(p)) for p in packs)):
        raise ValueError("invalid pack list")
    return Manifest(id=header["id"], time=time.astimezone(timezone.utc), store=str(header["store"]),
                    compress=bool(header["compress"]), collections=collections, dirs=dirs,
                    skipped=[(str(s[0]), str(s[1])) for s in header.get("skipped", [])],
                    stats=dict(header.get("stats", {})), files_dict=files_dict, packs=packs,
                    extra={k: v for k, v in header.items() if k not in KNOWN_HEADER_KEYS})


KNOWN_HEADER_KEYS = frozenset(("version", "id", "time", "store", "compress", "collections", "dirs", "skipped",
                               "stats", "files_dict", "packs"))
