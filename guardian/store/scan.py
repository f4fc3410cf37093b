"""Scan a store root exactly as chromem-go v0.7.0's ``NewPersistentDB`` reads it.

chromem lists the root (sorted by name) and treats every entry that is a real folder (a symlink
is not) as a collection folder, hidden ones too. In each folder (sorted) it skips sub-folders,
reads ``00000000<ext>`` as the collection record, reads every other ``*<ext>`` file as a document
(``ext`` is ``.gob``, or ``.gob.gz`` when compressed) and ignores the rest. The first unreadable
file anywhere makes it refuse the whole store. A folder with neither a name nor documents is
skipped; documents without a name is "collection metadata file not found". Two folders with the
same name: the later one wins. Two files with the same document ID: the later one wins.

Besides chromem's verdict, the scan reports hazards chromem is silent about (see ``KINDS``), and
counts every document file under the root that chromem does not load (``StoreScan.hidden_documents``):
in sub-folders at any depth (``guardian.store.hidden``: contextd's own ``.quarantine/<hash>/`` among
them), in the other compression format, in a folder chromem drops, at the root itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat as stat_mod
from array import array
from itertools import repeat
from dataclasses import dataclass, field

from guardian.errors import ExitCode, StoreError
from guardian.format import layout
from guardian.format.layout import GobError
from guardian.local import storefs
from guardian.local.fsutil import TEMP_PREFIX as GUARDIAN_TEMP_PREFIX
from guardian.store import hidden as hidden_mod
from guardian.store import verified_cache

FATAL, WARNING, INFO = "fatal", "warning", "info"
COLLISION_WARN_DOCS = 50_000
# guardian.format.chromem.TOO_LARGE (not imported here: a warm check needs no codec)
TOO_LARGE = "too large for guardian to read"

HINT_REPAIR = "run `guardian check --repair` (restores it from a snapshot or rebuilds it; nothing is deleted)"
KINDS = {
    # chromem refuses the whole store
    "metadata_missing": (FATAL, HINT_REPAIR),
    "metadata_empty": (FATAL, HINT_REPAIR),
    "metadata_truncated": (FATAL, HINT_REPAIR),
    "metadata_corrupt": (FATAL, HINT_REPAIR),
    "metadata_is_folder": (FATAL, HINT_REPAIR),
    "metadata_unreadable": (FATAL, "fix the file's permissions, then run `guardian check`"),
    "document_empty": (FATAL, HINT_REPAIR),
    "document_truncated": (FATAL, HINT_REPAIR),
    "document_corrupt": (FATAL, HINT_REPAIR),
    "document_unreadable": (FATAL, "fix the file's permissions, then run `guardian check`"),
    "metadata_oversized": (FATAL, HINT_REPAIR),
    "document_oversized": (FATAL, HINT_REPAIR),
    "special_file": (FATAL, "`guardian check --repair` moves this non-regular file to quarantine and restores "
                            "the file from a snapshot when one holds it"),
    "broken_symlink": (FATAL, "a dangling or looping symlink where chromem reads a file: `guardian check "
                              "--repair` moves the symlink to quarantine and restores the file from a snapshot "
                              "when one holds it"),
    "stray_folder": (FATAL, "`guardian check --repair` moves this folder to quarantine"),
    "collection_unreadable": (FATAL, "fix the folder's permissions, then run `guardian check`"),
    # chromem loads, but data is silently lost or at risk
    "metadata_overwritten": (WARNING, "a document id hashes to 00000000 and replaced the metadata file; "
                                      "run `guardian check --repair` and rename that document id"),
    "metadata_empty_name": (WARNING, "chromem ignores this collection; restore its metadata with `guardian restore`"),
    "duplicate_name": (WARNING, "chromem keeps only the last folder with this name; export the other "
                                "(`guardian export`) and merge it by hand"),
    "name_mismatch": (WARNING, "the folder is not sha256(name)[:8]; a collection recreated under this name "
                               "would go elsewhere: rename the folder to the expected name while contextd is stopped"),
    "other_format_file": (WARNING, "chromem ignores files of the other compression format; convert or move it"),
    "id_hash_mismatch": (WARNING, "the file name is not sha256(id)[:8]; chromem will write this document "
                                  "elsewhere on its next update; rename the file while contextd is stopped"),
    "duplicate_id": (WARNING, "two files hold the same document id; chromem keeps only the last one"),
    "symlinked_folder": (WARNING, "chromem ignores symlinked folders (every document in it is hidden): "
                                  "`guardian check --repair` puts a real folder there (a copy of the target, "
                                  "else the newest snapshot's) and moves the symlink to quarantine"),
    "collection_not_folder": (WARNING, "chromem skips anything but a real folder at the store root; a snapshot "
                                       "holds a collection here: `guardian check --repair` restores it"),
    "document_is_folder": (WARNING, "chromem skips a folder where a document file belongs (that document is "
                                    "missing): `guardian check --repair` restores it from a snapshot"),
    "symlinked_file": (WARNING, "chromem follows this symlink but snapshots never do (the document is in no "
                                "snapshot): `guardian check --repair` replaces it by a copy of its target"),
    "guardian_leftover": (WARNING, "a temp file of an interrupted guardian write (guardian's own, never yours): "
                                "the next guardian write (check --repair, snapshot, restore) removes it"),
    "mixed_compression": (WARNING, "set --compress (or compress in config) to how contextd runs chromem"),
    "hidden_documents": (WARNING, "chromem never reads sub-folders, so these memories are out of contextd's sight: "
                                  "`guardian check --repair` brings a collection contextd moved to .quarantine/ "
                                  "back where chromem loads it (its metadata from a snapshot, or rebuilt from its "
                                  "name), then moves the leftover folder to guardian's quarantine"),
    "hidden_walk_stopped": (WARNING, "a tree of sub-folders too large or too deep to walk: more document files may "
                                     "be hidden there; move what does not belong out of the store"),
    "collision_risk": (INFO, "document file names are 32-bit hashes; at this size two ids may share one file"),
    # harmless
    "stray_file": (INFO, "chromem ignores it; move it out of the store to keep the store clean"),
    "ignored_folder": (INFO, "chromem ignores folders without documents or metadata"),
    "store_missing": (WARNING, "check --store: chromem would create an empty store here "
                               "and contextd would start with no memories"),
}


@dataclass
class Problem:
    path: str
    kind: str
    detail: str
    collection_dir: str = ""
    severity: str = ""
    hint: str = ""
    error: str = ""  # chromem's own error text when this problem is what makes it refuse the store
    documents: int = 0  # document files this problem keeps out of chromem's reach (StoreScan.hidden_documents)

    def __post_init__(self) -> None:
        severity, hint = KINDS[self.kind]
        self.severity = self.severity or severity
        self.hint = self.hint or hint

    def to_dict(self) -> dict:
        data = {"path": self.path, "kind": self.kind, "severity": self.severity,
                "detail": self.detail, "hint": self.hint}
        if self.documents:
            data["documents"] = self.documents
        return data


@dataclass
class FolderEntry:
    """One directory entry as chromem sees it (stat follows symlinks, like os.Open)."""

    name: str
    is_dir: bool
    is_symlink: bool
    size: int = 0
    mtime_ns: int = 0
    ino: int = 0
    mode: int = 0
    error: str = ""

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.ino)


@dataclass
class CollectionScan:
    dir: str
    path: str
    name: str | None = None
    metadata: dict | None = None
    documents: int = 0
    document_ids: dict[str, str] = field(default_factory=dict)  # id -> file name (chromem's winner)
    document_files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: bool = False  # chromem skips it (no name, no documents)

    @property
    def status(self) -> str:
        severities = {p.severity for p in self.problems}
        if FATAL in severities:
            return "damaged"
        if WARNING in severities:
            return "warning"
        return "skipped" if self.skipped else "healthy"

    def to_dict(self) -> dict:
        return {"name": self.name, "dir": self.dir, "status": self.status, "documents": self.documents,
                "metadata": self.metadata}


@dataclass
class StoreScan:
    root: str
    compress: bool
    collections: list[CollectionScan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    error: str = ""  # chromem's error for the first fatal problem, in chromem's order
    cause: str = ""  # the path (relative to root) of that problem
    # the collection folders' listings, kept only when asked (scan_store(keep_listings=True)): folder
    # name -> FolderListing of every real folder at the root that could be listed
    listings: dict | None = field(default=None, repr=False, compare=False)

    def take_listings(self) -> "dict[str, FolderListing] | None":
        """The listings this scan read, handed over once (then the scan no longer holds them).

        `guardian run` lists the store once at start: the pre-flight's scan hands its listings to the
        index's first build. They are as the folders were when the scan read them, so whoever builds
        on them must hear of every change since (the watcher is started before the pre-flight), and
        they are let go at once: a scan is kept as the runtime's verdict long after start-up, and
        100k entries' names and stats have no business in its memory."""
        listings, self.listings = self.listings, None
        return listings

    @property
    def loadable(self) -> bool:
        return not self.error

    @property
    def hidden_documents(self) -> int:
        """Document files under the root that chromem does not load (sub-folders, the other format, a
        dropped duplicate folder, the root itself): memories out of contextd's sight."""
        return sum(p.documents for p in self.problems)

    @property
    def healthy(self) -> bool:
        return all(p.severity == INFO for p in self.problems)

    def loaded_collections(self) -> dict[str, int]:
        """What chromem holds after loading: name -> document count (later duplicates win)."""
        out: dict[str, int] = {}
        for coll in self.collections:
            if not coll.skipped and coll.name:
                out[coll.name] = coll.documents
        return out

    def collection(self, dir_name: str) -> CollectionScan | None:
        return next((c for c in self.collections if c.dir == dir_name), None)

    def exit_code(self) -> ExitCode:
        if not self.loadable:
            return ExitCode.UNLOADABLE
        return ExitCode.OK if self.healthy else ExitCode.WARNINGS

    def to_dict(self) -> dict:
        return {
            "store": self.root, "loadable": self.loadable, "compress": self.compress,
            "error": self.error, "cause": self.cause, "hidden_documents": self.hidden_documents,
            "collections": [c.to_dict() for c in self.collections if not c.skipped or c.problems],
            "problems": [p.to_dict() for p in self.problems],
        }


