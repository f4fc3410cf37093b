"""Row storage of a collection index: columns packed in flat buffers, decoded only for rows read.

A 100k-document collection held as Python objects costs ~470 MB (a str per content, a dict per
metadata). Here every string column is one buffer plus an int64 offsets array
(:class:`PackedStrings`); a row's value is decoded when a result needs it. The buffers and the
matrix can be slices of a memory-mapped cache file (``guardian/index/cache.py``): then they are
page cache the kernel may drop and re-read, not private memory.

:class:`Rows` is what a :class:`~guardian.index.collection_index.CollectionIndex` holds: a
``base`` :class:`Segment` (usually mapped), the base rows still alive (``live``; ``None`` means
all), and an in-memory ``extra`` segment of rows added by live updates since the base was
written. Logical row numbers run over the live base rows in base order, then the extra rows.
An update never copies the base: it narrows ``live`` and rebuilds the (small) extra segment; the
next cache save writes the logical rows as a new base, which is then mapped instead.

Strings are stored as chromem's bytes (UTF-8, with guardian's ``surrogateescape`` for bytes
that are not UTF-8), so a ``$contains`` test is a byte search, as Go's ``strings.Contains`` is.
"""

from __future__ import annotations

import bisect
import marshal
import threading
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

ENCODING, ERRORS = "utf-8", "surrogateescape"


def encode(text: str) -> bytes:
    return text.encode(ENCODING, ERRORS)


class PackedStrings(Sequence):
    """``n`` byte strings in one buffer (bytes, or a mapped file) with ``n + 1`` offsets into it."""

    __slots__ = ("buffer", "offsets", "_bounds")

    def __init__(self, buffer, offsets: np.ndarray) -> None:
        self.buffer = buffer
        self.offsets = offsets
        self._bounds: memoryview | None = None

    @classmethod
    def of_bytes(cls, items: Sequence[bytes]) -> "PackedStrings":
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        if items:
            np.cumsum(np.fromiter(map(len, items), dtype=np.int64, count=len(items)), out=offsets[1:])
        return cls(b"".join(items), offsets)

    @classmethod
    def of_strings(cls, strings: Iterable[str]) -> "PackedStrings":
        return cls.of_bytes([encode(s) for s in strings])

    @classmethod
    def joined(cls, parts: Sequence["PackedStrings"]) -> "PackedStrings":
        """One packed column of several (each part's bytes copied once)."""
        if len(parts) == 1:
            return parts[0]
        buffers, offsets, base = [], [np.zeros(1, dtype=np.int64)], 0
        for part in parts:
            start, end = int(part.offsets[0]), int(part.offsets[-1])
            whole = start == 0 and end == len(part.buffer) and isinstance(part.buffer, bytes)
            buffers.append(part.buffer if whole else part.buffer[start:end])
            offsets.append(part.offsets[1:] - start + base)
            base += end - start
        return cls(b"".join(buffers), np.concatenate(offsets))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def raw(self, i: int) -> bytes:
        offsets = self.offsets
        return self.buffer[offsets[i]:offsets[i + 1]]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.decode(self.raw(i))

    def decode(self, raw: bytes):
        return raw.decode(ENCODING, ERRORS)

    def picked_raw(self, positions: Sequence[int]) -> list[bytes]:
        """The bytes of the given rows (valid row numbers, as Python ints), in that order.

        What a query's k results read: the offsets through a memoryview (a Python int per read, no
        numpy scalar, no bounds check beyond the view's own), one slice per row."""
        bounds = self._bounds
        if bounds is None:
            bounds = self._bounds = memoryview(np.ascontiguousarray(self.offsets, dtype=np.int64))
        buffer = self.buffer
        return [buffer[bounds[i]:bounds[i + 1]] for i in positions]

    def pick(self, positions: Sequence[int]) -> list:
        """The decoded values of the given rows, in that order (see :meth:`picked_raw`)."""
        return [raw.decode(ENCODING, ERRORS) for raw in self.picked_raw(positions)]

    def __iter__(self) -> Iterator:
        bounds = self.offsets.tolist()
        buffer, decode = self.buffer, self.decode
        for start, end in zip(bounds, bounds[1:]):
            yield decode(buffer[start:end])

    def raws(self) -> list[bytes]:
        bounds = self.offsets.tolist()
        buffer = self.buffer
        return [buffer[start:end] for start, end in zip(bounds, bounds[1:])]

    def take(self, positions: Sequence[int]) -> "PackedStrings":
        """The given rows, in that order, in a new buffer of their own."""
        return type(self).of_bytes([self.raw(i) for i in positions])

    def data(self) -> bytes:
        """The column's bytes (offsets[0] .. offsets[-1]), e.g. for writing it out."""
        return self.buffer[int(self.offsets[0]):int(self.offsets[-1])]

    def containing(self, needle: bytes) -> np.ndarray:
        """A bool per row: does it contain ``needle`` (bytes)? One buffer search per hit row."""
        n = len(self)
        mask = np.zeros(n, dtype=bool)
        if not needle:
            mask[:] = True
            return mask
        bounds = self.offsets.tolist()
        buffer, size = self.buffer, len(needle)
        pos, end, row = bounds[0], bounds[-1], 0
        while True:
            hit = buffer.find(needle, pos, end)
            if hit < 0:
                return mask
            row = bisect.bisect_right(bounds, hit, row) - 1
            if hit + size <= bounds[row + 1]:
                mask[row] = True
                pos = bounds[row + 1]
            else:  # the hit crosses into the next row: look again from just after its start
                pos = hit + 1


