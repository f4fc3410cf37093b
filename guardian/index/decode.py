"""Turn document files into :class:`Decoded` rows, in bulk, in parallel where it helps.

Uses the format layer's vectorized ``read_documents``. Large cold builds split the files into
chunks decoded by worker processes (decoding is CPU-bound Python; threads would not help). Each
chunk comes back packed (a few buffers, see ``guardian/index/rows.py``), not as a Python object
per document: pickling and unpickling 100k small objects would cost the parent process as much
time as the decoding saved, and leave its heap fragmented. The matrix does not come back at all:
each worker writes its rows straight into one shared memory file (:class:`SharedMatrix`) at the
rows its chunk starts at, so the parent neither receives nor copies 150 MB of floats (it did, at
~0.45 s of its time for 100k x 384, while both cores were busy decoding).
A file that cannot be read or decoded becomes an ``undecodable`` :class:`IndexProblem`.
"""

from __future__ import annotations

import concurrent.futures
import mmap
import os
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from guardian.index.collection_index import Decoded, DecodedDocument, IndexProblem
from guardian.index.rows import PackedMetadata, PackedStrings, Segment
from guardian.local.procpool import new_pool, usable_cpus

PARALLEL_MIN_FILES = 20_000
CHUNK_FILES = 5_000


def decode_files(paths: Sequence[Path], workers: int | None = None, pool: "DecodePool | None" = None) -> Decoded:
    """Decode document files (chunks in the given order). Never raises for a bad file.
    ``pool``: worker processes started ahead (see :class:`DecodePool`), used instead of a new pool."""
    paths = [os.fspath(p) for p in paths]  # plain strings: pathlib costs seconds at 100k files
    workers = usable_cpus() if workers is None else workers
    if workers <= 1 or len(paths) < PARALLEL_MIN_FILES:
        return unpack(decode_chunk(paths))
    chunks = [paths[i:i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    shared = SharedMatrix.for_files(paths)
    try:
        if pool is not None and pool.started():
            return join_chunks(pool.executor.map(decode_chunk, chunks, targets(chunks, shared)), len(paths), shared)
        return decode_in_workers(chunks, workers, shared)
    except (concurrent.futures.process.BrokenProcessPool, OSError) as exc:
        # workers could not start (no forkserver here, a frozen __main__, limits) or one died: the
        # same result in-process. The error's traceback (kept by the failed future) would hold the
        # join's frames and so its views of the shared matrix: dropped, the mapping goes at once.
        exc.__traceback__ = None
        return unpack(decode_chunk(paths))
    finally:
        if shared is not None:
            shared.close()


def decode_in_workers(chunks: list[list[str]], workers: int, shared: "SharedMatrix | None" = None) -> Decoded:
    """Chunks decoded by worker processes, joined here as they arrive (while the next ones decode)."""
    with new_pool(workers) as pool:
        return join_chunks(pool.map(decode_chunk, chunks, targets(chunks, shared)), sum(map(len, chunks)), shared)


def targets(chunks: list[list[str]], shared: "SharedMatrix | None") -> list[tuple | None]:
    """Where each chunk's rows go in the shared matrix: (its path, the chunk's first row, dimension)."""
    if shared is None:
        return [None] * len(chunks)
    starts = np.cumsum([0] + [len(chunk) for chunk in chunks[:-1]]).tolist()
    return [(shared.path, start, shared.dimension) for start in starts]


class SharedMatrix:
    """The (files, dimension) float32 matrix of a parallel decode, in an anonymous memory file
    (``memfd``): workers open it through ``/proc/<parent>/fd/<fd>`` and ``pwrite`` their rows at
    their chunk's place; the parent maps it and its rows are the index's matrix, never copied.

    Nothing to clean up on any path: the file has no name, and it is freed by the kernel once the
    parent has closed it (at the end of the decode, or when the parent dies) and the last array
    viewing the mapping is gone. Its pages are shared memory, not anonymous memory, and they leave
    with the index (once it is served from its cache file). The dimension is a guess, read from the
    first decodable file: a chunk whose rows have another dimension comes back pickled, as it did."""

    def __init__(self, rows: int, dimension: int) -> None:
        self.dimension = dimension
        self.fd = os.memfd_create("guardian-index-matrix", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, rows * dimension * 4)
            mapped = mmap.mmap(self.fd, rows * dimension * 4)
        except BaseException:
            os.close(self.fd)
            raise
        self.matrix = np.frombuffer(mapped, dtype=np.float32).reshape(rows, dimension)
        self.path = f"/proc/{os.getpid()}/fd/{self.fd}"

    @classmethod
    def for_files(cls, paths: Sequence[str]) -> "SharedMatrix | None":
        """A shared matrix for these files, or None where there is no memfd (workers pickle their rows)."""
        dimension = probe_dimension(paths)
        if not dimension or not hasattr(os, "memfd_create"):
            return None
        try:
            return cls(len(paths), dimension)
        except OSError:
            return None

    def close(self) -> None:
        """Close the file (after the workers are done with it): the mapping stays while rows view it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def rows(self, start: int, count: int) -> np.ndarray:
        return self.matrix[start:start + count]


PROBE_FILES = 8


def probe_dimension(paths: Sequence[str]) -> int:
    """The embedding size of the first of the first few files that decode (0: none does)."""
    from guardian.errors import CodecError
    from guardian.format.chromem import read_document

    for path in paths[:PROBE_FILES]:
        try:
            return int(np.asarray(read_document(path).embedding).size)
        except CodecError:
            continue
    return 0


def write_rows(target: tuple, matrix: np.ndarray) -> bool:
    """Write a chunk's rows into the parent's shared matrix; False when it cannot (they are pickled)."""
    path, start, dimension = target
    if matrix.ndim != 2 or matrix.shape[1] != dimension or not len(matrix):
        return False
    data = memoryview(np.ascontiguousarray(matrix, dtype=np.float32)).cast("B")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        offset, done = start * dimension * 4, 0
        while done < len(data):
            written = os.pwrite(fd, data[done:], offset + done)
            if written <= 0:   # no room (never for a memfd that was sized): pickled instead
                return False
            done += written
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def join_chunks(packed_chunks: Iterable[tuple], capacity: int, shared: SharedMatrix | None = None) -> Decoded:
    decoded = Decoded()
    joiner = ChunkJoiner(capacity, shared)
    finite = True
    for packed in packed_chunks:
        part = unpack(packed, shared)
        for segment in part.chunks:
            joiner.add(segment)
        finite = finite and (part.finite or not part.chunks)
        decoded.others.extend(part.others)
        decoded.problems.extend(part.problems)
    decoded.chunks = joiner.segments()
    decoded.finite = finite
    return decoded


class DecodePool:
    """Decode workers started before they are needed: a cold build starts them, then lists the store
    while they come up (starting the forkserver and workers that import the decoder takes ~0.3 s,
    as long as listing a 100k-file folder). They are started from a thread: starting a worker waits
    for the forkserver to answer with its pid, and the listing need not wait with it. Close the pool
    when the build is done."""

    def __init__(self, workers: int) -> None:
        self.usable = False
        self._warming: list[concurrent.futures.Future] = []
        self._starter: threading.Thread | None = None
        try:
            self.executor = new_pool(workers)
        except OSError:  # no forkserver or no processes here: decode_files decodes in-process
            self.executor = None
            return
        self.usable = True
        self._starter = threading.Thread(target=self._start, args=(workers,), name="guardian-decode-pool", daemon=True)
        self._starter.start()

    def _start(self, workers: int) -> None:
        try:
            self._warming = [self.executor.submit(warm_up) for _ in range(workers)]
        except Exception:  # noqa: BLE001 - workers that cannot start: decode_files decodes in-process
            self.usable = False

    def started(self) -> bool:
        """Wait until the workers were asked to start; True when they could be."""
        if self._starter is not None:
            self._starter.join()
        return self.usable

    @property
    def warming(self) -> list[concurrent.futures.Future]:
        self.started()
        return self._warming

    def close(self) -> None:
        if self._starter is not None:
            self._starter.join()
            self._starter = None
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

    def __init__(self, capacity: int, shared: SharedMatrix | None = None) -> None:
        self.capacity = capacity
        self.shared = shared
        self.matrix: np.ndarray | None = None
        self.rows = 0
        self.columns: list[list] = [[], [], [], []]
        self.apart: list[Segment] = []

    def add(self, segment: Segment) -> None:
        if self.matrix is None:
            self.matrix = self._matrix_for(segment.matrix.shape[1])
        if segment.matrix.shape[1] != self.matrix.shape[1] or self.rows + len(segment) > self.capacity:
            self.apart.append(segment)
            return
        place = self.matrix[self.rows:self.rows + len(segment)]
        if not _same_memory(place, segment.matrix):  # rows written in place by a worker stay there
            place[...] = segment.matrix                 # (numpy copies safely when the two overlap)
        self.rows += len(segment)
        for parts, column in zip(self.columns, (segment.files, segment.ids, segment.contents, segment.metadatas)):
            parts.append(column)

    def _matrix_for(self, dimension: int) -> np.ndarray:
        shared = self.shared
        if shared is not None and shared.dimension == dimension and len(shared.matrix) >= self.capacity:
            return shared.matrix
        return np.empty((self.capacity, dimension), dtype=np.float32)

    def segments(self) -> list[Segment]:
        if self.matrix is None or not self.rows:
            return self.apart
        files, ids, contents, metadatas = (kind.joined(parts) for kind, parts in zip(
            (PackedStrings, PackedStrings, PackedStrings, PackedMetadata), self.columns))
        return [Segment(files, ids, contents, metadatas, self.matrix[:self.rows])] + self.apart


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def decode_chunk(paths: Sequence[str], target: tuple | None = None) -> tuple:
    """Decode one chunk of files into plain picklable parts (see :func:`unpack`). With a ``target``
    (see :func:`targets`) the matrix is written into the shared matrix and only its place is returned."""
    from guardian.format.chromem import read_documents

    batch = read_documents(list(paths))
    basename = os.path.basename
    problems = [IndexProblem(basename(path), "undecodable", _reason(error))
                for path, error in batch.errors.items()]
    columns = (PackedStrings.of_strings(map(basename, batch.paths)), PackedStrings.of_strings(batch.ids),
               PackedStrings.of_strings(batch.contents), PackedMetadata.of_maps(batch.metadatas))
    matrix = np.ascontiguousarray(batch.embeddings if len(batch) else np.zeros((0, 0)), dtype=np.float32)
    finite = bool(np.isfinite(matrix).all())   # here, while the chunk's floats are in this CPU's cache
    parts = tuple((column.buffer, column.offsets) for column in columns)
    if target is not None and write_rows(target, matrix):
        matrix = ("shared", target[1], len(matrix))
    return parts, matrix, decode_ragged(batch.ragged or {}), problems, finite


def unpack(packed: tuple, shared: SharedMatrix | None = None) -> Decoded:
    parts, matrix, others, problems, finite = packed
    if isinstance(matrix, tuple):  # ("shared", first row, rows): written into the shared matrix
        matrix = shared.rows(matrix[1], matrix[2])
    (files, ids, contents, metadatas) = parts
    segment = Segment(PackedStrings(*files), PackedStrings(*ids), PackedStrings(*contents),
                      PackedMetadata(*metadatas), matrix)
    return Decoded([segment] if len(segment) else [], list(others), list(problems), finite)


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
