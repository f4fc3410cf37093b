"""A snapshot's file list read as it is stored, for answers that need a few of its rows from many
snapshots (history, show) or its difference to another (diff), rather than all of them (restore).

A manifest's file list is a delta against a *base list* (see ``guardian.snapshots.manifest``): runs
of base rows ``[start, count]`` and the rows that differ, written out. Continuous capture writes a
manifest every few seconds against one base list, so a thousand manifests share a handful of bases,
and each carries every row changed since its base (thousands, late in a base's life). Decoding
each of them whole to look up one path would cost a thousand times 100k rows; parsing only their
deltas still costs a thousand times thousands of rows. So a lookup reads the JSON text instead
(:class:`RowText`): the row of a path is found by the bytes ``["<path>",`` (guardian's encoder writes
every row so), the runs by their shape once the strings are taken out, and only that row is
parsed. Answers that need every row (find, a diff across base lists) parse the lists whole.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import OrderedDict
from dataclasses import dataclass

import orjson
import zstandard

from guardian.errors import SnapshotError
from guardian.snapshots.manifest import MAX_BODY, Manifest, body_of, decode_header, inflate_limit, validated_rows
from guardian.snapshots.repository import Repository

BASES_KEPT = 2   # parsed base lists kept (a base of 100k rows is tens of MB of Python objects)
TEXTS_KEPT = 4   # base lists kept as text (a base of 100k rows is ~11 MB)
RUN = re.compile(rb"\[(\d+),(\d+)\]")
# A row as guardian's encoder writes it, in a text without escapes: (path, sha256 or b"").
ROW = re.compile(rb'\["([^"\\]*)",\d+,\d+,\d+,\d+,(?:"([0-9a-f]{64})"|null),\d+\]')
QUOTE = b'"'


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
        raise SnapshotError(f"{where}: unreadable file list ({exc}) (damaged)") from None


class RowText:
    """A file list's JSON text (rows, and in a delta ``[start, count]`` runs), read without parsing it
    whole. ``plain``: no string in it holds an escaped quote, so every ``"`` opens or closes a string
    (always, for the hex paths of a chromem store); otherwise callers parse the list whole."""

    def __init__(self, raw: bytes, where: str) -> None:
        self.raw = raw
        self.where = where
        self.plain = b"\\" not in raw or b'\\"' not in raw   # the first test is a memchr: most lists have no escape
        self._structure: bytes | None = None
        self._runs: tuple[int, list[tuple[int, int]]] | None = None   # (base size, runs)

    def structure(self) -> bytes:
        """The text with every string taken out: brackets, commas, numbers and nulls only."""
        if self._structure is None:
            self._structure = b"".join(self.raw.split(QUOTE)[0::2])
        return self._structure

    def find(self, path: str) -> tuple[int, list] | None:
        """(offset, row) of the row of ``path`` (checked), or None when the list has none."""
        needle = b"[" + json.dumps(path).encode() + b","
        start = 0
        while (offset := self.raw.find(needle, start)) >= 0:
            if self.raw.count(QUOTE, 0, offset) % 2 == 0:   # outside any string: a row starts here
                end = self.raw.find(b"]", offset + len(needle))   # no string after the path but a hex hash
                row = parse_json(self.raw[offset:end + 1], self.where) if end > 0 else None
                if not (isinstance(row, list) and len(row) == 7):
                    raise SnapshotError(f"{self.where}: the row of {path!r} is malformed (damaged)")
                return offset, validated_rows([row], self.where)[0]
            start = offset + 1
        return None

    def named(self, name: str) -> dict[str, list]:
        """path -> row of every row whose file is called ``name`` (in any folder): one search."""
        tail = json.dumps("/" + name)[1:].encode() + b","
        found = {}
        start = 0
        while (at := self.raw.find(tail, start)) >= 0:
            start = at + 1
            begin = self.raw.rfind(b'["', 0, at)
            if begin < 0 or QUOTE in self.raw[begin + 2:at]:
                continue
            path = parse_json(self.raw[begin + 1:at + len(tail) - 1], self.where)
            located = self.find(path) if isinstance(path, str) else None
            if located is not None:
                found[path] = located[1]
        return found

    def position(self, offset: int) -> int:
        """How many rows come before ``offset`` (in a list of rows only: a base list)."""
        return b"".join(self.raw[:offset].split(QUOTE)[0::2]).count(b"[") - 1

    def runs(self, size: int) -> list[tuple[int, int]]:
        """The ``[start, count]`` runs as (start, end) ranges, each checked against a base of ``size`` rows."""
        if self._runs is not None and self._runs[0] == size:
            return self._runs[1]
        runs = []
        for start, count in RUN.findall(self.structure()):
            start, count = int(start), int(count)
            if not (count > 0 and start + count <= size):
                raise SnapshotError(f"{self.where}: unreadable file list (delta reference out of range) (damaged)")
            runs.append((start, start + count))
        self._runs = (size, sorted(runs))
        return self._runs[1]


@dataclass
class Base:
    """A parsed base list and its path index."""

    digest: str
    rows: list[list]
    positions: dict[str, int]


class FileList:
    """One snapshot's file list as stored: its header, its text, and its base list's digest (None when
    written whole). Rows are looked up in the text; :meth:`ops` parses it when all rows are needed."""

    def __init__(self, lists: "FileLists", manifest: Manifest, text: RowText) -> None:
        self.lists = lists
        self.manifest = manifest
        self.text = text
        self._ops: list | None = None
        self._runs: list[tuple[int, int]] | None = None
        self._written: dict[str, list] | None = None

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def base_digest(self) -> str | None:
        return self.manifest.files_dict

    # ---- a few rows, from the text ---------------------------------------------------------------
    def row(self, path: str) -> list | None:
        """The row of ``path`` in this snapshot (checked), or None when it holds no such file."""
        return self.rows_at([path])[path]

    def rows_at(self, paths: list[str]) -> dict[str, list | None]:
        """The rows of ``paths`` (checked; None: no such file), from the text when it can be searched:
        one search per file name, whatever the number of folders."""
        if not self.text.plain:
            return {path: self.lookup(path) for path in paths}
        written: dict[str, list] = {}
        for name in {path.rpartition("/")[2] for path in paths}:
            written.update(self.text.named(name))
        found: dict[str, list | None] = {}
        for path in paths:
            found[path] = written.get(path)
            if found[path] is None and self.base_digest is not None:
                located = self.lists.base_row(self.base_digest, path)
                if located is not None and kept(self.text.runs(self.lists.base_text(self.base_digest)[1]),
                                                located[0]):
                    found[path] = located[1]
        return found

    def lookup(self, path: str) -> list | None:
        """:meth:`row` from the parsed list: for many lookups in one snapshot."""
        written = self.written()
        if path in written:
            return written[path]
        if self.base_digest is None:
            return None
        base = self.lists.base(self.base_digest)
        position = base.positions.get(path)
        if position is None or not kept(self.runs(), position):
            return None
        return validated_rows([base.rows[position]], self.id)[0]

    # ---- every row, parsed ------------------------------------------------------------------------
    def ops(self) -> list:
        if self._ops is None:
            ops = parse_json(self.text.raw, f"manifest {self.id}") if self.text.raw else []
            base = self.lists.base(self.base_digest) if self.base_digest else None
            self._ops = checked_ops(ops, base, f"manifest {self.id}")
        return self._ops

    def written(self) -> dict[str, list]:
        """path -> row, for the rows written out in this manifest (checked)."""
        if self._written is None:
            self._written = {row[0]: row for row in self.checked_rows()}
        return self._written

    def checked_rows(self) -> list[list]:
        """Every row written out, checked as the full decoder checks them (SnapshotError if one is bad)."""
        return validated_rows([op for op in self.ops() if len(op) == 7], f"manifest {self.id}")

    def runs(self) -> list[tuple[int, int]]:
        """The base rows this manifest keeps, as (start, end) position ranges, sorted."""
        if self._runs is None:
            self._runs = sorted((op[0], op[0] + op[1]) for op in self.ops() if len(op) == 2)
        return self._runs

    def contents(self) -> list[tuple[str, str]]:
        """(path, sha256) of every row written out that has content. From the text when it holds no
        escape and every row start is a well-formed row (always, for a chromem store's hex names):
        no row parsed; else from the parsed rows."""
        raw = self.text.raw
        if b"\\" not in raw:
            found = ROW.findall(raw)
            if len(found) == raw.count(b'["'):
                return [(path.decode(), digest.decode()) for path, digest in found if digest]
        return [(row[0], row[5]) for row in self.checked_rows() if row[5]]

    def kept_runs(self, size: int) -> list[tuple[int, int]]:
        """:meth:`runs`, from the text when it can be searched (``size``: the base list's rows)."""
        return self.text.runs(size) if self.text.plain else self.runs()

    def row_index(self) -> dict[str, list]:
        """path -> row of every row: the base's kept ones as they are (a reader checks the rows it
        uses: checking 100k rows costs more than the rest of a diff), then the ones written out."""
        index: dict[str, list] = {}
        if self.base_digest is not None:
            base_rows = self.lists.base(self.base_digest).rows
            for start, end in self.runs():
                index.update((row[0], row) for row in base_rows[start:end])
        index.update(self.written())
        return index


def kept(runs: list[tuple[int, int]], position: int) -> bool:
    """Whether a base position falls in one of the runs (sorted, as a delta lists them)."""
    at = bisect.bisect_right(runs, (position, float("inf"))) - 1
    return at >= 0 and runs[at][0] <= position < runs[at][1]


class FileLists:
    """Opens snapshots' file lists from one repository, reading each base list once."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._bases: OrderedDict[str, Base] = OrderedDict()
        self._texts: OrderedDict[str, tuple[RowText, int]] = OrderedDict()
        self._base_rows: dict[tuple[str, str], tuple[int, list] | None] = {}
        self._decompressor = zstandard.ZstdDecompressor()

    def open(self, snapshot_id: str) -> FileList:
        """SnapshotError when the manifest is missing or damaged (its base list is read when used)."""
        data = self.repo.manifest_bytes(snapshot_id)
        manifest = decode_header(data, snapshot_id, packs=False)
        if manifest.id != snapshot_id:
            raise SnapshotError(f"manifest {snapshot_id} claims to be {manifest.id} (damaged or tampered)")
        body = body_of(data, snapshot_id)
        try:
            raw = self._decompressor.decompress(body, max_output_size=inflate_limit(len(body), MAX_BODY))
        except zstandard.ZstdError as exc:
            raise SnapshotError(f"manifest {snapshot_id}: cannot decompress its file list ({exc}) (damaged)") from None
        return FileList(self, manifest, RowText(raw, f"manifest {snapshot_id}"))

    def base_text(self, digest: str) -> tuple[RowText, int]:
        """A base list's text and its number of rows."""
        found = self._texts.get(digest)
        if found is None:
            text = RowText(self.repo.read_blob(digest), f"base list {digest[:12]}")
            found = (text, text.structure().count(b"[") - 1 if text.plain else len(self.base(digest).rows))
            self._texts[digest] = found
            while len(self._texts) > TEXTS_KEPT:
                self._texts.popitem(last=False)
        return found

    def base_row(self, digest: str, path: str) -> tuple[int, list] | None:
        """(position, row) of ``path`` in a base list, or None."""
        key = (digest, path)
        if key not in self._base_rows:
            text, _ = self.base_text(digest)
            if text.plain:
                found = text.find(path)
                self._base_rows[key] = (text.position(found[0]), found[1]) if found else None
            else:
                base = self.base(digest)
                position = base.positions.get(path)
                self._base_rows[key] = (position, base.rows[position]) if position is not None else None
        return self._base_rows[key]

    def base(self, digest: str) -> Base:
        """A base list parsed whole, with its path index. Only its shape is checked here (rows of 7
        fields, each path once): a reader that uses rows checks them (``validated_rows``)."""
        base = self._bases.get(digest)
        if base is not None:
            self._bases.move_to_end(digest)
            return base
        where = f"base list {digest[:12]}"
        text = self._texts.get(digest)
        rows = parse_json(text[0].raw if text else self.repo.read_blob(digest), where)
        if not isinstance(rows, list) or set(map(type, rows)) - {list} or set(map(len, rows)) - {7}:
            raise SnapshotError(f"{where}: not a list of 7-field rows (damaged)")
        positions = {row[0]: i for i, row in enumerate(rows)}
        if len(positions) != len(rows):
            raise SnapshotError(f"{where}: a path is listed twice (damaged or tampered)")
        base = Base(digest, rows, positions)
        self._bases[digest] = base
        while len(self._bases) > BASES_KEPT:
            self._bases.popitem(last=False)
        return base


def checked_ops(ops, base: Base | None, where: str) -> list:
    """The ops, checked: a list of runs within the base list and valid rows (SnapshotError if not)."""
    if not isinstance(ops, list) or not all(isinstance(op, list) for op in ops):
        raise SnapshotError(f"{where}: file list is not a list of rows (damaged)")
    size = len(base.rows) if base is not None else 0
    rows = []
    for op in ops:
        if len(op) == 2 and base is not None:
            start, count = op
            if not (type(start) is int and type(count) is int and 0 <= start and 0 < count and start + count <= size):
                raise SnapshotError(f"{where}: unreadable file list (delta reference out of range) (damaged)")
        else:
            rows.append(op)
    checked = validated_rows(rows, where) if rows else rows
    if checked is rows:
        return ops
    normal = iter(checked)   # an unusual valid row, normalised by the check: put it in its place
    return [op if len(op) == 2 and base is not None else next(normal) for op in ops]