class PackedMetadata(PackedStrings):
    """Metadata maps, each stored as ``marshal`` bytes (plain data only: strings to strings)."""

    __slots__ = ()

    @classmethod
    def of_maps(cls, maps: Iterable[Mapping[str, str] | None]) -> "PackedMetadata":
        return cls.of_bytes([marshal.dumps(dict(m) if m else {}) for m in maps])

    def decode(self, raw: bytes) -> dict:
        try:
            value = marshal.loads(raw)
        except (ValueError, EOFError, TypeError):
            return {}
        return value if isinstance(value, dict) else {}

    def pick(self, positions: Sequence[int]) -> list[dict]:
        """The maps of the given rows; damaged bytes read as {} (as :meth:`decode` reads them)."""
        raws = self.picked_raw(positions)
        try:
            maps = [marshal.loads(raw) for raw in raws]
        except (ValueError, EOFError, TypeError):
            return [self.decode(raw) for raw in raws]
        return [value if type(value) is dict else {} for value in maps]


def _column_name(key: str) -> str:
    """Where a metadata key's column is kept among a segment's lookups (apart from ids and files)."""
    return "meta:" + key


@dataclass(frozen=True, eq=False)
class Segment:
    """Row-aligned packed columns plus the (n, d) float32 matrix."""

    files: PackedStrings
    ids: PackedStrings
    contents: PackedStrings
    metadatas: PackedMetadata
    matrix: np.ndarray
    mapped: bool = False  # the columns and matrix are a cache file's pages, not private memory
    _lookups: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, dimension: int = 0) -> "Segment":
        return cls.of_rows([], [], [], [], np.zeros((0, dimension), dtype=np.float32))

    @classmethod
    def of_rows(cls, files: Sequence[str], ids: Sequence[str], contents: Sequence[str],
                metadatas: Sequence[Mapping[str, str] | None], matrix: np.ndarray) -> "Segment":
        return cls(PackedStrings.of_strings(files), PackedStrings.of_strings(ids), PackedStrings.of_strings(contents),
                   PackedMetadata.of_maps(metadatas), np.ascontiguousarray(matrix, dtype=np.float32))

    @classmethod
    def joined(cls, parts: Sequence["Segment"], dimension: int) -> "Segment":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(dimension)
        if len(parts) == 1:
            return parts[0]
        return cls(*(kind.joined([getattr(p, name) for p in parts]) for kind, name in (
            (PackedStrings, "files"), (PackedStrings, "ids"), (PackedStrings, "contents"),
            (PackedMetadata, "metadatas"))),
            np.concatenate([p.matrix for p in parts]))

    def take(self, positions: Sequence[int]) -> "Segment":
        picked = np.asarray(positions, dtype=np.intp)
        return Segment(self.files.take(positions), self.ids.take(positions), self.contents.take(positions),
                       self.metadatas.take(positions), np.ascontiguousarray(self.matrix[picked]))

    def shown(self, positions: Sequence[int]) -> tuple[list[str], list[str], list[dict]]:
        """The ids, contents and metadatas of the given rows (valid row numbers, as Python ints), in that order."""
        return self.ids.pick(positions), self.contents.pick(positions), self.metadatas.pick(positions)

    def lookup(self, column: str) -> dict[str, int]:
        """value -> the last row holding it, for ``ids`` or ``files`` (built once per segment, on need)."""
        found = self._lookups.get(column)
        if found is None:
            with self._lock:
                found = self._lookups.get(column)
                if found is None:
                    found = {value: row for row, value in enumerate(getattr(self, column))}
                    self._lookups[column] = found
        return found

    def column(self, key: str) -> tuple[np.ndarray, dict[str, int]]:
        """A metadata key as codes per row plus value -> code; a missing key reads as "" (chromem)."""
        self.warm_columns([key])
        return self._lookups[_column_name(key)]

    def warm_columns(self, keys: Sequence[str]) -> None:
        """Build the columns of several keys in one pass over the metadata (each map decoded once,
        not once per key: a million rows take a second or two per pass)."""
        missing = [key for key in keys if _column_name(key) not in self._lookups]
        if not missing:
            return
        codes = {key: np.empty(len(self), dtype=np.int32) for key in missing}
        values: dict[str, dict[str, int]] = {key: {} for key in missing}
        for row, metadata in enumerate(self.metadatas):
            for key in missing:
                seen = values[key]
                codes[key][row] = seen.setdefault(metadata.get(key, ""), len(seen))
        for key in missing:
            self._lookups.setdefault(_column_name(key), (codes[key], values[key]))

    def seed_column(self, key: str, codes: np.ndarray, values: Sequence[str]) -> None:
        """A metadata key's column made elsewhere (the index cache keeps it): code i is ``values[i]``."""
        self._lookups.setdefault(_column_name(key), (codes, {value: code for code, value in enumerate(values)}))

    def where_mask(self, key: str, wanted: str) -> np.ndarray:
        codes, values = self.column(key)
        code = values.get(wanted)
        return np.zeros(len(self), dtype=bool) if code is None else codes == code