def codec():
    """The gob codec, imported only when a file must be decoded (a warm check needs none)."""
    from guardian.format import chromem

    return chromem


# --------------------------------------------------------------------------- listing


_KEY_LETTERS = "smiM"   # per entry in a FolderListing's numbers: size, mtime_ns, ino, mode (storefs.STAT_FIELDS)
_KEY_FIELDS = len(_KEY_LETTERS)
_NOT_PLAIN = (stat_mod.S_ISDIR, stat_mod.S_ISLNK)


class FolderListing:
    """One folder's entries, read as cheaply as Python allows, turned into FolderEntry objects on demand.

    A folder holding neither a folder nor a symlink (a healthy collection folder) is kept as columns:
    its names and a flat ``array('q')`` of (size, mtime_ns, ino, mode) per entry, from
    ``storefs.list_folder_stats`` (getdents and one ``lstat`` per name relative to the folder's fd, in
    C with the GIL released when the accelerator is built): no Python object per entry but its name.
    An unchanged folder needs only ``digest()`` of those columns, so checking an unchanged store costs
    little more than the stat calls themselves. Any other folder (a sub-folder, a symlink, an entry
    that cannot be stat'ed, a number that does not fit 64 bits) is read again with ``os.scandir`` into
    rows ``(name, is_dir, is_symlink, size, mtime_ns, ino, mode, error)``, where stat follows symlinks
    as chromem's os.Open does (for a plain file lstat and stat agree).
    """

    __slots__ = ("_rows", "_columns", "_names")

    def __init__(self, rows: list[tuple] | None = None, columns: tuple[list[str], array] | None = None) -> None:
        self._rows = rows
        self._columns = columns
        self._names: str | None = None

    @classmethod
    def read(cls, path: str, follow: bool = True) -> "FolderListing":
        """List ``path`` (``follow=False``: refuse it when it is a symlink, as a collection folder
        found by the root listing must not have become one since)."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))
        try:
            listing = cls._plain_files(fd)
            if listing is None:
                with os.scandir(fd) as it:
                    listing = cls._from_entries(list(it))
            return listing
        finally:
            os.close(fd)

    @classmethod
    def _plain_files(cls, fd: int) -> "FolderListing | None":
        """The columns of a folder of plain entries (listed and lstat'ed in C: storefs), or None."""
        try:
            names, numbers = storefs.list_folder_stats(fd, _KEY_LETTERS)
        except (OSError, OverflowError):
            return None   # the row walk records which entry failed and why (or fails to list, itself)
        modes = set(numbers[_KEY_FIELDS - 1::_KEY_FIELDS])   # a handful of distinct modes, tested once each
        if any(test(mode) for mode in modes for test in _NOT_PLAIN):
            return None   # a sub-folder or a symlink: the rows say which, and what a symlink points at
        return cls(columns=(names, numbers))

    @classmethod
    def _from_entries(cls, entries: list) -> "FolderListing":
        rows = []
        append = rows.append
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                append((entry.name, True, False, 0, 0, 0, 0, ""))
                continue
            try:
                st = entry.stat()
            except OSError as exc:
                append((entry.name, False, entry.is_symlink(), 0, 0, 0, 0, exc.strerror or str(exc)))
                continue
            append((entry.name, False, entry.is_symlink(), st.st_size, st.st_mtime_ns, st.st_ino,
                    st.st_mode, ""))
        return cls(rows=rows)

    @classmethod
    def names_only(cls, names: list[str]) -> "FolderListing":
        """A listing that only answers name questions (counting suffixes): no stat at all."""
        listing = cls(rows=[])
        listing._names = "\0" + "\0".join(names) + "\0"
        return listing

    @property
    def rows(self) -> list[tuple]:
        if self._rows is None:
            names, numbers = self._columns
            n = _KEY_FIELDS
            self._rows = list(zip(names, repeat(False), repeat(False), numbers[0::n], numbers[1::n],
                                  numbers[2::n], numbers[3::n], repeat("")))
        return self._rows

    def digest(self) -> str:
        if self._columns is not None:   # the names as names() joins them (one join for both)
            return verified_cache.columns_digest(len(self._columns[0]), self.names(), self._columns[1])
        return verified_cache.rows_digest(self._rows)

    def names(self) -> str:
        """NUL, then every file name followed by NUL (for C-speed counting with str.count)."""
        if self._names is None:
            if self._columns is not None:
                names = self._columns[0]
                self._names = "\0" + "\0".join(names) + "\0" if names else "\0"
            else:
                self._names = "\0" + "".join(row[0] + "\0" for row in self._rows if not row[1])
        return self._names

    def subfolders(self) -> list[str]:
        """The real sub-folders (a symlink is not one): chromem skips them, guardian.store.hidden walks them."""
        if self._columns is not None:
            return []   # columns are only kept for a folder of plain entries
        return [row[0] for row in self._rows if row[1]]

    def count_suffix(self, suffix: str) -> int:
        return self.names().count(suffix + "\0")

    def entries(self) -> list[FolderEntry]:
        entries = [FolderEntry(*row) for row in self.rows]
        entries.sort(key=lambda e: os.fsencode(e.name))
        return entries


def detect_store_compression(root) -> bool:
    """chromem's compress flag as the files of ``root`` suggest (plain when unsure or unreadable)."""
    folders: dict[str, FolderListing] = {}
    try:
        with os.scandir(root) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    folders[entry.name] = FolderListing.names_only(os.listdir(entry.path))
    except OSError:
        return False
    return detect_compression(folders)


def detect_compression(folders: dict[str, FolderListing]) -> bool:
    """Guess chromem's compress flag from the files (see layout.prefer_gzip)."""
    def total(suffix: str) -> int:
        return sum(listing.count_suffix(suffix) for listing in folders.values())
    return layout.prefer_gzip(total("\0" + layout.METADATA_STEM + layout.GZ_EXT),
                              total("\0" + layout.METADATA_STEM + layout.GOB_EXT),
                              total(layout.GZ_EXT), total(layout.GOB_EXT))


# --------------------------------------------------------------------------- scanning


def scan_store(root, compress: bool | None = None, cache_dir=None, keep_listings: bool = False,
               known: dict[str, dict[str, list]] | None = None) -> StoreScan:
    """Predict chromem's verdict on ``root`` and list every problem (see module docstring).

    ``keep_listings``: the scan keeps the collection folders' listings for someone to take
    (:meth:`StoreScan.take_listings`), so that the store is not listed twice in a row. ``known``
    (without ``cache_dir``): documents whose verdict is known, in the verified cache's per-file shape
    ({folder: {name: [size, mtime_ns, ino, doc_id, error]}}), trusted while their stat is unchanged
    (a restore judged each file's bytes as it wrote them); a file changed since is read as usual."""
    with no_cyclic_gc():
        scan = _scan_store(root, compress, cache_dir, known)
    if not keep_listings:
        scan.listings = None
    return scan


@contextlib.contextmanager
def no_cyclic_gc():
    """Pause the cyclic garbage collector: listing 100k entries allocates 100k tuples and stat results,
    none of them in a cycle, and the collector would walk all of them again and again for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _scan_store(root, compress: bool | None, cache_dir, known=None) -> StoreScan:
    root = os.path.abspath(os.path.expanduser(str(root)))
    if not os.path.exists(root):
        scan = StoreScan(root, bool(compress))
        scan.problems.append(Problem(".", "store_missing", f"{root} does not exist"))
        return scan
    if not os.path.isdir(root):
        raise StoreError(f"{root} is not a folder; chromem refuses it ('path is not a directory')",
                         "point --store at contextd's vectorstore folder")
    try:
        top = FolderListing.read(root).entries()
    except OSError as exc:
        raise StoreError(f"cannot list the store {root}: {exc.strerror}", "check the folder's permissions") from None
    listings, unreadable = list_collection_folders(root, top)
    detected = detect_compression(listings)
    scan = StoreScan(root, detected if compress is None else compress)
    if compress is None and has_both_formats(listings):
        scan.problems.append(Problem(".", "mixed_compression", "the store holds both .gob and .gob.gz files; "
                                     f"assuming compress={str(detected).lower()}"))
    cache = verified_cache.VerifiedCache(cache_dir, scan.compress) if cache_dir else None
    for entry in top:
        scan_top_entry(scan, root, entry, listings, unreadable, cache, known)
    if cache:
        cache.save()
    finish(scan)
    scan.listings = listings
    return scan


def has_both_formats(listings: dict[str, FolderListing]) -> bool:
    gz = sum(listing.count_suffix(layout.GZ_EXT) for listing in listings.values())
    plain = sum(listing.count_suffix(layout.GOB_EXT) for listing in listings.values())
    return bool(gz and plain)


def list_collection_folders(root: str, top: list[FolderEntry]):
    listings: dict[str, FolderListing] = {}
    unreadable: dict[str, str] = {}
    for entry in top:
        if entry.is_dir:
            try:
                listings[entry.name] = FolderListing.read(os.path.join(root, entry.name), follow=False)
            except OSError as exc:
                unreadable[entry.name] = exc.strerror or str(exc)
    return listings, unreadable


def scan_top_entry(scan: StoreScan, root: str, entry: FolderEntry, listings, unreadable, cache,
                   known: dict | None = None) -> None:
    if entry.is_symlink and os.path.isdir(os.path.join(root, entry.name)):
        scan.problems.append(Problem(entry.name, "symlinked_folder", "chromem skips symlinks at the store root",
                                     entry.name))
        return
    if not entry.is_dir:
        scan.problems.append(top_level_file(entry))
        return
    if entry.name in unreadable:
        problem = Problem(entry.name, "collection_unreadable", f"cannot list folder: {unreadable[entry.name]}",
                          entry.name)
        scan.problems.append(problem)
        fail(scan, problem, f"couldn't read collection directory: open <store>/{entry.name}: {unreadable[entry.name]}")
        return
    coll = scan_collection(scan, root, entry.name, listings[entry.name], cache, known)
    scan.collections.append(coll)
    scan.problems.extend(coll.problems)
    scan.problems.extend(hidden_problems(root, entry.name, listings[entry.name].subfolders()))


def hidden_problems(root: str, top: str, subfolders: list[str]) -> list[Problem]:
    """The document files in the sub-folders of root folder ``top`` (any depth): one problem per folder
    holding some, and one more when the walk had to stop early (a hostile tree)."""
    if not subfolders:
        return []
    walk = hidden_mod.walk_below(root, top, subfolders)
    problems = [Problem(folder.path, "hidden_documents", hidden_detail(folder), top, documents=folder.documents,
                        hint="" if hidden_mod.contextd_quarantined(folder.path) else HINT_HIDDEN_ELSEWHERE)
                for folder in walk.folders]
    if walk.stopped:
        problems.append(Problem(top, "hidden_walk_stopped", walk.stopped, top))
    return problems


HINT_HIDDEN_ELSEWHERE = ("chromem never reads sub-folders: if this is a collection, move it back to the store root "
                         "as its <hash> folder (with its metadata file) while contextd is stopped; otherwise move "
                         "it out of the store")


def hidden_detail(folder: hidden_mod.HiddenFolder) -> str:
    text = f"{folder.documents} document file(s) in a sub-folder: chromem never reads them"
    if hidden_mod.contextd_quarantined(folder.path):
        text += (f" (contextd's own recovery moved collection {folder.base} here when its metadata was missing, "
                 "and started without it)")
    return text


def top_level_file(entry: FolderEntry) -> Problem:
    """Anything but a real folder at the root: chromem skips it. Named like a collection folder, it
    hides a collection (warning); guardian's own temp file is a leftover; anything else is a stray."""
    if entry.name.startswith(GUARDIAN_TEMP_PREFIX):
        return Problem(entry.name, "guardian_leftover", "left by an interrupted guardian write")
    what = "a symlink" if entry.is_symlink else (storefs.kind_of(entry.mode) if entry.mode else "a file")
    if looks_like_collection_dir(entry.name):
        return Problem(entry.name, "collection_not_folder", f"{what} named like a collection folder: chromem "
                       "skips it", entry.name)
    if not entry.is_symlink and stat_mod.S_ISREG(entry.mode) and hidden_mod.is_document_name(entry.name):
        return Problem(entry.name, "stray_file", "a document file at the store root: chromem never reads it",
                       severity=WARNING, documents=1)
    return Problem(entry.name, "stray_file", f"{what} at the store root (chromem ignores it)")


def looks_like_collection_dir(name: str) -> bool:
    return len(name) == 8 and all(c in "0123456789abcdef" for c in name)


def fail(scan: StoreScan, problem: Problem, error: str) -> None:
    """Record chromem's error for the first fatal problem in chromem's own reading order."""
    problem.error = error
    problem.severity = FATAL
    if not scan.error:
        scan.error = error
        scan.cause = problem.path


def chromem_reason(exc: GobError) -> str:
    reason = exc.reason
    return reason if reason.startswith("couldn't") else f"couldn't decode object: {reason}"


def classify(role: str, exc: GobError, size: int) -> str:
    if exc.reason.startswith(TOO_LARGE):
        return f"{role}_oversized"
    if exc.reason.startswith("couldn't open file"):
        return f"{role}_unreadable"
    if size == 0:
        return f"{role}_empty"
    if "unexpected EOF" in exc.reason or exc.reason == "EOF":
        return f"{role}_truncated"
    return f"{role}_corrupt"


def scan_collection(scan: StoreScan, root: str, dir_name: str, listing: FolderListing, cache,
                    known: dict | None = None) -> CollectionScan:
    digest = listing.digest() if cache else ""
    summary = cache.lookup(dir_name, digest) if cache else None
    if summary is not None:
        return replay_summary(scan, root, dir_name, summary)
    coll = read_collection_folder(scan, root, dir_name, listing.entries(), cache, known)
    if cache:
        cache.remember(dir_name, digest, summarize(coll))
    return coll


def summarize(coll: CollectionScan) -> dict:
    return {
        "name": coll.name, "metadata": coll.metadata, "documents": coll.documents,
        "document_files": len(coll.document_files), "skipped": coll.skipped,
        "problems": [{**p.to_dict(), "error": p.error} for p in coll.problems],
    }


def replay_summary(scan: StoreScan, root: str, dir_name: str, summary: dict) -> CollectionScan:
    coll = CollectionScan(dir=dir_name, path=os.path.join(root, dir_name), name=summary["name"],
                          metadata=summary["metadata"], documents=summary["documents"],
                          skipped=summary["skipped"])
    for raw in summary["problems"]:
        problem = Problem(raw["path"], raw["kind"], raw["detail"], dir_name, raw["severity"], raw["hint"],
                          raw.get("error", ""), raw.get("documents", 0))
        coll.problems.append(problem)
        if problem.error:
            fail(scan, problem, problem.error)
    return coll


def read_collection_folder(scan: StoreScan, root: str, dir_name: str, entries: list[FolderEntry],
                           cache, known: dict | None = None) -> CollectionScan:
    path = os.path.join(root, dir_name)
    coll = CollectionScan(dir=dir_name, path=path)
    names = FileNames.of(scan.compress)
    records = cache.folder(dir_name) if cache else (known or {}).get(dir_name)
    fresh: dict | None = {} if cache else None
    for entry in entries:
        read_entry(scan, coll, entry, names, records, fresh)
    if cache:
        cache.store_folder(dir_name, fresh)
    judge_collection(scan, coll, names.metadata)
    return coll


@dataclass(frozen=True)
class FileNames:
    """What chromem calls its files in a store read with one compress flag."""

    ext: str
    other_ext: str
    metadata: str

    @classmethod
    def of(cls, compress: bool) -> "FileNames":
        ext = layout.extension(compress)
        return cls(ext, layout.extension(not compress), layout.METADATA_STEM + ext)


def read_entry(scan: StoreScan, coll: CollectionScan, entry: FolderEntry, names: FileNames, records,
               fresh) -> None:
    """One entry of a collection folder, as chromem reads it (its problems go to ``coll``)."""
    dir_name, ext, other_ext = coll.dir, names.ext, names.other_ext
    rel = f"{dir_name}/{entry.name}"
    if entry.is_dir:
        if entry.name == names.metadata:
            coll.problems.append(Problem(rel, "metadata_is_folder", "the metadata path is a folder", dir_name))
        elif entry.name.endswith(ext):
            coll.problems.append(Problem(rel, "document_is_folder", "a folder where chromem reads a document "
                                         "file: chromem silently skips it", dir_name))
        return
    if entry.name.startswith(GUARDIAN_TEMP_PREFIX):
        coll.problems.append(Problem(rel, "guardian_leftover", "left by an interrupted guardian write", dir_name))
        return
    if entry.name == names.metadata:
        read_metadata(scan, coll, entry, rel)
    elif entry.name.endswith(ext):
        read_document_entry(scan, coll, entry, rel, records, fresh)
    elif entry.name.endswith(other_ext) or entry.name == layout.METADATA_STEM + other_ext:
        coll.problems.append(Problem(rel, "other_format_file",
                                     f"a {other_ext} file in a store read as {ext}: chromem ignores it", dir_name,
                                     documents=int(hidden_mod.is_document_name(entry.name)
                                                   and stat_mod.S_ISREG(entry.mode))))
    else:
        coll.problems.append(Problem(rel, "stray_file", "chromem ignores this file", dir_name))


def read_metadata(scan: StoreScan, coll: CollectionScan, entry: FolderEntry, rel: str) -> None:
    full = os.path.join(coll.path, entry.name)
    if entry.error or not stat_mod.S_ISREG(entry.mode):
        special(scan, coll, entry, rel, "metadata")
        return
    try:
        data = codec().read_file(full)
        record = codec().decode_collection(data, full)
    except GobError as exc:
        kind = classify("metadata", exc, entry.size)
        problem = Problem(rel, kind, exc.reason, coll.dir)
        coll.problems.append(problem)
        fail(scan, problem, f"couldn't read collection metadata: {chromem_reason(exc)}")
        return
    coll.name, coll.metadata = record.name, record.metadata
    note_symlinked_file(coll, entry, rel)
    if not record.name:
        note_overwritten_metadata(coll, data, rel)


def note_overwritten_metadata(coll: CollectionScan, data: bytes, rel: str) -> None:
    try:
        doc = codec().decode_document(data)
    except GobError:
        doc = None
    if doc is not None and doc.id and layout.document_stem(doc.id) == layout.METADATA_STEM:
        coll.problems.append(Problem(rel, "metadata_overwritten",
                                     f"document {doc.id!r} hashes to 00000000 and overwrote the metadata", coll.dir))


def special(scan: StoreScan, coll: CollectionScan, entry: FolderEntry, rel: str, role: str) -> None:
    if entry.error and entry.is_symlink:
        problem = Problem(rel, "broken_symlink", f"symlink that cannot be followed: {entry.error}", coll.dir)
        error = f"couldn't open file: open <store>/{rel}: {entry.error.lower()}"
    elif entry.error:
        problem = Problem(rel, f"{role}_unreadable", entry.error, coll.dir)
        error = f"couldn't open file: open <store>/{rel}: {entry.error}"
    elif stat_mod.S_ISDIR(entry.mode):
        problem = Problem(rel, f"{role}_corrupt", "a symlink to a folder", coll.dir)
        error = ("couldn't read magic number to determine whether the stream is compressed: "
                 f"read <store>/{rel}: is a directory")
    else:
        problem = Problem(rel, "special_file", f"a {storefs.kind_of(entry.mode)}, not a regular file (chromem "
                          "would block or fail on it; guardian never opens it)", coll.dir)
        error = f"couldn't open file: <store>/{rel} is not a regular file"
    coll.problems.append(problem)
    prefix = "couldn't read collection metadata" if role == "metadata" else "couldn't read document"
    fail(scan, problem, f"{prefix}: {error}")


def read_document_entry(scan: StoreScan, coll: CollectionScan, entry: FolderEntry, rel: str, records,
                        fresh) -> None:
    coll.document_files.append(entry.name)
    if entry.error or not stat_mod.S_ISREG(entry.mode):
        special(scan, coll, entry, rel, "document")
        return
    cached = records.get(entry.name) if records is not None else None
    if cached is not None and tuple(cached[:3]) == entry.key and not entry.is_symlink:
        doc_id, error = cached[3], cached[4]
    else:
        doc_id, error = verify_document(os.path.join(coll.path, entry.name))
    if fresh is not None and not entry.is_symlink:
        fresh[entry.name] = [entry.size, entry.mtime_ns, entry.ino, doc_id, error]
    if error is not None:
        exc = GobError(error)
        problem = Problem(rel, classify("document", exc, entry.size), error, coll.dir)
        coll.problems.append(problem)
        fail(scan, problem, f"couldn't read document: {chromem_reason(exc)}")
        return
    add_document(coll, doc_id, entry.name, rel)
    note_symlinked_file(coll, entry, rel)


def note_symlinked_file(coll: CollectionScan, entry: FolderEntry, rel: str) -> None:
    if entry.is_symlink:
        coll.problems.append(Problem(rel, "symlinked_file", "a symlink to a file: chromem reads it, snapshots do "
                                     "not", coll.dir))


def verify_document(path: str) -> tuple[str | None, str | None]:
    try:
        return codec().read_document(path).id, None
    except GobError as exc:
        return None, exc.reason


def add_document(coll: CollectionScan, doc_id: str, file_name: str, rel: str) -> None:
    if doc_id in coll.document_ids:
        coll.problems.append(Problem(rel, "duplicate_id", f"id {doc_id!r} is also in "
                                     f"{coll.document_ids[doc_id]}; chromem keeps {file_name}", coll.dir))
    expected = layout.document_stem(doc_id)
    if layout.file_stem(file_name) != expected:
        coll.problems.append(Problem(rel, "id_hash_mismatch",
                                     f"holds id {doc_id!r}, whose file would be {expected}", coll.dir))
    coll.document_ids[doc_id] = file_name


def judge_collection(scan: StoreScan, coll: CollectionScan, meta_name: str) -> None:
    coll.documents = len(coll.document_ids)
    if not coll.name and not coll.document_ids:
        judge_skipped(coll, meta_name)
        return
    if not coll.name:
        problem = next((p for p in coll.problems if p.kind == "metadata_is_folder"), None)
        if problem is None and any(p.path == f"{coll.dir}/{meta_name}" and p.error for p in coll.problems):
            return  # the metadata file itself failed to read: chromem already stopped there
        if problem is None:
            kind = metadata_absence_kind(coll)
            path = coll.dir if kind == "stray_folder" else f"{coll.dir}/{meta_name}"
            problem = Problem(path, kind, f"{coll.documents} documents without a collection name", coll.dir)
            coll.problems.append(problem)
        fail(scan, problem, f"collection metadata file not found: <store>/{coll.dir}")
        return
    if layout.collection_dir_name(coll.name) != coll.dir:
        coll.problems.append(Problem(coll.dir, "name_mismatch", f"{coll.name!r} hashes to "
                                     f"{layout.collection_dir_name(coll.name)}, not {coll.dir}", coll.dir))
    if coll.documents > COLLISION_WARN_DOCS:
        coll.problems.append(Problem(coll.dir, "collision_risk", f"{coll.documents} documents", coll.dir))


def judge_skipped(coll: CollectionScan, meta_name: str) -> None:
    """chromem skips a folder with no name and no documents (if every file read cleanly)."""
    coll.skipped = True
    if any(p.severity == FATAL and p.error for p in coll.problems):
        return
    for problem in coll.problems:
        if problem.kind == "metadata_is_folder":
            problem.severity = WARNING
            problem.detail += ": chromem silently skips this collection"
    if coll.metadata is not None:
        coll.problems.append(Problem(f"{coll.dir}/{meta_name}", "metadata_empty_name",
                                     "the metadata holds an empty name: chromem skips this collection", coll.dir))
    elif not coll.problems:
        coll.problems.append(Problem(coll.dir, "ignored_folder", "no metadata and no documents", coll.dir))


def metadata_absence_kind(coll: CollectionScan) -> str:
    if coll.metadata is not None:
        return "metadata_empty_name"
    return "metadata_missing" if looks_like_collection_dir(coll.dir) else "stray_folder"


def finish(scan: StoreScan) -> None:
    """Two folders holding the same name: chromem keeps the later one and drops the other."""
    names: dict[str, CollectionScan] = {}
    for coll in scan.collections:
        if coll.skipped or not coll.name:
            continue
        if coll.name in names:
            dropped = names[coll.name]
            problem = Problem(dropped.dir, "duplicate_name", f"{coll.name!r} is also in {coll.dir}; chromem "
                              f"keeps {coll.dir} and drops {dropped.documents} documents of {dropped.dir}", dropped.dir,
                              documents=dropped.documents)
            dropped.problems.append(problem)
            scan.problems.append(problem)
            dropped.skipped = True
        names[coll.name] = coll

