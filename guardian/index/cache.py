"""On-disk index cache in the state dir (``paths.cache / "index"``), never inside the store.

Per collection folder ``<dir>``:

* ``<dir>.<token>.npy`` — the float32 matrix;
* ``<dir>.manifest`` — the manifest (Python ``marshal``: plain data only, no code, fast to load):
  the header (name, metadata, damage), row data (files, ids, contents, metadatas), the stat
  (size, mtime_ns, inode) of every document file when it was read, the problems, and the
  ``<token>`` of its matrix file.

The matrix is written first, then the manifest (both atomically); a manifest only ever names a
complete matrix. On start, the store index compares the folder's current stats with the
manifest and re-decodes only the files that differ. A cache that cannot be read is ignored
(rebuilt), never an error.
"""

from __future__ import annotations

import contextlib
import io
import marshal
import secrets
from pathlib import Path

import numpy as np

from guardian.local.fsutil import atomic_write, ensure_dir
from guardian.index.collection_index import CollectionIndex, FileStat, IndexProblem, Rows
from guardian.logs import get_logger

CACHE_VERSION = 3

log = get_logger("guardian.index.cache")


class IndexCache:
    """Reads and writes cached :class:`CollectionIndex` objects under one folder."""

    def __init__(self, folder: Path, ext: str) -> None:
        self.folder = Path(folder)
        self.ext = ext

    def manifest_path(self, dir_name: str) -> Path:
        return self.folder / f"{dir_name}.manifest"

    def load(self, dir_name: str) -> CollectionIndex | None:
        """The cached index of a folder, or None when absent, stale in format or unreadable."""
        path = self.manifest_path(dir_name)
        try:
            manifest = marshal.loads(path.read_bytes())
            if (not isinstance(manifest, dict) or manifest.get("version") != CACHE_VERSION
                    or manifest.get("ext") != self.ext):
                return None
            mapped = np.load(self.folder / manifest["matrix"], mmap_mode="r", allow_pickle=False)
            matrix = np.asarray(mapped)  # a plain ndarray view of the mapping (no memmap subclass per result)
            return from_manifest(dir_name, manifest, matrix)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            log.warning("index_cache_unreadable", dir=dir_name, error=str(exc))
            return None

    def save(self, index: CollectionIndex) -> None:
        ensure_dir(self.folder)
        token = secrets.token_hex(4)
        matrix_name = f"{index.dir_name}.{token}.npy"
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(index.rows.matrix), allow_pickle=False)
        atomic_write(self.folder / matrix_name, buffer.getbuffer(), sync_dir=False)
        del buffer
        manifest = to_manifest(index, self.ext, matrix_name)
        atomic_write(self.manifest_path(index.dir_name), marshal.dumps(manifest))
        self.remove_matrices(index.dir_name, keep=matrix_name)

    def forget(self, dir_name: str) -> None:
        """Drop a folder's cache (the collection folder is gone). Only guardian's own cache files."""
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path(dir_name).unlink()
        self.remove_matrices(dir_name, keep=None)

    def remove_matrices(self, dir_name: str, keep: str | None) -> None:
        for old in self.folder.glob(f"{dir_name}.*.npy"):
            if old.name != keep:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

def to_manifest(index: CollectionIndex, ext: str, matrix_name: str) -> dict:
    rows = index.rows
    return {
        "version": CACHE_VERSION, "ext": ext, "matrix": matrix_name,
        "name": index.name, "metadata": dict(index.metadata), "damaged": index.damaged,
        "damage": index.damage,
        "metadata_stat": index.metadata_stat.as_list() if index.metadata_stat else None,
        "files": list(rows.files), "ids": list(rows.ids), "contents": list(rows.contents),
        "metadatas": [dict(m or {}) for m in rows.metadatas],
        "stats": {file: tuple(stat) for file, stat in index.stats.items()},  # marshal keeps tuples
        "problems": [[p.file, p.kind, p.detail, p.counts_as_document] for p in index.problems],
    }


def from_manifest(dir_name: str, manifest: dict, matrix: np.ndarray) -> CollectionIndex:
    n = len(manifest["ids"])
    if matrix.dtype != np.float32 or matrix.ndim != 2 or matrix.shape[0] != n:
        raise ValueError(f"matrix {matrix.shape} {matrix.dtype} does not match {n} rows")
    columns = (manifest["files"], manifest["contents"], manifest["metadatas"])
    if any(len(column) != n for column in columns):
        raise ValueError("row columns of different lengths")
    rows = Rows(tuple(manifest["files"]), tuple(manifest["ids"]), tuple(manifest["contents"]),
                tuple(manifest["metadatas"]), matrix)
    stats = manifest["stats"]
    if not all(type(stat) is tuple and len(stat) == 3 for stat in stats.values()):
        raise ValueError("malformed file stats")
    problems = tuple(IndexProblem(file, kind, detail, bool(counts))
                     for file, kind, detail, counts in manifest["problems"])
    metadata_stat = FileStat(*manifest["metadata_stat"]) if manifest["metadata_stat"] else None
    return CollectionIndex(dir_name, manifest["name"], manifest["metadata"], rows, stats, problems,
                           damaged=bool(manifest["damaged"]), damage=manifest["damage"],
                           metadata_stat=metadata_stat)
