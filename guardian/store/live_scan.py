"""chromem's verdict on a live store, kept current change by change (a running sidecar's one scan).

:func:`~guardian.store.scan.scan_store` lists and stats every file of the store (and decodes the
changed ones): about half a second at 100k documents, too much to repeat every few seconds while
contextd writes. A sidecar hears of every change from its watcher, so :class:`LiveScan` keeps what
each entry of each collection folder contributes to the verdict (its document id, its own
problems, the collection record) and, told which paths changed, looks at those entries only: one
stat and one decode each. The :class:`~guardian.store.scan.StoreScan` it hands out is folded from
the kept facts in time proportional to the folders and the problems, not to the files.

It reads exactly as ``scan_store`` does: each entry is judged by scan's own ``read_entry`` (on a
scratch collection), and what depends on several entries (duplicate ids, the first fatal problem
in chromem's reading order, the collection's own verdict, duplicate names) is derived here the way
``scan_store`` derives it while reading in order. ``tests/store/test_live_scan.py`` compares the two
after every kind of change. A new or replaced collection folder is read whole (its files' decodes
come from the verified cache), as is the store by :meth:`LiveScan.build`.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass, field, replace

from guardian.errors import StoreError
from guardian.format import layout
from guardian.local.fsutil import TEMP_PREFIX as GUARDIAN_TEMP_PREFIX
from guardian.store import verified_cache
from guardian.store.scan import (CollectionScan, FileNames, FolderEntry, FolderListing, Problem, StoreScan,
                                 detect_compression, fail, finish, hidden_problems, judge_collection,
                                 no_cyclic_gc, read_entry, top_level_file)


@dataclass(slots=True)
class EntryFacts:
    """What one entry of a collection folder contributes, judged on its own (kept only for entries
    that are not a plain readable document: those are just a name and an id, see FolderFacts)."""

    problems: list[Problem] = field(default_factory=list)
    doc_id: str | None = None                 # a document that reads: its id
    record: tuple | None = None               # the metadata file, read: (name, metadata)
    formats: tuple[int, ...] = (0, 0, 0, 0)   # counts toward (gz metadata, plain metadata, gz, plain)

    @property
    def plain_document(self) -> bool:
        return self.doc_id is not None and not self.problems and self.record is None


def formats_of(name: str, is_dir: bool = False) -> tuple[int, ...]:
    """What a file's name adds to the compress guess (scan.detect_compression counts file names)."""
    if is_dir:
        return (0, 0, 0, 0)
    return (int(name == layout.METADATA_STEM + layout.GZ_EXT), int(name == layout.METADATA_STEM + layout.GOB_EXT),
            int(name.endswith(layout.GZ_EXT)), int(name.endswith(layout.GOB_EXT)))


