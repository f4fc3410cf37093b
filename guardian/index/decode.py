"""Turn document files into :class:`DecodedDocument` rows, in bulk, in parallel where it helps.

Uses the format layer's vectorized ``read_documents``. Large cold builds split the files into
chunks decoded by worker processes (decoding is CPU-bound Python; threads would not help).
A file that cannot be read or decoded becomes an ``undecodable`` :class:`IndexProblem`.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from guardian.index.collection_index import DecodedDocument, IndexProblem

PARALLEL_MIN_FILES = 20_000
CHUNK_FILES = 5_000


def decode_files(paths: Sequence[Path], workers: int | None = None) -> tuple[list[DecodedDocument], list[IndexProblem]]:
    """Decode document files; returns (documents, problems). Never raises for a bad file."""
    paths = [os.fspath(p) for p in paths]  # plain strings: pathlib costs seconds at 100k files
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(paths) < PARALLEL_MIN_FILES:
        return decode_chunk(paths)
    chunks = [paths[i:i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    try:
        return decode_in_workers(chunks, workers)
    except (concurrent.futures.process.BrokenProcessPool, OSError):
        # workers could not start (no forkserver here, a frozen __main__, limits): same result in-process
        return decode_chunk(paths)


def decode_in_workers(chunks: list[list[Path]], workers: int) -> tuple[list[DecodedDocument], list[IndexProblem]]:
    documents: list[DecodedDocument] = []
    problems: list[IndexProblem] = []
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for chunk_docs, chunk_problems in pool.map(decode_chunk, chunks):
            documents.extend(chunk_docs)
            problems.extend(chunk_problems)
    return documents, problems


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def decode_chunk(paths: Sequence[Path]) -> tuple[list[DecodedDocument], list[IndexProblem]]:
    from guardian.format.chromem import read_documents

    batch = read_documents(list(paths))
    basename = os.path.basename
    problems = [IndexProblem(basename(path), "undecodable", _reason(error))
                for path, error in batch.errors.items()]
    rows = batch.embeddings  # (n, d) float32: each row is already a 1-D float32 view
    documents = [
        DecodedDocument(basename(path), doc_id, content, metadata if metadata is not None else {}, rows[i])
        for i, (path, doc_id, content, metadata) in enumerate(
            zip(batch.paths, batch.ids, batch.contents, batch.metadatas))
    ]
    documents.extend(decode_ragged(getattr(batch, "ragged", {}) or {}))
    return documents, problems


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
