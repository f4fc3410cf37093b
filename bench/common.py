"""Synthetic chromem stores for the benches, written with guardian's own encoder.

``make_store(root, n_docs, dims=384, compress=False, collections=("bench",), seed=0) -> Path``
writes ``n_docs`` documents spread round-robin over ``collections`` (each gets its folder
``sha256(name)[:8]`` and ``00000000.gob[.gz]``), with unit-length float32 embeddings, a uuid-like
id, contextd-like metadata and a short content. Deterministic for a given seed. Returns ``root``.
Exactly ``n_docs`` files are written: an id whose 8-hex file name is taken gets a suffix.
Other bench scripts import this: keep the signature stable.

Also the benches' shared measuring helpers: ``timed(fn) -> (seconds, value)``,
``stat_walk(root) -> entries``, the floor any walk of a store compares with, and
``work_folder(path, prefix)``, a bench's work folder (a temporary one unless given).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guardian.format import chromem  # noqa: E402
from guardian.format.chromem import Document  # noqa: E402


def make_store(root, n_docs: int, dims: int = 384, compress: bool = False,
               collections: tuple[str, ...] | list[str] = ("bench",), seed: int = 0) -> Path:
    root = Path(root)
    rng = np.random.default_rng(seed)
    folders = []
    for name in collections:
        folder = root / chromem.collection_dir_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / chromem.metadata_file_name(compress)).write_bytes(
            chromem.encode_collection(name, {"created_by": "bench"}, compress=compress))
        folders.append(folder)
    ext = chromem.extension(compress)
    batch = 4096
    for start in range(0, n_docs, batch):
        count = min(batch, n_docs - start)
        vectors = rng.standard_normal((count, dims)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for offset in range(count):
            i = start + offset
            doc_id = f"{seed:08x}-{i:04x}-4000-8000-{i:012x}"
            folder = folders[i % len(folders)]
            while (folder / (chromem.document_stem(doc_id) + ext)).exists():
                doc_id += "x"  # 32-bit file names collide (~1 in 100k): keep exactly n_docs files
            doc = Document(doc_id, synthetic_metadata(i), vectors[offset], f"memory {i}: a synthetic lesson body")
            path = folder / (chromem.document_stem(doc_id) + ext)
            path.write_bytes(chromem.encode_document(doc, compress=compress))
    return root


def synthetic_metadata(i: int) -> dict[str, str]:
    return {"project_id": "bench", "tenant_id": "t", "title": f"memory {i}", "usage_count": str(i % 7),
            "created_at": "2026-01-01T00:00:00Z", "tags": "bench,synthetic"}


def document_paths(root) -> list[str]:
    """Every document file of a store (metadata files excluded), sorted."""
    out = []
    for folder in sorted(os.scandir(root), key=lambda e: e.name):
        if folder.is_dir(follow_symlinks=False):
            out.extend(sorted(e.path for e in os.scandir(folder.path)
                              if e.is_file() and not e.name.startswith(chromem.METADATA_STEM)))
    return out


def timed(fn):
    """``(wall seconds, fn())``."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def stat_walk(root) -> int:
    """The floor for anything that walks a store (a no-change snapshot, a scan): scandir + lstat of
    every entry, nothing else; returns how many entries there were."""
    pending, count = [str(root)], 0
    while pending:
        for entry in os.scandir(pending.pop()):
            entry.stat(follow_symlinks=False)
            count += 1
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
    return count


@contextlib.contextmanager
def work_folder(path: str | None, prefix: str):
    """``path`` (created, kept afterwards), or a new temporary folder removed afterwards."""
    work = Path(path or tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not path:
            shutil.rmtree(work, ignore_errors=True)
