"""One collection's searchable index: an immutable float32 matrix plus ids, contents, metadata.

The rows live in :mod:`guardian.index.rows` (packed columns, the base usually mapped from the
index cache); contents and metadata are decoded only for the results returned.

A :class:`CollectionIndex` never changes after it is built: an update builds a new one
(:meth:`CollectionIndex.updated`) from the kept rows plus the re-decoded files, and the store
index swaps the reference. Readers holding the old object keep a consistent view.

Rules (the same as chromem's loader where chromem has one):

* A fresh build orders rows by document file name (chromem reads a folder in name order);
  an update appends new rows. Row order only breaks ties between equal similarities.
* Two files holding the same document id: the later file name wins (chromem overwrites its map);
  the other is reported as a ``duplicate-id`` problem.
* All rows share one dimension: the most common one among the decoded documents (or the
  existing rows' dimension on an update). Other documents stay out of the matrix and are
  reported (``dimension-mismatch``); they still count as documents of the collection, as they
  would in chromem's ``Count()``. Embeddings holding NaN/inf are reported and left out too.
* A file that cannot be decoded is reported (``undecodable``) and left out; never fatal.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from guardian.index import query as q
from guardian.index.rows import PackedStrings, Rows, Segment, encode


class FileStat(NamedTuple):
    """What decides whether a file changed: size, mtime (ns) and inode (a tuple: cheap for 100k files)."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> "FileStat":
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)

    def as_list(self) -> list[int]:
        return [self.size, self.mtime_ns, self.inode]


@dataclass(frozen=True)
class IndexProblem:
    """A document file the index could not (fully) use."""

    file: str
    kind: str  # undecodable | dimension-mismatch | non-finite | duplicate-id
    detail: str
    counts_as_document: bool = False  # decoded fine; chromem would hold it

    def to_dict(self) -> dict:
        return {"file": self.file, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class DecodedDocument:
    """One decoded document file, as the index needs it."""

    file: str
    id: str
    content: str
    metadata: Mapping[str, str]
    embedding: np.ndarray  # 1-D float32


@dataclass
class Decoded:
    """Decoded document files: packed chunks (one matrix each), single documents, problems."""

    chunks: list[Segment] = field(default_factory=list)
    others: list[DecodedDocument] = field(default_factory=list)  # documents of another dimension
    problems: list[IndexProblem] = field(default_factory=list)
    finite: bool = False  # every chunk's matrix is known to hold no NaN/inf (the decoder looked)

    @classmethod
    def of_documents(cls, documents: Sequence[DecodedDocument], problems: Sequence[IndexProblem] = ()) -> "Decoded":
        return cls([], list(documents), list(problems))

    def extend(self, other: "Decoded") -> None:
        self.finite = (self.finite or not self.chunks) and (other.finite or not other.chunks)
        self.chunks.extend(other.chunks)
        self.others.extend(other.others)
        self.problems.extend(other.problems)


class FileStats(Mapping):
    """file name -> (size, mtime_ns, inode) of every document file considered.

    A sorted packed base (what the last build or cache held: no Python object per file) plus a
    small dict of changes since (``None``: the file is gone)."""

    __slots__ = ("names", "table", "changes")

    def __init__(self, names: PackedStrings | None = None, table: np.ndarray | None = None,
                 changes: Mapping[str, tuple | None] | None = None) -> None:
        self.names = names if names is not None else PackedStrings.of_bytes([])
        self.table = table if table is not None else np.zeros((0, 3), dtype=np.int64)
        self.changes = dict(changes or {})

    @classmethod
    def of(cls, stats: Mapping[str, tuple]) -> "FileStats":
        names = sorted(stats)
        table = np.array([_stat_row(stats[name]) for name in names], dtype=np.int64).reshape(-1, 3)
        return cls(PackedStrings.of_strings(names), table)

    def _base_row(self, name: str) -> int | None:
        at = bisect.bisect_left(self.names, name)
        return at if at < len(self.names) and self.names[at] == name else None

    def get(self, name: str, default=None):
        if name in self.changes:
            found = self.changes[name]
            return default if found is None else tuple(found)
        row = self._base_row(name)
        return default if row is None else _stat_tuple(self.table[row].tolist())

    def __getitem__(self, name: str) -> tuple:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def as_dict(self) -> dict[str, tuple]:
        """Every file and its stat in one dict (for comparing a whole folder listing at once)."""
        out = dict(zip(self.names, map(_stat_tuple, self.table.tolist())))
        for name, stat in self.changes.items():
            if stat is None:
                out.pop(name, None)
            else:
                out[name] = tuple(stat)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict()) if self.changes else len(self.names)

    def updated(self, changed: Mapping[str, tuple | None]) -> "FileStats":
        return FileStats(self.names, self.table, {**self.changes, **changed})


