"""On-disk index cache in the state dir (``paths.cache / "index"``), never inside the store.

Per collection folder ``<dir>``:

* ``<dir>.<token>.rows`` — the rows, laid out to be memory-mapped: the float32 matrix, then for
  each string column (files, ids, contents, metadata, and the names of the stat table) an int64
  offsets array and the bytes, then the int64 stat table (size, mtime_ns, inode per file), then for
  each of ``KEY_COLUMNS`` an int32 code per row and the values the codes stand for (a session that
  maps the cache filters by tenant and project without decoding a million metadata maps first).
  Every section starts on a 64-byte boundary; offsets are positions in the file itself.
* ``<dir>.manifest`` — a small ``marshal`` dict: the format version, the rows file's name, size
  and sections, the collection header (name, metadata, damage), the problems, the metadata
  file's stat, the digest of the folder listing the rows reflect, and a CRC of the offsets and
  stat sections.

Loading maps the rows file (``mmap``) and wraps its sections in numpy arrays and packed columns
without reading them: a warm restart costs the folder listing plus a few milliseconds, and the
matrix and texts stay page cache (the kernel's to drop and re-read), not private memory.

The rows file is written first (temp file, fsync, rename), then the manifest (atomically, then
the folder is synced); a manifest only ever names a complete rows file. A rows file is never
changed once written (a mapped file cut shorter would fault its reader): a new one replaces it,
and the old one is unlinked, which a process still mapping it does not notice. A cache that cannot be
used — missing, of another format version, truncated, with offsets out of place or a CRC that
does not match — is ignored (the folder is decoded again and the cache rewritten), never an
error. A bit flip inside the matrix or the texts is not detected (as a file system would not).
"""

from __future__ import annotations

import contextlib
import marshal
import mmap
import os
import secrets
import stat
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

from guardian.index.collection_index import CollectionIndex, FileStat, FileStats, IndexProblem
from guardian.index.rows import PackedMetadata, PackedStrings, Rows, Segment
from guardian.local.fsutil import atomic_write, ensure_dir, temp_path_for, write_all
from guardian.logs import get_logger

CACHE_VERSION = 5
ALIGN = 64
COLUMNS = ("files", "ids", "contents", "metadatas")
KEY_COLUMNS = ("tenant_id", "project_id")  # the metadata contextd's search tools filter every query on
ROWS_SUFFIX = ".rows"
OLD_SUFFIXES = (".npy",)  # matrices of cache version 3 and before

log = get_logger("guardian.index.cache")


class UnusableCache(ValueError):
    """The cache files exist but cannot be used (the folder is decoded again)."""