class RowColumn(Sequence):
    """One column of :class:`Rows` read by logical row number."""

    __slots__ = ("rows", "name")

    def __init__(self, rows: "Rows", name: str) -> None:
        self.rows, self.name = rows, name

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        segment, row = self.rows.locate(i)
        return getattr(segment, self.name)[row]

    def __iter__(self) -> Iterator:
        rows = self.rows
        base = getattr(rows.base, self.name)
        if rows.live is None:
            yield from base
        else:
            for row in rows.live.tolist():
                yield base[row]
        yield from getattr(rows.extra, self.name)


class Rows:
    """Logical rows over a base segment (its ``live`` rows) followed by an in-memory extra segment."""

    __slots__ = ("base", "live", "extra", "base_count", "_length", "__weakref__")

    def __init__(self, base: Segment | None = None, live: np.ndarray | None = None,
                 extra: Segment | None = None) -> None:
        self.base = base if base is not None else Segment.empty()
        dimension = self.base.matrix.shape[1]
        self.live = live  # sorted base rows still alive, or None: all of them
        self.extra = extra if extra is not None else Segment.empty(dimension)
        # counted once: rows never change (an update makes new Rows), and a query asks several times
        self.base_count = len(self.base) if live is None else len(live)  # the live base rows
        self._length = self.base_count + len(self.extra)

    def __len__(self) -> int:
        return self._length

    @property
    def dimension(self) -> int:
        return int(self.base.matrix.shape[1]) if len(self.base) else int(self.extra.matrix.shape[1])

    @property
    def changed(self) -> int:
        """Rows added or dropped since the base was written (what the next cache save folds in)."""
        return len(self.extra) + (len(self.base) - len(self.live) if self.live is not None else 0)

    @property
    def compact(self) -> bool:
        """Every row is a base row, in base order: the base alone is these rows."""
        return self.live is None and not len(self.extra)

    def locate(self, row: int) -> tuple[Segment, int]:
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        count = self.base_count
        if row < count:
            return self.base, row if self.live is None else int(self.live[row])
        return self.extra, row - count

    def shown(self, rows: Sequence[int] | np.ndarray) -> tuple[list[str], list[str], list[dict]]:
        """The ids, contents and metadatas of the given logical rows, in that order (what results show).

        Each segment reads a column once for all of its rows; only these three columns are decoded
        (never the file names). A result's rows are few (k): plain Python ints from here on."""
        rows = rows.tolist() if isinstance(rows, np.ndarray) else list(rows)
        size = len(self)
        if rows and not 0 <= min(rows) <= max(rows) < size:
            raise IndexError(f"rows out of range 0..{size - 1}")
        count, live = self.base_count, self.live
        in_base = [row for row in rows if row < count]
        if live is not None and in_base:
            in_base = live[in_base].tolist()
        if len(in_base) == len(rows):
            return self.base.shown(in_base)
        base_columns = self.base.shown(in_base)
        extra_columns = self.extra.shown([row - count for row in rows if row >= count])
        merged = []
        for base_values, extra_values in zip(base_columns, extra_columns):
            base_values, extra_values = iter(base_values), iter(extra_values)
            merged.append([next(base_values) if row < count else next(extra_values) for row in rows])
        return merged[0], merged[1], merged[2]

    files = property(lambda self: RowColumn(self, "files"))
    ids = property(lambda self: RowColumn(self, "ids"))
    contents = property(lambda self: RowColumn(self, "contents"))
    metadatas = property(lambda self: RowColumn(self, "metadatas"))

    def vector(self, row: int) -> np.ndarray:
        segment, physical = self.locate(row)
        return segment.matrix[physical]

    @property
    def matrix(self) -> np.ndarray:
        """The (n, d) matrix of the logical rows: the base itself when compact, else a copy."""
        if self.compact:
            return self.base.matrix
        base = self.base.matrix if self.live is None else self.base.matrix[self.live]
        return np.concatenate([base, self.extra.matrix]) if len(self.extra) else base

    def matrix_chunks(self, rows_per_chunk: int = 8192) -> Iterator[np.ndarray]:
        """The logical matrix in chunks (writing a cache never copies the whole base at once)."""
        base = self.base.matrix
        if self.live is None:
            for start in range(0, len(base), rows_per_chunk):
                yield base[start:start + rows_per_chunk]
        else:
            for start in range(0, len(self.live), rows_per_chunk):
                yield base[self.live[start:start + rows_per_chunk]]
        if len(self.extra):
            yield self.extra.matrix

    def column_data(self, name: str) -> tuple[list[bytes], np.ndarray]:
        """A string column of the logical rows as (bytes parts, offsets), without joining the base."""
        base: PackedStrings = getattr(self.base, name)
        extra: PackedStrings = getattr(self.extra, name)
        if self.live is None:
            parts, lengths = [base.data()], [np.diff(base.offsets)]
        else:
            raws = [base.raw(i) for i in self.live.tolist()]
            parts, lengths = raws, [np.fromiter(map(len, raws), dtype=np.int64, count=len(raws))]
        parts.append(extra.data())
        lengths.append(np.diff(extra.offsets))
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
        return parts, offsets

    # ------------------------------------------------------------------ search

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(m, n) float32 similarities of each query row with every logical row."""
        single = len(queries) == 1

        def product(matrix: np.ndarray) -> np.ndarray:
            return (matrix @ queries[0])[np.newaxis, :] if single else queries @ matrix.T

        base = product(self.base.matrix)
        if self.live is not None:
            base = base[:, self.live]
        if not len(self.extra):
            return base
        return np.concatenate([base, product(self.extra.matrix)], axis=1)

    def subset_scores(self, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Similarities with the given logical rows only (a few filter survivors)."""
        count = self.base_count
        in_base = rows[rows < count]
        physical = in_base if self.live is None else self.live[in_base]
        parts = [queries @ self.base.matrix[physical].T]
        if in_base.size < rows.size:
            parts.append(queries @ self.extra.matrix[rows[rows >= count] - count].T)
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def row_of(self, column: str, value: str) -> int | None:
        """The logical row holding ``value`` in ``ids`` or ``files`` (the last such row), or None."""
        row = self.extra.lookup(column).get(value)
        if row is not None:
            return self.base_count + row
        physical = self.base.lookup(column).get(value)
        if physical is None:
            return None
        if self.live is None:
            return physical
        at = int(np.searchsorted(self.live, physical))
        return at if at < len(self.live) and self.live[at] == physical else None

    def where_mask(self, key: str, wanted: str) -> np.ndarray:
        return self._logical(self.base.where_mask(key, wanted), self.extra.where_mask(key, wanted))

    def warm_columns(self, keys: Sequence[str]) -> None:
        """Segment.warm_columns of the base and the extra rows (what where_mask then reads)."""
        self.base.warm_columns(keys)
        self.extra.warm_columns(keys)

    def key_columns(self, keys: Sequence[str]) -> dict[str, tuple[np.ndarray, list[str]]]:
        """Each key's column over the logical rows: an int32 code per row and the values the codes
        stand for (code i is ``values[i]``). What the index cache keeps, so that a session mapping
        it filters without decoding every row's metadata (a million rows: ~3 s)."""
        self.warm_columns(keys)
        columns = {}
        for key in keys:
            base_codes, seen = self.base.column(key)
            codes = base_codes if self.live is None else base_codes[self.live]
            merged = dict(seen)  # value -> code, codes given in insertion order
            if len(self.extra):
                extra_codes, extra_seen = self.extra.column(key)
                remap = np.array([merged.setdefault(value, len(merged)) for value in extra_seen], dtype=np.int32)
                codes = np.concatenate([codes, remap[extra_codes]])
            columns[key] = (np.ascontiguousarray(codes, dtype=np.int32), list(merged))
        return columns

    def contains_mask(self, needle: bytes) -> np.ndarray:
        return self._logical(self.base.contents.containing(needle), self.extra.contents.containing(needle))

    def _logical(self, base: np.ndarray, extra: np.ndarray) -> np.ndarray:
        if self.live is not None:
            base = base[self.live]
        return np.concatenate([base, extra]) if len(extra) else base

    # ------------------------------------------------------------------ updates

    def without(self, rows: Iterable[int]) -> "Rows":
        """These rows minus the given logical rows (the base is never copied)."""
        dropped = sorted(set(rows))
        if not dropped:
            return self
        count = self.base_count
        base_drop = [r for r in dropped if r < count]
        extra_drop = {r - count for r in dropped if r >= count}
        live = self.live
        if base_drop:
            live = np.arange(len(self.base), dtype=np.int64) if live is None else live
            live = np.delete(live, base_drop)
        extra = self.extra
        if extra_drop:
            extra = extra.take([i for i in range(len(extra)) if i not in extra_drop])
        return Rows(self.base, live, extra)

    def plus(self, added: Segment) -> "Rows":
        """These rows followed by ``added`` (the extra segment is rebuilt; the base is shared)."""
        if not len(added):
            return self
        if not len(self):
            return Rows(added)
        extra = Segment.joined([self.extra, added], self.dimension)
        return Rows(self.base, self.live, extra)
