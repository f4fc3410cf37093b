"""One collection's searchable index: an immutable float32 matrix plus ids, contents, metadata.

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

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from guardian.index import query as q


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


@dataclass(frozen=True)
class Rows:
    """Row-aligned document data; ``matrix`` is (n, d) float32, read-only."""

    files: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    contents: tuple[str, ...] = ()
    metadatas: tuple[Mapping[str, str], ...] = ()
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, positions: Sequence[int]) -> "Rows":
        positions = list(positions)
        picked = np.asarray(positions, dtype=np.intp)
        return Rows(tuple(self.files[i] for i in positions), tuple(self.ids[i] for i in positions),
                    tuple(self.contents[i] for i in positions), tuple(self.metadatas[i] for i in positions),
                    self.matrix[picked] if len(picked) else self.matrix[:0])


@dataclass(frozen=True, eq=False)
class CollectionIndex:
    """The immutable index of one collection folder."""

    dir_name: str
    name: str
    metadata: Mapping[str, str]
    rows: Rows
    stats: Mapping[str, FileStat]  # every document file considered -> its stat when read
    problems: tuple[IndexProblem, ...] = ()
    damaged: bool = False  # the collection's metadata file is missing or unreadable
    damage: str = ""
    metadata_stat: FileStat | None = None

    def __post_init__(self) -> None:
        self.rows.matrix.setflags(write=False)
        object.__setattr__(self, "_row_of_id", {doc_id: i for i, doc_id in enumerate(self.rows.ids)})

    @property
    def dimension(self) -> int | None:
        return self.rows.matrix.shape[1] if len(self.rows) else None

    @property
    def indexed(self) -> int:
        return len(self.rows)

    @property
    def document_count(self) -> int:
        """Documents chromem would hold: indexed rows plus decoded documents left out of the matrix."""
        return len(self.rows) + sum(1 for p in self.problems if p.counts_as_document)

    def row_of(self, doc_id: str) -> int | None:
        return self._row_of_id.get(doc_id)

    def result(self, row: int, similarity: float) -> dict:
        return {"id": self.rows.ids[row], "similarity": float(similarity),
                "content": self.rows.contents[row], "metadata": dict(self.rows.metadatas[row] or {})}

    def search(self, queries: np.ndarray, k: int, filters: q.Filters) -> list[list[dict]]:
        """chromem's QueryEmbedding for each (validated, normalized) query row."""
        selected = q.matching_rows(self.rows.metadatas, self.rows.contents, filters)
        if len(self.rows) == 0 or k == 0:
            return [[] for _ in queries]
        answers = q.rank(self.rows.matrix, queries, k, selected)
        return [[self.result(int(r), s) for r, s in zip(best, sims)] for best, sims in answers]

    def summary(self) -> dict:
        return {"name": self.name, "dir": self.dir_name, "documents": self.document_count,
                "indexed": self.indexed, "dimension": self.dimension, "damaged": self.damaged,
                "damage": self.damage, "metadata": dict(self.metadata),
                "problems": [p.to_dict() for p in self.problems]}

    def updated(self, decoded: Iterable[DecodedDocument], problems: Iterable[IndexProblem],
                changed_stats: Mapping[str, FileStat | None], **header) -> "CollectionIndex":
        """A new index: rows of files not in ``changed_stats`` kept, the decoded files added.

        ``changed_stats`` maps every re-read file to its new stat (None: the file is gone);
        ``header`` may replace name/metadata/damaged/damage/metadata_stat.
        """
        changed = set(changed_stats)
        keep = [i for i, f in enumerate(self.rows.files) if f not in changed]
        kept_problems = [p for p in self.problems if p.file not in changed and p.kind != "duplicate-id"]
        stats = {f: s for f, s in self.stats.items() if f not in changed}
        stats.update({f: s for f, s in changed_stats.items() if s is not None})
        kept = self.rows if len(keep) == len(self.rows) else self.rows.take(keep)
        rows, new_problems = assemble(kept, list(decoded))
        fields = {"name": self.name, "metadata": self.metadata, "damaged": self.damaged,
                  "damage": self.damage, "metadata_stat": self.metadata_stat}
        fields.update(header)
        return CollectionIndex(self.dir_name, rows=rows, stats=stats,
                               problems=tuple(kept_problems) + tuple(problems) + tuple(new_problems),
                               **fields)

    @classmethod
    def empty(cls, dir_name: str, name: str, metadata: Mapping[str, str] | None = None,
              **header) -> "CollectionIndex":
        return cls(dir_name, name, dict(metadata or {}), Rows(), {}, **header)


def assemble(kept: Rows, decoded: list[DecodedDocument]) -> tuple[Rows, list[IndexProblem]]:
    """Merge kept rows with newly decoded documents; returns the rows (sorted by file) and problems."""
    problems: list[IndexProblem] = []
    dimension = kept.matrix.shape[1] if len(kept) else majority_dimension(decoded)
    usable = []
    for doc in decoded:
        problem = embedding_problem(doc, dimension)
        if problem:
            problems.append(problem)
        else:
            usable.append(doc)
    usable, duplicates = drop_duplicate_ids(kept, usable)
    problems.extend(duplicates)
    losing = {p.file for p in duplicates}
    if losing & set(kept.files):
        kept = kept.take([i for i, file in enumerate(kept.files) if file not in losing])
    return merge_sorted(kept, usable, dimension), problems


def majority_dimension(decoded: Sequence[DecodedDocument]) -> int:
    sizes = Counter(int(doc.embedding.shape[0]) for doc in decoded if doc.embedding.ndim == 1)
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


def drop_duplicate_ids(kept: Rows, usable: list[DecodedDocument]) -> tuple[list[DecodedDocument], list[IndexProblem]]:
    """chromem keeps the document read last (highest file name) for an id; report the others."""
    owner: dict[str, str] = {}
    for file, doc_id in zip(kept.files, kept.ids):
        owner[doc_id] = max(owner.get(doc_id, file), file)
    for doc in usable:
        owner[doc.id] = max(owner.get(doc.id, doc.file), doc.file)
    problems = []
    for file, doc_id in zip(kept.files, kept.ids):
        if owner[doc_id] != file:
            problems.append(_duplicate(file, doc_id, owner[doc_id]))
    winners = []
    for doc in usable:
        if owner[doc.id] == doc.file:
            winners.append(doc)
        else:
            problems.append(_duplicate(doc.file, doc.id, owner[doc.id]))
    return winners, problems


def _duplicate(file: str, doc_id: str, winner: str) -> IndexProblem:
    return IndexProblem(file, "duplicate-id", f"document {doc_id!r} is also in {winner}, which chromem keeps")


def merge_sorted(kept: Rows, added: list[DecodedDocument], dimension: int) -> Rows:
    """Kept rows (in their order) followed by the added documents sorted by file name."""
    if not added:
        return kept if len(kept) else Rows(matrix=np.zeros((0, dimension), np.float32))
    added = sorted(added, key=lambda doc: doc.file)
    new = np.stack([doc.embedding for doc in added]).astype(np.float32, copy=False)
    matrix = np.concatenate([kept.matrix, new]) if len(kept) else new
    return Rows(kept.files + tuple(d.file for d in added), kept.ids + tuple(d.id for d in added),
                kept.contents + tuple(d.content for d in added),
                kept.metadatas + tuple(d.metadata for d in added),
                np.ascontiguousarray(matrix, dtype=np.float32))