class IndexCache:
    """Reads and writes cached :class:`CollectionIndex` objects under one folder."""

    def __init__(self, folder: Path, ext: str) -> None:
        self.folder = Path(folder)
        self.ext = ext

    def manifest_path(self, dir_name: str) -> Path:
        return self.folder / f"{dir_name}.manifest"

    def load(self, dir_name: str) -> CollectionIndex | None:
        """The cached index of a folder (mapped), or None when absent, of another format or unusable."""
        try:
            manifest = self._manifest(dir_name)
            if manifest is None:
                return None
            return from_manifest(dir_name, manifest, map_file(self.folder / manifest["rows"], manifest["size"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, EOFError, IndexError) as exc:
            log.warning("index_cache_unreadable", dir=dir_name, error=str(exc))
            return None

    def _manifest(self, dir_name: str) -> dict | None:
        """The folder's manifest, or None when it is of another format version or extension."""
        manifest = marshal.loads(self.manifest_path(dir_name).read_bytes())
        if isinstance(manifest, dict) and manifest.get("version") == CACHE_VERSION and manifest.get("ext") == self.ext:
            return manifest
        return None

    def save(self, index: CollectionIndex) -> CollectionIndex:
        """Write ``index`` (atomically, durably); returns the same index mapped from the new file."""
        ensure_dir(self.folder)
        rows_name = f"{index.dir_name}.{secrets.token_hex(4)}{ROWS_SUFFIX}"
        layout = write_rows(self.folder / rows_name, index)
        manifest = to_manifest(index, self.ext, rows_name, layout)
        atomic_write(self.manifest_path(index.dir_name), marshal.dumps(manifest))
        self.remove_rows(index.dir_name, keep=rows_name)
        return from_manifest(index.dir_name, manifest, map_file(self.folder / rows_name, manifest["size"]))

    def save_listing_digest(self, dir_name: str, digest: str) -> bool:
        """Rewrite only the manifest, with a new listing digest, when the folder holds the same files
        with the same stats as the rows say but lists differently (another directory order, or
        digests of an older rule): without it every restart would compare it file by file again.
        The rows file is untouched; False when there is no usable manifest to rewrite."""
        try:
            manifest = self._manifest(dir_name)
        except (OSError, ValueError, EOFError, TypeError):
            return False
        if manifest is None:
            return False
        manifest["listing_digest"] = digest
        atomic_write(self.manifest_path(dir_name), marshal.dumps(manifest))
        return True

    def forget(self, dir_name: str) -> None:
        """Drop a folder's cache (the collection folder is gone). Only guardian's own cache files."""
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path(dir_name).unlink()
        self.remove_rows(dir_name, keep=None)

    def remove_rows(self, dir_name: str, keep: str | None) -> None:
        """Older rows files of a folder (a mapped one stays readable until it is unmapped)."""
        for suffix in (ROWS_SUFFIX, *OLD_SUFFIXES):
            for old in self.folder.glob(f"{dir_name}.*{suffix}"):
                if old.name != keep:
                    with contextlib.suppress(FileNotFoundError):
                        old.unlink()


# --------------------------------------------------------------------------- writing


class Layout:
    """Where each section goes in a rows file (64-byte aligned), and the CRCs of the checked ones."""

    def __init__(self) -> None:
        self.sections: dict[str, tuple[int, int]] = {}
        self.crcs: dict[str, int] = {}
        self.size = 0

    def next_start(self) -> int:
        return -(-self.size // ALIGN) * ALIGN

    def emit(self, name: str, parts: Iterable[bytes | memoryview], checked: bool = False
             ) -> Iterable[bytes | memoryview]:
        """Padding up to the section's start, then its parts (its size is what they add up to)."""
        start = self.next_start()
        if start > self.size:
            yield bytes(start - self.size)
        nbytes, crc = 0, 0
        for part in parts:
            nbytes += len(part)
            if checked:
                crc = zlib.crc32(part, crc)
            yield part
        self.sections[name] = (start, nbytes)
        if checked:
            self.crcs[name] = crc
        self.size = start + nbytes


def write_rows(path: Path, index: CollectionIndex) -> Layout:
    """Stream the rows file to a temp file, fsync it, rename it into place (the manifest follows)."""
    layout = Layout()
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            for chunk in rows_file_chunks(index, layout):
                write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # our own temp file
        raise
    return layout


def _bytes_of(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array).reshape(-1)).cast("B")


def rows_file_chunks(index: CollectionIndex, layout: Layout) -> Iterable[bytes | memoryview]:
    rows = index.rows
    matrix = (_bytes_of(chunk.astype(np.float32, copy=False)) for chunk in rows.matrix_chunks())
    yield from layout.emit("matrix", matrix)
    for column in COLUMNS:
        yield from _packed(layout, column, *rows.column_data(column))
    stats = index.stats if not index.stats.changes else FileStats.of(index.stats.as_dict())
    names = stats.names
    yield from _packed(layout, "stat_names", [names.data()], names.offsets - names.offsets[0])
    yield from layout.emit("stat_table", [_bytes_of(stats.table.astype(np.int64, copy=False))], checked=True)
    for key, (codes, values) in rows.key_columns(KEY_COLUMNS).items():
        yield from layout.emit(f"key:{key}.codes", [_bytes_of(codes)])
        packed = PackedStrings.of_strings(values)
        yield from _packed(layout, f"key:{key}.values", [packed.data()], packed.offsets - packed.offsets[0])


def _packed(layout: Layout, name: str, parts: list[bytes], offsets: np.ndarray) -> Iterable[bytes | memoryview]:
    """An offsets section (made positions in the file), then the bytes section it points into."""
    offsets_bytes = offsets.size * 8
    data_start = -(-(layout.next_start() + offsets_bytes) // ALIGN) * ALIGN
    yield from layout.emit(name + ".offsets", [_bytes_of((offsets + data_start).astype(np.int64))], checked=True)
    yield from layout.emit(name + ".data", (part for part in parts if len(part)))


def to_manifest(index: CollectionIndex, ext: str, rows_name: str, layout: Layout) -> dict:
    return {
        "version": CACHE_VERSION, "ext": ext, "rows": rows_name, "size": layout.size,
        "sections": layout.sections, "crcs": layout.crcs, "count": len(index.rows),
        "dimension": index.rows.dimension if len(index.rows) else 0,
        "name": index.name, "metadata": dict(index.metadata), "damaged": index.damaged, "damage": index.damage,
        "metadata_stat": index.metadata_stat.as_list() if index.metadata_stat else None,
        "listing_digest": index.listing_digest,
        "problems": [[p.file, p.kind, p.detail, p.counts_as_document] for p in index.problems],
        "key_columns": list(KEY_COLUMNS),
    }


# --------------------------------------------------------------------------- reading


def map_file(path: Path, size: int) -> mmap.mmap:
    """Map a rows file read-only; refuse anything but a regular file of exactly ``size`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size or size <= 0:
            raise UnusableCache(f"{path.name} is {st.st_size} bytes, the manifest says {size}")
        return mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def checked_sections(mapped, manifest: dict) -> dict[str, tuple[int, int]]:
    """The manifest's sections, once each lies inside the file and every checked one (each offsets
    section and the stat table: what says where rows and files are) matches its CRC."""
    sections, crcs = manifest["sections"], manifest["crcs"]
    for start, nbytes in sections.values():
        if start < 0 or nbytes < 0 or start + nbytes > len(mapped):
            raise UnusableCache("a section lies outside the rows file")
    unchecked = [name for name in sections if (name.endswith(".offsets") or name == "stat_table") and name not in crcs]
    if unchecked:
        raise UnusableCache(f"section {unchecked[0]} has no CRC")
    view = memoryview(mapped)
    try:
        for name, crc in crcs.items():
            start, nbytes = sections[name]
            if zlib.crc32(view[start:start + nbytes]) != crc:
                raise UnusableCache(f"section {name} does not match its CRC")
    finally:
        view.release()
    return sections


def _array(mapped, sections: dict, name: str, dtype, count: int) -> np.ndarray:
    start, nbytes = sections[name]
    if nbytes != count * np.dtype(dtype).itemsize:
        raise UnusableCache(f"section {name} holds {nbytes} bytes for {count} values")
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=start)


def _count(sections: dict, name: str) -> int:
    """How many strings a packed column holds, from the size of its offsets section (count + 1 int64s)."""
    return sections[name + ".offsets"][1] // 8 - 1


def _column(mapped, sections: dict, name: str, count: int, kind=PackedStrings) -> PackedStrings:
    """A packed column over its mapped offsets. Only their ends are compared with the sections here:
    that they never decrease follows from their CRC (checked first, in ``checked_sections``), as the
    writer only ever writes running sums; a 100k-row warm restart does not walk them again."""
    offsets = _array(mapped, sections, name + ".offsets", np.int64, count + 1)
    start, nbytes = sections[name + ".data"]
    if offsets[0] != start or offsets[-1] != start + nbytes:
        raise UnusableCache(f"offsets of {name} out of place")
    return kind(mapped, offsets)


def from_manifest(dir_name: str, manifest: dict, mapped) -> CollectionIndex:
    sections = checked_sections(mapped, manifest)
    n, d = int(manifest["count"]), int(manifest["dimension"])
    matrix = _array(mapped, sections, "matrix", np.float32, n * d).reshape(n, d)
    columns = [_column(mapped, sections, name, n, PackedMetadata if name == "metadatas" else PackedStrings)
               for name in COLUMNS]
    stat_count = _count(sections, "stat_names")
    names = _column(mapped, sections, "stat_names", stat_count)
    table = _array(mapped, sections, "stat_table", np.int64, stat_count * 3).reshape(stat_count, 3)
    problems = tuple(IndexProblem(file, kind, detail, bool(counts))
                     for file, kind, detail, counts in manifest["problems"])
    metadata_stat = FileStat(*manifest["metadata_stat"]) if manifest["metadata_stat"] else None
    segment = Segment(*columns, matrix, mapped=True)
    for key in manifest["key_columns"]:
        values = f"key:{key}.values"
        segment.seed_column(key, _array(mapped, sections, f"key:{key}.codes", np.int32, n),
                            _column(mapped, sections, values, _count(sections, values)))
    rows = Rows(segment)
    return CollectionIndex(dir_name, manifest["name"], manifest["metadata"], rows,
                           FileStats(names, table), problems, damaged=bool(manifest["damaged"]),
                           damage=manifest["damage"], metadata_stat=metadata_stat,
                           listing_digest=manifest["listing_digest"])
