"""A snapshot's file list read as it is stored, for answers that need a few of its rows from many
snapshots (history, show, find) rather than all of them from one (diff, restore).

A manifest's file list is a delta against a *base list* (see ``guardian.snapshots.manifest``): runs
of base rows ``[start, count]`` and the rows that differ, written out. Continuous capture writes a
manifest every few seconds against one base list, so a thousand manifests share a handful of bases.
Rebuilding each manifest's 100k rows to look up one path would cost a thousand times that; here a
base list is parsed once (its path index built once) and each manifest costs its own delta only.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

import orjson
import zstandard

from guardian.errors import SnapshotError
from guardian.snapshots.manifest import MAX_BODY, Manifest, body_of, decode_header, inflate_limit, validated_rows
from guardian.snapshots.repository import Repository

BASES_KEPT = 4   # parsed base lists kept (a base of 100k rows is ~60 MB of Python objects)


def parse_json(raw: bytes, where: str):
    """orjson's value (a tenth of json's time on 100k rows), json's for what orjson refuses (a lone
    surrogate escape: a path of bytes that are not UTF-8, kept by surrogateescape)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise SnapshotError(f"manifest {where}: unreadable file list ({exc}) (damaged)") from None


@dataclass
class Base:
    """A parsed base list and its path index."""

    digest: str
    rows: list[list]
    positions: dict[str, int]


@dataclass
class FileList:
    """One snapshot's file list as stored: its header, its base list (None when written whole) and
    its ops (``[start, count]`` runs of base rows and rows written out)."""

    manifest: Manifest
    base: Base | None
    ops: list

    def __post_init__(self) -> None:
        self._written: dict[str, list] | None = None
        self._runs: list[tuple[int, int]] | None = None

    @property
    def id(self) -> str:
        return self.manifest.id

    def written(self) -> dict[str, list]:
        """path -> row, for the rows written out in this manifest."""
        if self._written is None:
            self._written = {op[0]: op for op in self.ops if len(op) == 7}
        return self._written

    def runs(self) -> list[tuple[int, int]]:
        """The base rows this manifest keeps, as (start, end) position ranges."""
        if self._runs is None:
            self._runs = [(op[0], op[0] + op[1]) for op in self.ops if len(op) == 2]
        return self._runs

    def row(self, path: str) -> list | None:
        """The row of ``path`` in this snapshot, or None when it holds no such file."""
        row = self.written().get(path)
        if row is not None:
            return row
        if self.base is None:
            return None
        position = self.base.positions.get(path)
        if position is None:
            return None
        for start, end in self.runs():
            if start <= position < end:
                return self.base.rows[position]
        return None


class FileLists:
    """Opens snapshots' file lists from one repository, parsing each base list once."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._bases: OrderedDict[str, Base] = OrderedDict()
        self._decompressor = zstandard.ZstdDecompressor()

    def open(self, snapshot_id: str) -> FileList:
        """SnapshotError when the manifest is missing, damaged or its base list is."""
        data = self.repo.manifest_bytes(snapshot_id)
        manifest = decode_header(data, snapshot_id)
        if manifest.id != snapshot_id:
            raise SnapshotError(f"manifest {snapshot_id} claims to be {manifest.id} (damaged or tampered)")
        body = body_of(data, snapshot_id)
        try:
            raw = self._decompressor.decompress(body, max_output_size=inflate_limit(len(body), MAX_BODY))
        except zstandard.ZstdError as exc:
            raise SnapshotError(f"manifest {snapshot_id}: cannot decompress its file list ({exc}) (damaged)") from None
        ops = parse_json(raw, snapshot_id) if raw else []
        base = self.base(manifest.files_dict) if manifest.files_dict else None
        return FileList(manifest, base, checked_ops(ops, base, snapshot_id))

    def base(self, digest: str) -> Base:
        base = self._bases.get(digest)
        if base is not None:
            self._bases.move_to_end(digest)
            return base
        rows = parse_json(self.repo.read_blob(digest), f"base list {digest[:12]}")
        rows = validated_rows(rows, f"base list {digest[:12]}")
        base = Base(digest, rows, {row[0]: i for i, row in enumerate(rows)})
        self._bases[digest] = base
        while len(self._bases) > BASES_KEPT:
            self._bases.popitem(last=False)
        return base


def checked_ops(ops, base: Base | None, where: str) -> list:
    """The ops, checked as the full decoder checks them: runs within the base list, rows valid."""
    if not isinstance(ops, list):
        raise SnapshotError(f"manifest {where}: file list is not a list (damaged)")
    size = len(base.rows) if base is not None else 0
    rows = []
    for op in ops:
        if isinstance(op, list) and len(op) == 2 and base is not None:
            start, count = op
            if not (type(start) is int and type(count) is int and 0 <= start and 0 < count and start + count <= size):
                raise SnapshotError(f"manifest {where}: unreadable file list (delta reference out of range) (damaged)")
        else:
            rows.append(op)
    checked = validated_rows(rows, where) if rows else rows
    if checked is rows:
        return ops
    normal = iter(checked)   # an unusual valid row, normalised by the check: put it in its place
    return [op if isinstance(op, list) and len(op) == 2 and base is not None else next(normal) for op in ops]