def _stat_row(stat: tuple) -> tuple[int, int, int]:
    size, mtime_ns, inode = stat
    return size, mtime_ns, inode - (1 << 64) if inode >= 1 << 63 else inode  # int64 holds a uint64 inode


def _stat_tuple(row: list[int]) -> tuple[int, int, int]:
    size, mtime_ns, inode = row
    return size, mtime_ns, inode + (1 << 64) if inode < 0 else inode


@dataclass(frozen=True, eq=False)
class CollectionIndex:
    """The immutable index of one collection folder."""

    dir_name: str
    name: str
    metadata: Mapping[str, str]
    rows: Rows
    stats: FileStats  # every document file considered -> its stat when read
    problems: tuple[IndexProblem, ...] = ()
    damaged: bool = False  # the collection's metadata file is missing or unreadable
    damage: str = ""
    metadata_stat: FileStat | None = None
    listing_digest: str = ""  # the folder listing these rows reflect ("" after a partial refresh)

    def __post_init__(self) -> None:
        for segment in (self.rows.base, self.rows.extra):
            if segment.matrix.flags.writeable:
                segment.matrix.setflags(write=False)

    @property
    def dimension(self) -> int | None:
        return self.rows.dimension if len(self.rows) else None

    @property
    def indexed(self) -> int:
        return len(self.rows)

    @functools.cached_property  # the index never changes; every query checks k against it
    def document_count(self) -> int:
        """Documents chromem would hold: indexed rows plus decoded documents left out of the matrix."""
        return len(self.rows) + sum(1 for p in self.problems if p.counts_as_document)

    def row_of(self, doc_id: str) -> int | None:
        return self.rows.row_of("ids", doc_id)

    def results(self, rows: Sequence[int], similarities: Sequence[float]) -> list[dict]:
        """chromem's Result for each given row (best first, as ranked): id, similarity, content, metadata."""
        ids, contents, metadatas = self.rows.shown(rows)
        if isinstance(similarities, np.ndarray):
            similarities = similarities.tolist()
        return [{"id": doc_id, "similarity": similarity, "content": content, "metadata": metadata}
                for doc_id, similarity, content, metadata in zip(ids, similarities, contents, metadatas)]

    def matching(self, filters: q.Filters) -> np.ndarray | None:
        """chromem's documentMatchesFilters over every row: the passing rows (ascending), or None
        when there are no filters. Metadata keys are compared through a per-key column (built once
        per segment); content operators are byte searches over the packed contents."""
        if filters.empty:
            return None
        mask = np.ones(len(self.rows), dtype=bool)
        for key, wanted in filters.where.items():
            mask &= self.rows.where_mask(key, wanted)
        contains = filters.where_document.get("$contains")
        if contains is not None:
            mask &= self._containing(contains)
        not_contains = filters.where_document.get("$not_contains")
        if not_contains is not None:
            mask &= ~self._containing(not_contains)
        return np.flatnonzero(mask).astype(np.intp)

    def _containing(self, text: str) -> np.ndarray:
        try:
            needle = encode(text)
        except UnicodeEncodeError:  # a lone surrogate no stored byte string decodes to: compare as text
            return np.fromiter((text in content for content in self.rows.contents), dtype=bool, count=len(self.rows))
        return self.rows.contains_mask(needle)

    def rank(self, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """``query.rank`` over these rows (base and extra segments): (rows, similarities) per query."""
        return [(np.array(best, dtype=np.intp), np.array(similarities, dtype=np.float32))
                for best, similarities in self._ranked(queries, k, rows)]

    def _ranked(self, queries: np.ndarray, k: int, rows: np.ndarray | None) -> list[tuple[list[int], list[float]]]:
        """:meth:`rank` as Python lists (what results are built from: no arrays made to be undone)."""
        if rows is not None and rows.size == 0:
            return [([], []) for _ in queries]
        if rows is None:
            scores = self.rows.scores(queries)
        elif rows.size * 4 < len(self.rows):
            scores = self.rows.subset_scores(queries, rows)
        else:
            scores = self.rows.scores(queries)[:, rows]
        return q.pick_lists(scores, k, rows)

    def search(self, queries: np.ndarray, k: int, filters: q.Filters) -> list[list[dict]]:
        """chromem's QueryEmbedding for each (validated, normalized) query row."""
        selected = self.matching(filters)
        if len(self.rows) == 0 or k == 0:
            return [[] for _ in queries]
        return [self.results(best, similarities) for best, similarities in self._ranked(queries, k, selected)]

    def summary(self) -> dict:
        return {"name": self.name, "dir": self.dir_name, "documents": self.document_count,
                "indexed": self.indexed, "dimension": self.dimension, "damaged": self.damaged,
                "damage": self.damage, "metadata": dict(self.metadata),
                "problems": [p.to_dict() for p in self.problems]}

    def updated(self, decoded: Decoded, changed_stats: Mapping[str, FileStat | None], **header) -> "CollectionIndex":
        """A new index: rows of files not in ``changed_stats`` kept, the decoded files added.

        ``changed_stats`` maps every re-read file to its new stat (None: the file is gone);
        ``header`` may replace name/metadata/damaged/damage/metadata_stat/listing_digest.
        The base segment is shared with this index, never copied.
        """
        dropped = [] if not len(self.rows) else [
            row for row in map(lambda f: self.rows.row_of("files", f), changed_stats) if row is not None]
        kept_problems = [p for p in self.problems if p.file not in changed_stats and p.kind != "duplicate-id"]
        rows, new_problems = assemble(self.rows.without(dropped), decoded)
        fields = {"name": self.name, "metadata": self.metadata, "damaged": self.damaged,
                  "damage": self.damage, "metadata_stat": self.metadata_stat, "listing_digest": ""}
        fields.update(header)
        return CollectionIndex(self.dir_name, rows=rows, stats=self.stats.updated(changed_stats),
                               problems=tuple(kept_problems) + tuple(decoded.problems) + tuple(new_problems),
                               **fields)

    @classmethod
    def empty(cls, dir_name: str, name: str, metadata: Mapping[str, str] | None = None,
              **header) -> "CollectionIndex":
        return cls(dir_name, name, dict(metadata or {}), Rows(), FileStats(), **header)


def assemble(kept: Rows, decoded: Decoded) -> tuple[Rows, list[IndexProblem]]:
    """Kept rows followed by the usable decoded documents (sorted by file); returns rows and problems."""
    dimension = kept.dimension if len(kept) else majority_dimension(decoded)
    problems: list[IndexProblem] = []
    pieces: list[Segment] = []
    singles: list[DecodedDocument] = []
    for chunk in decoded.chunks:
        if not len(chunk):
            continue
        if chunk.matrix.shape[1] != dimension:
            problems.extend(embedding_problem(doc, dimension) for doc in chunk_documents(chunk))
            continue
        if decoded.finite:  # checked where it was decoded (a worker, while the matrix was in its cache)
            pieces.append(chunk)
            continue
        finite = np.isfinite(chunk.matrix).all(axis=1)
        if not finite.all():
            bad = chunk_documents(chunk, np.flatnonzero(~finite))
            problems.extend(embedding_problem(doc, dimension) for doc in bad)
            chunk = chunk.take(np.flatnonzero(finite).tolist())
        pieces.append(chunk)
    for doc in decoded.others:
        problem = embedding_problem(doc, dimension)
        if problem:
            problems.append(problem)
        else:
            singles.append(doc)
    if singles:
        pieces.append(Segment.of_rows([d.file for d in singles], [d.id for d in singles], [d.content for d in singles],
                                      [d.metadata for d in singles], np.stack([d.embedding for d in singles])))
    added = sorted_by_file(Segment.joined(pieces, dimension))
    kept, added, duplicates = drop_duplicate_ids(kept, added)
    problems.extend(duplicates)
    return (kept.plus(added) if len(kept) else Rows(added)), problems


def chunk_documents(chunk: Segment, positions: Sequence[int] | None = None) -> list[DecodedDocument]:
    positions = range(len(chunk)) if positions is None else positions
    return [DecodedDocument(chunk.files[i], chunk.ids[i], chunk.contents[i], chunk.metadatas[i], chunk.matrix[i])
            for i in positions]


def sorted_by_file(segment: Segment) -> Segment:
    """chromem reads a folder in name order: a fresh build's rows follow it (chunks usually already do)."""
    if in_byte_order(segment.files):
        return segment
    files = list(segment.files)
    if all(a <= b for a, b in zip(files, files[1:])):
        return segment
    return segment.take(sorted(range(len(files)), key=files.__getitem__))


def in_byte_order(names: PackedStrings) -> bool:
    """True when ASCII names are already sorted, judged on their bytes without decoding 100k strings
    (for ASCII, byte order is str order); names all of one length are compared as one numpy array.
    False means: not known (the caller sorts the decoded strings)."""
    buffer = names.buffer
    if len(names) < 2 or not isinstance(buffer, bytes) or not buffer.isascii() or b"\0" in buffer:
        return False
    offsets = names.offsets
    width = int(offsets[1] - offsets[0])
    if width > 0 and offsets[-1] - offsets[0] == width * len(names) and np.all(np.diff(offsets) == width):
        packed = np.frombuffer(buffer, dtype=f"S{width}", count=len(names), offset=int(offsets[0]))
        return bool(np.all(packed[1:] >= packed[:-1]))
    raws = names.raws()
    return all(a <= b for a, b in zip(raws, raws[1:]))


def majority_dimension(decoded: Decoded) -> int:
    sizes: Counter = Counter()
    for chunk in decoded.chunks:
        if len(chunk):
            sizes[int(chunk.matrix.shape[1])] += len(chunk)
    sizes.update(int(doc.embedding.shape[0]) for doc in decoded.others if doc.embedding.ndim == 1)
    sizes.pop(0, None)
    if not sizes:
        return 0
    best = max(sizes.values())
    return max(size for size, count in sizes.items() if count == best)


def embedding_problem(doc: DecodedDocument, dimension: int) -> IndexProblem | None:
    size = int(doc.embedding.shape[0]) if doc.embedding.ndim == 1 else -1
    if size != dimension:
        return IndexProblem(doc.file, "dimension-mismatch",
                            f"document {doc.id!r} has {size} dimensions, the collection {dimension}",
                            counts_as_document=True)
    if not np.all(np.isfinite(doc.embedding)):
        return IndexProblem(doc.file, "non-finite", f"document {doc.id!r} has NaN or infinite values",
                            counts_as_document=True)
    return None


def drop_duplicate_ids(kept: Rows, added: Segment) -> tuple[Rows, Segment, list[IndexProblem]]:
    """chromem keeps the document read last (highest file name) for an id; report the others.

    Kept rows hold distinct ids already: each added id is looked up among them, never the reverse.
    A fresh build whose ids are all distinct (the usual case) is recognised on the raw id bytes alone
    (the same string is the same bytes), without decoding 100k ids and file names."""
    if not len(kept):
        raw_ids = added.ids.raws()
        if len(set(raw_ids)) == len(raw_ids):
            return kept, added, []
    files, ids = list(added.files), list(added.ids)
    owner: dict[str, str] = {}
    for file, doc_id in zip(files, ids):
        owner[doc_id] = max(owner.get(doc_id, file), file)
    kept_losers: list[tuple[int, IndexProblem]] = []
    if len(kept):
        for doc_id, file in list(owner.items()):
            row = kept.row_of("ids", doc_id)
            if row is None:
                continue
            kept_file = kept.files[row]
            if kept_file > file:
                owner[doc_id] = kept_file
            else:
                kept_losers.append((row, _duplicate(kept_file, doc_id, file)))
    problems = [problem for _, problem in sorted(kept_losers, key=lambda pair: pair[0])]
    losing = [i for i, (file, doc_id) in enumerate(zip(files, ids)) if owner[doc_id] != file]
    problems.extend(_duplicate(files[i], ids[i], owner[ids[i]]) for i in losing)
    if losing:
        lost = set(losing)
        added = added.take([i for i in range(len(files)) if i not in lost])
    return kept.without(row for row, _ in kept_losers), added, problems


def _duplicate(file: str, doc_id: str, winner: str) -> IndexProblem:
    return IndexProblem(file, "duplicate-id", f"document {doc_id!r} is also in {winner}, which chromem keeps")