class FolderFacts:
    """One collection folder: every entry's facts, and the indexes the fold needs (kept as entries change).

    Compact, as most entries are plain documents: ``docs`` maps such a file to its id, ``others``
    holds the full facts of every other entry; ``owner`` maps each id to a file holding it (its
    length is chromem's document count) and ``shared`` lists the files of ids held by several."""

    def __init__(self, dir_name: str, path: str) -> None:
        self.dir = dir_name
        self.path = path
        self.docs: dict[str, str] = {}
        self.others: dict[str, EntryFacts] = {}
        self.owner: dict[str, str] = {}
        self.shared: dict[str, list[str]] = {}
        self.noted: set[str] = set()           # entries with problems of their own
        self.formats = [0, 0, 0, 0]            # the sums of the entries' formats

    def put(self, name: str, facts: EntryFacts) -> None:
        self.drop(name)
        if facts.plain_document:
            self.add_document(name, facts.doc_id)
            return
        self.others[name] = facts
        self._count(facts.formats, 1)
        if facts.doc_id is not None:
            self._hold(facts.doc_id, name)
        if facts.problems:
            self.noted.add(name)

    def add_document(self, name: str, doc_id: str) -> None:
        """A readable document with no problem of its own (the caller knows ``name`` is new here)."""
        self.docs[name] = doc_id
        self._count(formats_of(name), 1)
        self._hold(doc_id, name)

    def drop(self, name: str) -> None:
        doc_id = self.docs.pop(name, None)
        if doc_id is not None:
            self._count(formats_of(name), -1)
        else:
            old = self.others.pop(name, None)
            if old is None:
                return
            self.noted.discard(name)
            self._count(old.formats, -1)
            doc_id = old.doc_id
        if doc_id is not None:
            self._let_go(doc_id, name)

    def _count(self, formats, sign: int) -> None:
        if any(formats):
            self.formats = [a + sign * b for a, b in zip(self.formats, formats)]

    def _hold(self, doc_id: str, name: str) -> None:
        if doc_id in self.shared:
            self.shared[doc_id].append(name)
        elif doc_id in self.owner:
            self.shared[doc_id] = [self.owner[doc_id], name]
        else:
            self.owner[doc_id] = name

    def _let_go(self, doc_id: str, name: str) -> None:
        files = self.shared.get(doc_id)
        if files is None:
            self.owner.pop(doc_id, None)
            return
        files.remove(name)
        self.owner[doc_id] = files[0]
        if len(files) == 1:
            del self.shared[doc_id]

    def fold(self, scan: StoreScan, names: FileNames) -> CollectionScan:
        """The folder's CollectionScan, as ``scan_store`` would read it now (fresh objects each time)."""
        coll = CollectionScan(dir=self.dir, path=self.path)
        meta = self.others.get(names.metadata)
        if meta is not None and meta.record is not None:
            coll.name, coll.metadata = meta.record
        duplicates = self.duplicate_problems()
        for name in sorted(self.noted | duplicates.keys(), key=os.fsencode):
            if name in duplicates:   # reading in order, the id was seen in an earlier file first
                coll.problems.append(duplicates[name])
            facts = self.others.get(name)
            for problem in facts.problems if facts is not None else ():
                problem = replace(problem)   # the fold may adjust its copy (judge_skipped)
                coll.problems.append(problem)
                if problem.error:
                    fail(scan, problem, problem.error)
        coll.document_ids = self.owner   # judge_collection counts it (one entry per id), then it is let go
        judge_collection(scan, coll, names.metadata)
        coll.document_ids = {}
        return coll

    def duplicate_problems(self) -> dict[str, Problem]:
        out = {}
        for doc_id, held in self.shared.items():
            files = sorted(held, key=os.fsencode)
            for before, name in zip(files, files[1:]):
                out[name] = Problem(f"{self.dir}/{name}", "duplicate_id",
                                    f"id {doc_id!r} is also in {before}; chromem keeps {name}", self.dir)
        return out


def judge_entry(root: str, dir_name: str, entry: FolderEntry, names: FileNames, records=None,
                fresh=None) -> EntryFacts:
    """One entry's own facts (scan's ``read_entry`` on a scratch collection)."""
    scratch = StoreScan(root, False)   # only collects fail(): an entry's judgment needs no flag
    coll = CollectionScan(dir=dir_name, path=os.path.join(root, dir_name))
    read_entry(scratch, coll, entry, names, records, fresh)
    record = (coll.name, coll.metadata) if coll.name is not None else None
    return EntryFacts(coll.problems, next(iter(coll.document_ids), None), record,
                      formats_of(entry.name, entry.is_dir))


def entry_now(folder: str, name: str) -> FolderEntry | None:
    """One folder entry as a listing would see it now (stat follows symlinks, like chromem); None: gone."""
    path = os.path.join(folder, name)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return FolderEntry(name, False, False, error=exc.strerror or str(exc))
    if stat_mod.S_ISDIR(info.st_mode):
        return FolderEntry(name, True, False)
    link = stat_mod.S_ISLNK(info.st_mode)
    if link:
        try:
            info = os.stat(path)
        except OSError as exc:
            return FolderEntry(name, False, True, error=exc.strerror or str(exc))
    return FolderEntry(name, False, link, info.st_size, info.st_mtime_ns, info.st_ino, info.st_mode)


@dataclass
class TopEntry:
    """An entry of the store root: a collection folder (``folder`` set), or what chromem makes of it."""

    name: str
    folder: FolderFacts | None = None
    problem: Problem | None = None
    error: str = ""                            # chromem's error when it refuses the store for this entry
    subfolders: set[str] = field(default_factory=set)   # a collection folder's real sub-folders
    hidden: list[Problem] = field(default_factory=list)  # document files below them (scan.hidden_problems)

    def walk_hidden(self, root: str) -> None:
        self.hidden = hidden_problems(root, self.name, sorted(self.subfolders))


