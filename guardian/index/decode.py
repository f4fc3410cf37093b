"""Turn document files into :class:`Decoded` rows, in bulk, in parallel where it helps.

Uses the format layer's vectorized ``read_documents``. Large cold builds split the files into
chunks decoded by worker processes (decoding is CPU-bound Python; threads would not help). Each
chunk comes back packed (a few buffers and one matrix, see ``guardian/index/rows.py``), not as a
Python object per document: pickling and unpickling 100k small objects would cost the parent
process as much time as the decoding saved, and leave its heap fragmented.
A file that cannot be read or decoded becomes an ``undecodable`` :class:`IndexProblem`.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from guardian.index.collection_index import Decoded, DecodedDocument, IndexProblem
from guardian.index.rows import PackedMetadata, PackedStrings, Segment

PARALLEL_MIN_FILES = 20_000
CHUNK_FILES = 5_000


def decode_files(paths: Sequence[Path], workers: int | None = None, pool: "DecodePool | None" = None) -> Decoded:
    """Decode document files (chunks in the given order). Never raises for a bad file.
    ``pool``: worker processes started ahead (see :class:`DecodePool`), used instead of a new pool."""
    paths = [os.fspath(p) for p in paths]  # plain strings: pathlib costs seconds at 100k files
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(paths) < PARALLEL_MIN_FILES:
        return unpack(decode_chunk(paths))
    chunks = [paths[i:i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    try:
        if pool is not None and pool.usable:
            return join_chunks(pool.executor.map(decode_chunk, chunks), sum(map(len, chunks)))
        return decode_in_workers(chunks, workers)
    except (concurrent.futures.process.BrokenProcessPool, OSError):
        # workers could not start (no forkserver here, a frozen __main__, limits): same result in-process
        return unpack(decode_chunk(paths))


def decode_in_workers(chunks: list[list[str]], workers: int) -> Decoded:
    """Chunks decoded by worker processes, joined here as they arrive (while the next ones decode)."""
    with new_executor(workers) as pool:
        return join_chunks(pool.map(decode_chunk, chunks), sum(map(len, chunks)))


def new_executor(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    context = multiprocessing.get_context("forkserver")
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context)


def join_chunks(packed_chunks: Iterable[tuple], capacity: int) -> Decoded:
    decoded = Decoded()
    joiner = ChunkJoiner(capacity)
    for packed in packed_chunks:
        part = unpack(packed)
        for segment in part.chunks:
            joiner.add(segment)
        decoded.others.extend(part.others)
        decoded.problems.extend(part.problems)
    decoded.chunks = joiner.segments()
    return decoded


class DecodePool:
    """Decode workers started before they are needed: a cold build starts them, then lists the store
    while they come up (starting the forkserver and workers that import the decoder takes ~0.3 s,
    as long as listing a 100k-file folder). Close it when the build is done."""

    def __init__(self, workers: int) -> None:
        self.usable = False
        try:
            self.executor = new_executor(workers)
            self.warming = [self.executor.submit(warm_up) for _ in range(workers)]
            self.usable = True
        except OSError:  # no forkserver or no processes here: decode_files decodes in-process
            self.executor = None

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
            self.usable = False


def warm_up() -> None:
    """Run in each worker at start: import the decoder before the first chunk arrives."""
    import guardian.format.chromem  # noqa: F401


class ChunkJoiner:
    """Joins decoded chunks into one segment: the matrix is filled in place (allocated once for every
    file), the string columns are joined at the end. A chunk of another dimension stays apart."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.matrix: np.ndarray | None = None
        self.rows = 0
        self.columns: list[list] = [[], [], [], []]
        self.apart: list[Segment] = []

    def add(self, segment: Segment) -> None:
        if self.matrix is None:
            self.matrix = np.empty((self.capacity, segment.matrix.shape[1]), dtype=np.float32)
        if segment.matrix.shape[1] != self.matrix.shape[1] or self.rows + len(segment) > self.capacity:
            self.apart.append(segment)
            return
        self.matrix[self.rows:self.rows + len(segment)] = segment.matrix
        self.rows += len(segment)
        for parts, column in zip(self.columns, (segment.files, segment.ids, segment.contents, segment.metadatas)):
            parts.append(column)

    def segments(self) -> list[Segment]:
        if self.matrix is None or not self.rows:
            return self.apart
        files, ids, contents, metadatas = (kind.joined(parts) for kind, parts in zip(
            (PackedStrings, PackedStrings, PackedStrings, PackedMetadata), self.columns))
        return [Segment(files, ids, contents, metadatas, self.matrix[:self.rows])] + self.apart


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def decode_chunk(paths: Sequence[str]) -> tuple:
    """Decode one chunk of files into plain picklable parts (see :func:`unpack`)."""
    from guardian.format.chromem import read_documents

    batch = read_documents(list(paths))
    basename = os.path.basename
    problems = [IndexProblem(basename(path), "undecodable", _reason(error))
                for path, error in batch.errors.items()]
    columns = (PackedStrings.of_strings(map(basename, batch.paths)), PackedStrings.of_strings(batch.ids),
               PackedStrings.of_strings(batch.contents), PackedMetadata.of_maps(batch.metadatas))
    matrix = batch.embeddings if len(batch) else np.zeros((0, 0), dtype=np.float32)
    parts = tuple((column.buffer, column.offsets) for column in columns)
    return parts, np.ascontiguousarray(matrix, dtype=np.float32), decode_ragged(batch.ragged or {}), problems


def unpack(packed: tuple) -> Decoded:
    parts, matrix, others, problems = packed
    (files, ids, contents, metadatas) = parts
    segment = Segment(PackedStrings(*files), PackedStrings(*ids), PackedStrings(*contents),
                      PackedMetadata(*metadatas), matrix)
    return Decoded([segment] if len(segment) else [], list(others), list(problems))


def decode_ragged(ragged: dict) -> list[DecodedDocument]:
    """Documents the batch set aside for their dimension: read again to learn their ids."""
    from guardian.format.chromem import read_document
    from guardian.errors import CodecError

    documents = []
    for path in ragged:
        try:
            doc = read_document(path)
        except CodecError:
            continue
        documents.append(DecodedDocument(os.path.basename(path), doc.id, doc.content, dict(doc.metadata or {}),
                                         np.asarray(doc.embedding, dtype=np.float32).reshape(-1)))
    return documents


def _reason(error: BaseException) -> str:
    return getattr(error, "reason", None) or str(error)
