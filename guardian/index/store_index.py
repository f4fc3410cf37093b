"""The index of a whole store: every collection folder, kept fresh without full rebuilds.

Interface for the runtime (its index and watcher parts) — all thread-safe, all
never-raising for damaged files (problems are recorded on the collection instead):

* :meth:`StoreIndex.build` — once at start: cached collections are loaded from
  ``paths.cache / "index"`` and only files whose (size, mtime_ns, inode) changed are re-decoded;
  the rest is decoded in bulk (worker processes for large stores).
* :meth:`StoreIndex.refresh_paths` ``(paths)`` — paths absolute or relative to the root; re-stat and
  re-decode the given paths: a document file that was added/changed is upserted, a missing one
  removed, an undecodable one removed from the index with an ``undecodable`` problem. A collection folder path or its
  metadata file refreshes that collection (added/removed/renamed collection).
* :meth:`StoreIndex.refresh_collection` ``(dir_name)`` and :meth:`StoreIndex.refresh_all` —
  compare stats and re-decode only what changed.

Readers (:meth:`collection`, :meth:`search`, :meth:`collections`) see one consistent snapshot:
every update builds new immutable :class:`CollectionIndex` objects and swaps one dict
reference (copy-on-write), so concurrent queries never see a half-updated matrix.

Collection names come from each folder's metadata file. A folder whose metadata file is
missing or undecodable is still indexed, flagged ``damaged``, under the catalog name whose
sha256 prefix matches the folder (when guardian has seen it) or else under the folder name.
Two folders with the same collection name: the later folder (name order) answers, as in
chromem's map. Every real folder at the root is read, hidden ones too, and every ``*<ext>`` file
in it, hidden ones too (chromem loads them); folders holding no chromem file are skipped, as
chromem skips them. Folders are listed with ``guardian.store.scan``'s walker (one listing rule
for the check and the index), and a folder whose listing digest equals the one its cached or
current rows reflect is not compared file by file.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import stat as stat_module
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from guardian.errors import CodecError, QueryError, StoreError
from guardian.format.layout import METADATA_STEM, extension
from guardian.index import query as q
from guardian.index.cache import IndexCache
from guardian.index.collection_index import CollectionIndex, FileStat
from guardian.index.decode import PARALLEL_MIN_FILES, DecodePool, decode_files
from guardian.local.procpool import usable_cpus
from guardian.local.fsutil import TEMP_PREFIX
from guardian.logs import get_logger
from guardian.store.scan import FolderListing, no_cyclic_gc

log = get_logger("guardian.index")


# The smallest st_size per entry of a folder on common filesystems (ext4 ~24-32, tmpfs 20 bytes):
# a folder this large holds at least PARALLEL_MIN_FILES entries, roughly.
DIR_BYTES_PER_ENTRY = 16


class CollectionFiles:
    """One collection folder as found on disk: its listing, split into chromem's files on need
    (an unchanged folder is recognised by the listing's digest alone)."""

    def __init__(self, listing: FolderListing | None, ext: str = "", metadata_file: str = "") -> None:
        self.listing = listing
        self.ext, self.metadata_file = ext, metadata_file
        # taken first, before anything else holds the listing's objects (a marshal-based digest
        # depends on their reference counts)
        self.digest = listing.digest() if listing is not None else ""

    @property
    def exists(self) -> bool:
        return self.listing is not None

    @functools.cached_property
    def _files(self) -> tuple[FileStat | None, dict[str, tuple]]:
        metadata_stat = None
        documents: dict[str, tuple] = {}
        if self.listing is None:
            return metadata_stat, documents
        ext, metadata_file = self.ext, self.metadata_file
        for name, is_dir, _link, size, mtime_ns, inode, mode, error in self.listing.rows:
            if is_dir or error or not name.endswith(ext) or name.startswith(TEMP_PREFIX) or stat_module.S_ISDIR(mode):
                continue
            if name == metadata_file:
                metadata_stat = FileStat(size, mtime_ns, inode)
            else:  # a plain tuple equals a FileStat and is cheaper to make 100k times
                documents[name] = (size, mtime_ns, inode)
        return metadata_stat, documents

    @property
    def metadata_stat(self) -> FileStat | None:
        return self._files[0]

    @property
    def documents(self) -> dict[str, tuple]:
        return self._files[1]


GONE = CollectionFiles(None)


@dataclass(frozen=True)
class Header:
    name: str
    metadata: Mapping[str, str]
    damaged: bool = False
    damage: str = ""
    metadata_stat: FileStat | None = None

    def fields(self) -> dict:
        return {"name": self.name, "metadata": dict(self.metadata), "damaged": self.damaged,
                "damage": self.damage, "metadata_stat": self.metadata_stat}


@dataclass(frozen=True)
class SearchAnswer:
    collection: CollectionIndex
    results: list[list[dict]]


class StoreIndex:
    """All collections of one store root; see the module docstring for the update interface."""

    def __init__(self, root: str | os.PathLike, compress: bool | None = None,
                 cache_dir: str | os.PathLike | None = None, known_names: Iterable[str] = (),
                 workers: int | None = None) -> None:
        self.root = Path(root)
        self._compress = compress
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.known_names = {q_name for q_name in known_names if q_name}
        self.workers = workers
        self._write_lock = threading.RLock()
        self._by_dir: dict[str, CollectionIndex] = {}
        # (the _by_dir it was made of, name -> index): _by_dir is replaced on every change, never edited
        self._by_name: tuple[dict, dict[str, CollectionIndex]] = (self._by_dir, {})
        self._dirty: set[str] = set()
        self._relisted: dict[str, CollectionIndex] = {}  # cached rows still right, listed differently
        self._forgotten: set[str] = set()
        self.built = False
        self.built_at: float | None = None
        self.updated_at: float | None = None
        self.build_seconds: float | None = None
        self.cached_collections = 0
        self.error = ""

    # ------------------------------------------------------------------ setup

    @property
    def compress(self) -> bool:
        if self._compress is None:
            self._compress = detect_compress(self.root)
        return self._compress

    @property
    def ext(self) -> str:
        return extension(self.compress)

    @property
    def metadata_file(self) -> str:
        return METADATA_STEM + self.ext

    def _cache(self) -> IndexCache | None:
        return IndexCache(self.cache_dir, self.ext) if self.cache_dir else None

    # ------------------------------------------------------------------ reading

    def collections(self) -> dict[str, CollectionIndex]:
        """Name -> index of the current snapshot (later folder wins a duplicate name)."""
        return dict(self._names())

    def _names(self) -> dict[str, CollectionIndex]:
        """:meth:`collections` made once per snapshot (a query looks its collection up in it)."""
        snapshot = self._by_dir
        made_of, by_name = self._by_name
        if made_of is not snapshot:
            by_name = {index.name: index for _, index in sorted(snapshot.items())}
            self._by_name = (snapshot, by_name)
        return by_name

    def collection(self, name: str) -> CollectionIndex:
        found = self._names().get(name)
        if found is None:
            if not self.built:
                raise QueryError("the index is still being built", "retry in a moment", status=503)
            known = ", ".join(sorted(self.collections())) or "none"
            raise QueryError(f"unknown collection {name!r}", f"known collections: {known}", status=404)
        return found

    def search(self, name: str, request: q.QueryRequest,
               embed: Callable[[list[str]], np.ndarray] | None = None) -> SearchAnswer:
        """Answer a parsed request the way chromem's QueryEmbedding would."""
        index = self.collection(name)
        k = q.check_k(request.k, index.document_count)
        queries = q.query_matrix(self._request_vectors(index, request, embed), index.dimension)
        if k == 0:
            return SearchAnswer(index, [[] for _ in range(len(queries))])
        return SearchAnswer(index, index.search(queries, k, request.filters))

    def _request_vectors(self, index: CollectionIndex, request: q.QueryRequest, embed) -> list:
        if request.like is not None:
            row = index.row_of(request.like)
            if row is None:
                raise QueryError(f"collection {index.name!r} has no document with id {request.like!r}",
                                 "pass the id of an indexed document", status=404)
            return [index.rows.vector(row)]
        if request.texts is not None:
            if embed is None:
                raise QueryError("text queries need an embedder", "configure embed_url or embed_model_dir "
                                 "(and pip install guardian[embed] for local models)", status=400)
            return list(embed(request.texts))
        return request.vectors if request.vector32 is None else request.vector32

    def summary(self) -> dict:
        collections = sorted(self._by_dir.values(), key=lambda c: c.dir_name)
        return {
            "store": str(self.root), "ready": self.built, "built_at": self.built_at, "updated_at": self.updated_at,
            "build_seconds": self.build_seconds, "compress": self._compress,
            "collections": [c.summary() for c in collections],
            "documents": sum(c.document_count for c in collections),
            "indexed": sum(c.indexed for c in collections),
            "damaged": sum(1 for c in collections if c.damaged),
            "problems": sum(len(c.problems) for c in collections),
            "error": self.error,
        }

    @property
    def clean(self) -> bool:
        """No damaged collection and no undecodable document in the index's view of the store."""
        return all(not c.damaged and not any(p.kind == "undecodable" for p in c.problems)
                   for c in self._by_dir.values())

    # ------------------------------------------------------------------ building

    def build(self, listings: Mapping[str, FolderListing] | None = None) -> "StoreIndex":
        """Index every collection folder (cache first, then bulk decoding of the rest).

        ``listings``: the store's folders as the caller just listed them (folder name -> listing of
        every real folder at the root that could be listed, as ``StoreScan.take_listings`` hands them):
        then the store is not listed again. The index is then as the store was at that listing: the
        caller must hear of every change made since (a watcher started before the listing) and
        pass it to :meth:`refresh_paths` once the build returns."""
        started = time.perf_counter()
        with self._write_lock:
            if not self.root.is_dir():
                self.error = f"store {self.root} is not a folder"
                raise StoreError(self.error)
            pool = self._pool_for_cold_build()
            try:
                listings = self._listings(listings)
                fresh = self._from_cache(listings)
                pending = {d: listing for d, listing in listings.items() if d not in fresh}
                fresh.update(self._decode_folders(pending, pool))
            finally:
                if pool is not None:
                    pool.close()
            self._by_dir = fresh
            self.built, self.error = True, ""
            self.built_at = self.updated_at = time.time()
            self.build_seconds = time.perf_counter() - started
        log.info("index_built", collections=len(fresh), seconds=round(self.build_seconds, 3),
                 cached=self.cached_collections)
        return self

    def _from_cache(self, listings: dict[str, CollectionFiles]) -> dict[str, CollectionIndex]:
        cache = self._cache()
        loaded: dict[str, CollectionIndex] = {}
        if cache is None:
            return loaded
        for dir_name, listing in listings.items():
            cached = cache.load(dir_name)
            if cached is None:
                continue
            loaded[dir_name] = self._brought_up_to_date(dir_name, cached, listing)
        self.cached_collections = len(loaded)
        return loaded

    def _pool_for_cold_build(self) -> DecodePool | None:
        """Decode workers started before the listing (they come up while it runs) when the folders
        that have no cached index look large enough to be decoded in parallel. The size is judged
        from the folders' own st_size (it grows with their entries on ext4, tmpfs, btrfs, xfs): a
        guess that only decides whether to start the workers early, never what is decoded."""
        workers = usable_cpus() if self.workers is None else self.workers
        if workers <= 1:
            return None
        cache = self._cache()
        try:
            with os.scandir(self.root) as it:
                uncached = sum(entry.stat(follow_symlinks=False).st_size for entry in it
                               if entry.is_dir(follow_symlinks=False)
                               and (cache is None or not cache.manifest_path(entry.name).exists()))
        except OSError:
            return None
        return DecodePool(workers) if uncached >= PARALLEL_MIN_FILES * DIR_BYTES_PER_ENTRY else None

    def _decode_folders(self, listings: dict[str, CollectionFiles],
                        pool: DecodePool | None = None) -> dict[str, CollectionIndex]:
        """Index folders from scratch: decode every document file (in bulk, per folder)."""
        with no_cyclic_gc():   # ~10 acyclic objects per document: GC passes over them only cost time
            return self._decode_folders_now(listings, pool)

    def _decode_folders_now(self, listings: dict[str, CollectionFiles],
                            pool: DecodePool | None) -> dict[str, CollectionIndex]:
        built = {}
        for dir_name, listing in sorted(listings.items()):
            folder = os.path.join(self.root, dir_name) + os.sep
            decoded = decode_files([folder + name for name in sorted(listing.documents)], self.workers, pool)
            header = self._read_header(dir_name, listing)
            built[dir_name] = CollectionIndex.empty(dir_name, header.name).updated(
                decoded, dict(listing.documents), listing_digest=listing.digest, **header.fields())
            self._dirty.add(dir_name)
        return built

    # ------------------------------------------------------------------ refreshing

    def refresh_paths(self, paths: Iterable[str | os.PathLike]) -> None:
        """Re-read the given document files / collection folders (see the module docstring)."""
        files_by_dir: dict[str, set[str]] = {}
        whole: set[str] = set()
        for raw in paths:
            parts = self._relative_parts(Path(raw))
            if not parts or parts[0].startswith(TEMP_PREFIX):
                continue
            if len(parts) == 1 or parts[1] == self.metadata_file:
                whole.add(parts[0])
            elif len(parts) == 2 and parts[1].endswith(self.ext) and not parts[1].startswith(TEMP_PREFIX):
                files_by_dir.setdefault(parts[0], set()).add(parts[1])
        with self._write_lock:
            for dir_name in sorted(whole):
                self.refresh_collection(dir_name)
            for dir_name, files in sorted(files_by_dir.items()):
                if dir_name not in whole:
                    self._refresh_files(dir_name, files)

    def refresh_collection(self, dir_name: str, listing: CollectionFiles | None = None) -> None:
        """Bring one collection folder up to date (added, removed, renamed, changed files)."""
        with self._write_lock:
            listing = listing if listing is not None else self._list_folder(dir_name)
            current = self._by_dir.get(dir_name)
            if not listing.exists:
                if current is not None:
                    self._swap(dir_name, None)
                return
            if current is None:
                self._swap(dir_name, self._decode_folders({dir_name: listing})[dir_name])
                return
            self._swap(dir_name, self._brought_up_to_date(dir_name, current, listing))

    def refresh_all(self) -> None:
        """Compare every folder's stats with the index; re-decode only what changed."""
        with self._write_lock:
            present = self._listings()
            for dir_name in sorted(set(self._by_dir) | set(present)):
                self.refresh_collection(dir_name, present.get(dir_name, GONE))

    def _refresh_files(self, dir_name: str, files: set[str]) -> None:
        current = self._by_dir.get(dir_name)
        if current is None:
            self.refresh_collection(dir_name)
            return
        folder = self.root / dir_name
        stats = {name: _stat(folder / name) for name in files}
        changed = {name: st for name, st in stats.items() if current.stats.get(name) != st or st is None}
        changed = {name: st for name, st in changed.items() if st is not None or name in current.stats}
        if changed:
            self._swap(dir_name, self._updated(current, dir_name, changed, None))

    def _brought_up_to_date(self, dir_name: str, current: CollectionIndex,
                            listing: CollectionFiles) -> CollectionIndex:
        if listing.digest and listing.digest == current.listing_digest:
            return current  # the same names, types and stats as when these rows were read
        known = current.stats.as_dict()
        changed: dict[str, FileStat | None] = {
            name: st for name, st in listing.documents.items() if known.get(name) != st}
        changed.update({name: None for name in known if name not in listing.documents})
        header = None
        if listing.metadata_stat != current.metadata_stat or (current.damaged and listing.metadata_stat is None):
            header = self._read_header(dir_name, listing)
        if not changed and header is None:
            if listing.digest == current.listing_digest:
                return current
            relisted = dataclasses.replace(current, listing_digest=listing.digest)
            self._relisted[dir_name] = relisted   # the next save_cache rewrites its manifest only
            return relisted
        self._dirty.add(dir_name)
        return self._updated(current, dir_name, changed, header, listing.digest)

    def _updated(self, current: CollectionIndex, dir_name: str, changed: dict[str, FileStat | None],
                 header: Header | None, listing_digest: str = "") -> CollectionIndex:
        folder = self.root / dir_name
        to_read = [folder / name for name, st in sorted(changed.items()) if st is not None]
        decoded = decode_files(to_read, self.workers)
        fields = header.fields() if header else {}
        return current.updated(decoded, changed, listing_digest=listing_digest, **fields)

    def _swap(self, dir_name: str, index: CollectionIndex | None) -> None:
        """Publish a new snapshot: one dict replaced by a new one (readers keep the old)."""
        snapshot = dict(self._by_dir)
        if index is None:
            snapshot.pop(dir_name, None)
            self._forgotten.add(dir_name)
            self._dirty.discard(dir_name)
        else:
            if snapshot.get(dir_name) is not index:
                self._dirty.add(dir_name)
            snapshot[dir_name] = index
        self._by_dir = snapshot
        self.updated_at = time.time()

    # ------------------------------------------------------------------ cache

    def save_cache(self, force: bool = True, on_error=None) -> int:
        """Write the changed collections to the cache; returns how many were written.

        Each written collection is then served from its mapped cache file (the same rows, in the
        same order) unless it changed meanwhile: its decoded copy leaves private memory. With
        ``force`` False a collection already served from the cache is rewritten only once its
        live changes reach ``COMPACT_ROWS`` rows or ``COMPACT_SHARE`` of it: a few changed rows
        stay in memory rather than rewriting the whole file each time (a restart before that
        re-reads just those files: the cache is an accelerator, never the truth).

        ``on_error(dir_name, exc)``, when given, is told of a collection whose cache could not be
        written instead of the warning log (a one-shot command says it once, in its own words)."""
        cache = self._cache()
        if cache is None:
            return 0
        with self._write_lock:
            snapshot = self._by_dir
            kept = set() if force else {d for d in self._dirty if d in snapshot and not worth_writing(snapshot[d])}
            dirty, forgotten = sorted(self._dirty - kept), sorted(self._forgotten)
            self._dirty, self._forgotten = kept, set()
        written = 0
        self._save_listing_digests(cache, snapshot, dirty)
        for dir_name in forgotten:
            cache.forget(dir_name)
        for dir_name in dirty:
            index = snapshot.get(dir_name)
            if index is not None:
                try:
                    mapped = cache.save(index)
                    written += 1
                except (OSError, ValueError) as exc:  # ValueError: the file just written does not map back
                    if on_error is None:
                        log.warning("index_cache_not_written", dir=dir_name, error=str(exc))
                    else:
                        on_error(dir_name, exc)
                    continue
                with self._write_lock:
                    if self._by_dir.get(dir_name) is index:
                        snapshot = dict(self._by_dir)
                        snapshot[dir_name] = mapped
                        self._by_dir = snapshot
        return written

    def _save_listing_digests(self, cache: IndexCache, snapshot: dict, dirty: list[str]) -> None:
        """Manifests whose rows are right but whose listing digest is not (see ``save_listing_digest``):
        only while the collection is still the one loaded from that manifest (not changed since)."""
        with self._write_lock:
            relisted, self._relisted = self._relisted, {}
        for dir_name, index in sorted(relisted.items()):
            if dir_name in dirty or snapshot.get(dir_name) is not index:
                continue   # changed meanwhile: its whole cache is written (or it is gone)
            try:
                cache.save_listing_digest(dir_name, index.listing_digest)
            except OSError as exc:
                log.warning("index_cache_not_written", dir=dir_name, error=str(exc))

    # ------------------------------------------------------------------ disk

    def _listings(self, given: Mapping[str, FolderListing] | None = None) -> dict[str, CollectionFiles]:
        """Every folder at the root that holds a chromem file (hidden ones too; symlinks never), from
        the ``given`` listings when the caller has them (see :meth:`build`), else read now."""
        folders = {name: given[name] for name in sorted(given)} if given is not None else self._read_folders()
        if self._compress is None:
            from guardian.store.scan import detect_compression

            self._compress = detect_compression(folders)  # the rule of `guardian check`, on the same listings
        listings = {name: self._files_of(listing) for name, listing in folders.items()}
        return {name: listing for name, listing in listings.items() if listing.exists}

    def _read_folders(self) -> dict[str, FolderListing]:
        try:
            with os.scandir(self.root) as it:
                names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            raise StoreError(f"cannot list the store {self.root}: {exc.strerror or exc}") from None
        return {name: listing for name in names if (listing := self._read_folder(name)) is not None}

    def _read_folder(self, dir_name: str) -> FolderListing | None:
        folder = os.path.join(self.root, dir_name)
        try:
            if not stat_module.S_ISDIR(os.lstat(folder).st_mode):
                return None
            return FolderListing.read(folder)
        except OSError:
            return None

    def _files_of(self, listing: FolderListing | None) -> CollectionFiles:
        if listing is None or not listing.count_suffix(self.ext):
            return GONE  # no chromem file: chromem skips the folder
        return CollectionFiles(listing, self.ext, self.metadata_file)

    def _list_folder(self, dir_name: str) -> CollectionFiles:
        """A folder's chromem files with their stats, listed by the check's own walker."""
        return self._files_of(self._read_folder(dir_name))

    def _read_header(self, dir_name: str, listing: CollectionFiles) -> Header:
        from guardian.format.chromem import read_collection

        if listing.metadata_stat is None:
            return Header(self._guess_name(dir_name), {}, True, "collection metadata file is missing")
        try:
            record = read_collection(self.root / dir_name / self.metadata_file)
        except (CodecError, OSError) as exc:
            return Header(self._guess_name(dir_name), {}, True,
                          f"collection metadata unreadable: {getattr(exc, 'reason', exc)}",
                          listing.metadata_stat)
        if not record.name:
            return Header(self._guess_name(dir_name), dict(record.metadata or {}), True,
                          "collection metadata holds an empty name", listing.metadata_stat)
        return Header(record.name, dict(record.metadata or {}), metadata_stat=listing.metadata_stat)

    def _guess_name(self, dir_name: str) -> str:
        from guardian.format.chromem import collection_dir_name

        matches = sorted(n for n in self.known_names if collection_dir_name(n) == dir_name)
        return matches[0] if matches else dir_name

    def _relative_parts(self, path: Path) -> tuple[str, ...]:
        if not path.is_absolute():
            path = self.root / path
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root)).parts
        except ValueError:
            return ()


COMPACT_ROWS = 1000
COMPACT_SHARE = 0.01


def worth_writing(index: CollectionIndex) -> bool:
    """A freshly decoded collection always (that is what takes it out of private memory); a mapped
    one once enough of its rows changed."""
    rows = index.rows
    return not rows.base.mapped or rows.changed >= max(COMPACT_ROWS, COMPACT_SHARE * len(rows))


def _stat(path: Path) -> FileStat | None:
    try:
        if path.is_dir():
            return None
        return FileStat.of(path.stat())
    except OSError:
        return None


def detect_compress(root: Path) -> bool:
    """The store's compression, detected exactly as `guardian check` detects it."""
    from guardian.store.scan import detect_store_compression

    return detect_store_compression(root)