class LiveScan:
    """Built once (:meth:`build`: the whole store), then told what changed (:meth:`update`)."""

    def __init__(self, root, compress: bool | None = None, cache_dir=None) -> None:
        self.root = os.path.abspath(os.path.expanduser(str(root)))
        self.configured = compress
        self.cache_dir = cache_dir
        self.compress = bool(compress)
        self.names = FileNames.of(self.compress)
        self.top: dict[str, TopEntry] = {}
        self.store_problems: list[Problem] = []   # store_missing
        self.exists = False
        self.updates = 0   # how many update() calls (tests, debugging)

    # ---- reading ----------------------------------------------------------------------------------

    def build(self) -> StoreScan:
        """Read the whole store (decodes come from the verified cache); the scan, as ``scan_store`` gives it."""
        with no_cyclic_gc():
            self._build()
        return self.scan()

    def _build(self) -> None:
        self.top, self.store_problems = {}, []
        self.exists = os.path.exists(self.root)
        if not self.exists:
            self.store_problems.append(Problem(".", "store_missing", f"{self.root} does not exist"))
            return
        top = self._list_root()
        listings, unreadable = {}, {}
        for entry in top:
            if entry.is_dir:
                try:
                    listings[entry.name] = FolderListing.read(os.path.join(self.root, entry.name))
                except OSError as exc:
                    unreadable[entry.name] = exc.strerror or str(exc)
        self.compress = detect_compression(listings) if self.configured is None else self.configured
        self.names = FileNames.of(self.compress)
        cache = verified_cache.VerifiedCache(self.cache_dir, self.compress) if self.cache_dir else None
        for entry in top:
            self.top[entry.name] = self._top_entry(entry, listings.get(entry.name), unreadable.get(entry.name), cache)
        if cache:
            cache.save()

    def _list_root(self) -> list[FolderEntry]:
        if not os.path.isdir(self.root):
            raise StoreError(f"{self.root} is not a folder; chromem refuses it ('path is not a directory')",
                             "point --store at contextd's vectorstore folder")
        try:
            return FolderListing.read(self.root).entries()
        except OSError as exc:
            raise StoreError(f"cannot list the store {self.root}: {exc.strerror}",
                             "check the folder's permissions") from None

    def _top_entry(self, entry: FolderEntry, listing, unreadable: str | None, cache) -> TopEntry:
        name = entry.name
        if entry.is_symlink and os.path.isdir(os.path.join(self.root, name)):
            return TopEntry(name, problem=Problem(name, "symlinked_folder", "chromem skips symlinks at the store "
                                                  "root", name))
        if not entry.is_dir:
            return TopEntry(name, problem=top_level_file(entry))
        if unreadable is not None:
            return TopEntry(name, problem=Problem(name, "collection_unreadable", f"cannot list folder: {unreadable}",
                                                  name),
                            error=f"couldn't read collection directory: open <store>/{name}: {unreadable}")
        top = TopEntry(name, folder=self._read_folder(name, listing, cache), subfolders=set(listing.subfolders()))
        top.walk_hidden(self.root)
        return top

    def _read_folder(self, dir_name: str, listing: FolderListing, cache) -> FolderFacts:
        folder = FolderFacts(dir_name, os.path.join(self.root, dir_name))
        records = cache.folder(dir_name) if cache else {}
        fresh: dict = {}
        names = self.names
        for row in listing.rows:   # order does not matter here: the fold sorts what it needs
            name = row[0]
            known = records.get(name)
            if known is not None and self._plain_known(row, known):
                folder.add_document(name, known[3])   # unchanged since verified: no decode, no objects
                fresh[name] = known
                continue
            entry = FolderEntry(*row)
            folder.put(name, judge_entry(self.root, dir_name, entry, names, records, fresh))
        if cache:
            cache.seen.add(dir_name)
            if fresh != records:   # something was decoded: remember it (else the cache is already right)
                cache.store_folder(dir_name, fresh)
        return folder

    def _plain_known(self, row: tuple, known: list) -> bool:
        """A regular document file, unchanged since the cache verified it, whose id matches its name."""
        name, is_dir, is_link, size, mtime_ns, ino, mode, error = row
        return (not is_dir and not is_link and not error and stat_mod.S_ISREG(mode)
                and known[0] == size and known[1] == mtime_ns and known[2] == ino and known[4] is None
                and isinstance(known[3], str) and name.endswith(self.names.ext) and name != self.names.metadata
                and not name.startswith(GUARDIAN_TEMP_PREFIX)
                and layout.file_stem(name) == layout.document_stem(known[3]))

    # ---- changes ------------------------------------------------------------------------------------

    def update(self, paths) -> StoreScan:
        """Look again at these store-relative paths (files or root entries that changed); the new scan.

        A root entry (a collection folder created, removed or replaced) is read whole; a file in a
        known folder costs one stat and, if it is still there, one decode. chromem reads no
        sub-folder: a change in one (or a sub-folder made or removed) only walks that root folder's
        sub-folders again, for the document files hidden there (``scan.hidden_problems``)."""
        self.updates += 1
        if not self.exists:
            return self.build()
        roots, files, below = set(), [], set()
        for rel in paths:
            parts = [p for p in str(rel).split("/") if p not in ("", ".")]
            if not parts:
                continue
            if len(parts) == 1 or not self._known_folder(parts[0]):
                roots.add(parts[0])
            elif len(parts) == 2:
                files.append(parts)
            else:
                below.add(parts[0])
        with no_cyclic_gc():
            if roots:
                self._update_roots(roots)
            for dir_name, name in files:
                if dir_name in roots:
                    continue   # read whole just now
                if self._update_entry(self.top[dir_name], name):
                    below.add(dir_name)
            for dir_name in below - roots:
                self.top[dir_name].walk_hidden(self.root)
            if self.configured is None and self.guess() != self.compress:
                self._build()   # the files now say the other flag: every entry reads differently
        return self.scan()

    def format_counts(self) -> list[int]:
        totals = [0, 0, 0, 0]
        for entry in self.top.values():
            if entry.folder is not None:
                totals = [a + b for a, b in zip(totals, entry.folder.formats)]
        return totals

    def guess(self) -> bool:
        """chromem's compress flag as the files suggest now (scan.detect_compression's rule)."""
        return layout.prefer_gzip(*self.format_counts())

    def _known_folder(self, dir_name: str) -> bool:
        entry = self.top.get(dir_name)
        return entry is not None and entry.folder is not None

    def _update_roots(self, names: set[str]) -> None:
        try:
            top = {entry.name: entry for entry in self._list_root()}
        except StoreError:
            self._build()
            return
        cache = verified_cache.VerifiedCache(self.cache_dir, self.compress) if self.cache_dir else None
        for name in names:
            entry = top.get(name)
            if entry is None:
                self.top.pop(name, None)
                continue
            listing, unreadable = None, None
            if entry.is_dir:
                try:
                    listing = FolderListing.read(os.path.join(self.root, name))
                except OSError as exc:
                    unreadable = exc.strerror or str(exc)
            self.top[name] = self._top_entry(entry, listing, unreadable, cache)
        if cache:
            cache.seen.update(self.top)   # the folders not looked at stay cached as they are
            cache.save()
        order = sorted(self.top, key=os.fsencode)
        self.top = {name: self.top[name] for name in order}

    def _update_entry(self, top: TopEntry, name: str) -> bool:
        """Look at one entry of a known collection folder again; True when a sub-folder came or went."""
        folder = top.folder
        entry = entry_now(folder.path, name)
        if entry is None:
            folder.drop(name)
        else:
            folder.put(name, judge_entry(self.root, folder.dir, entry, self.names))
        was = name in top.subfolders
        if entry is not None and entry.is_dir:
            top.subfolders.add(name)
        else:
            top.subfolders.discard(name)
        return was or name in top.subfolders

    # ---- the verdict ------------------------------------------------------------------------------

    def scan(self) -> StoreScan:
        """The StoreScan of the store as last looked at (fresh objects: callers may keep it)."""
        scan = StoreScan(self.root, self.compress)
        scan.problems.extend(replace(p) for p in self.store_problems)
        counts = self.format_counts()
        if self.configured is None and counts[2] and counts[3]:
            scan.problems.append(Problem(".", "mixed_compression", "the store holds both .gob and .gob.gz files; "
                                         f"assuming compress={str(self.compress).lower()}"))
        for entry in self.top.values():
            if entry.folder is not None:
                coll = entry.folder.fold(scan, self.names)
                scan.collections.append(coll)
                scan.problems.extend(coll.problems)
                scan.problems.extend(replace(p) for p in entry.hidden)
            elif entry.problem is not None:
                problem = replace(entry.problem)
                scan.problems.append(problem)
                if entry.error:
                    fail(scan, problem, entry.error)
        finish(scan)
        return scan
