"""The store watcher: turns raw filesystem events into a few meaningful actions per collection folder.

It never repairs or snapshots anything itself. It gathers watchdog events, waits until a
collection folder has been quiet for ``debounce`` seconds (or, under a writer that never pauses,
``max_wait`` seconds after the batch's first event), looks at that folder once, classifies
what happened and calls the matching :class:`WatchHandlers` callback on its own worker thread
(never on watchdog's observer thread). A handler that raises is logged; the watcher goes on.

Actions (one folder = one direct child of the store root):

- ``collection_created``  a metadata file appeared (new folder, or file created/renamed in) and decodes
- ``metadata_changed``    the metadata file was modified and still decodes
- ``metadata_lost``       the metadata file is missing or damaged while the folder still holds documents
                          (chromem would then refuse the whole store)
- ``collection_removed``  the folder itself is gone: contextd deleted the collection; never resurrect it
- ``documents_changed``   document files were created, modified, deleted or renamed
- ``stray``               a hidden or oddly named folder at the root that chromem would load (it holds
                          a metadata or document file) - chromem loads every folder, hidden ones too

The classification (:func:`classify_batch`) is pure: a batch of :class:`RawEvent` plus a
:class:`FolderView` of the folder as it is now, in; a list of :class:`WatchAction`, out.

Events can be lost (inotify queue overflow, a watch that could not be added for a new folder),
so every ``reconcile_interval`` seconds the worker also takes an inventory of the root folders and
reports what changed for the worse since the last look (:func:`reconcile`, also pure). Handlers
may therefore be called for a state that is already fixed: they should re-check under the lock.

The store root itself can go (``rm -rf`` of the store, or a ``mv`` of it elsewhere) and come back
(contextd creates a new one on its next start, or a restore into the path). inotify watches an
inode, not a path: the old watch then watches nothing, or the moved folder, and no event says the
root changed. So about once a second the worker compares the root's identity (device, inode) with
the one it watches, and whether watchdog still watches it (its emitter ends when the watched root
is deleted; a new folder can get the freed inode number at once). Gone: every root folder it knew
is reported deleted (a ``mv`` of the root sends no event for what was inside). Back or replaced:
the observer is started again on the new folder, then every root entry found is reported
created, so nothing written in between is missed.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from guardian.format.layout import EXTENSIONS, METADATA_STEM, extension
from guardian.local import storefs
from guardian.local.fsutil import TEMP_PREFIX
from guardian.logs import get_logger

MAX_METADATA_READ = (64 << 20) + 1   # guardian.format.chromem.MAX_FILE_BYTES + 1

COLLECTION_DIR = re.compile(r"^[0-9a-f]{8}$")
POLL_INTERVAL = 1.0
MAX_WAIT = 2.0   # a folder written to without pause is still looked at this often (the index follows writes)
RECONCILE_INTERVAL = 30.0
POLLING_RECONCILE_INTERVAL = 5.0  # polling misses a delete+re-create+delete between two polls
ROOT_CHECK_SECONDS = 1.0  # one stat of the store root: is it still the folder being watched?
INOTIFY_EXHAUSTED = (errno.ENOSPC, errno.EMFILE)

CREATED, MODIFIED, DELETED = "created", "modified", "deleted"

COLLECTION_CREATED = "collection_created"
METADATA_CHANGED = "metadata_changed"
METADATA_LOST = "metadata_lost"
COLLECTION_REMOVED = "collection_removed"
DOCUMENTS_CHANGED = "documents_changed"
STRAY = "stray"

log = get_logger("guardian.runtime.watcher")


# --------------------------------------------------------------------------- pure part


@dataclass(frozen=True)
class RawEvent:
    """One filesystem change, relative to the store root. A rename arrives as deleted + created."""

    kind: str  # created | modified | deleted
    rel: PurePosixPath
    is_dir: bool = False

    @property
    def folder(self) -> str:
        return self.rel.parts[0]


@dataclass(frozen=True)
class FolderView:
    """What one root folder looks like now (gathered after the debounce window)."""

    exists: bool
    metadata: str = "missing"  # ok | missing | damaged
    has_documents: bool = False


@dataclass(frozen=True)
class WatchAction:
    kind: str
    dir_name: str
    paths: tuple[PurePosixPath, ...] = ()  # relative to the store root (documents_changed only)


def file_extension(name: str, extensions: Iterable[str] = EXTENSIONS) -> str | None:
    """The chromem extension ``name`` ends with (longest first), else None."""
    for ext in sorted(extensions, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return None


def is_metadata_name(name: str, extensions: Iterable[str] = EXTENSIONS) -> bool:
    return any(name == METADATA_STEM + ext for ext in extensions)


def is_document_name(name: str, extensions: Iterable[str] = EXTENSIONS) -> bool:
    if name.startswith(TEMP_PREFIX) or is_metadata_name(name, extensions):
        return False
    return file_extension(name, extensions) is not None


def is_collection_dir_name(name: str) -> bool:
    """chromem names a collection folder sha256(name)[:8]; anything else is a stray candidate."""
    return bool(COLLECTION_DIR.match(name))


def batch_key(rel: PurePosixPath) -> str | None:
    """The root folder an event belongs to; None for the root itself."""
    return rel.parts[0] if rel.parts else None


def relevant(event: RawEvent, extensions: Iterable[str] = EXTENSIONS) -> bool:
    """Does chromem care? Root files and anything below a collection's own subfolders: no."""
    name = event.rel.name
    if name.startswith(TEMP_PREFIX):
        return False
    depth = len(event.rel.parts)
    if depth == 1:
        return event.is_dir
    return depth == 2 and (event.is_dir and is_metadata_name(name, extensions) or not event.is_dir)


def classify_batch(dir_name: str, events: list[RawEvent], view: FolderView,
                   extensions: Iterable[str] = EXTENSIONS) -> list[WatchAction]:
    """Classify one debounced batch of events for the root folder ``dir_name``."""
    events = [e for e in events if relevant(e, extensions)]
    if not events:
        return []
    if not is_collection_dir_name(dir_name):
        return _classify_stray(dir_name, view)
    if not view.exists:
        return _classify_gone(dir_name, events)
    actions = _classify_metadata(dir_name, events, view, extensions)
    documents = _changed_documents(events, extensions)
    if documents:
        actions.append(WatchAction(DOCUMENTS_CHANGED, dir_name, documents))
    return actions


def _classify_stray(dir_name: str, view: FolderView) -> list[WatchAction]:
    loadable_files = view.has_documents or view.metadata != "missing"
    return [WatchAction(STRAY, dir_name)] if view.exists and loadable_files else []


def _classify_gone(dir_name: str, events: list[RawEvent]) -> list[WatchAction]:
    folder_events = [e for e in events if len(e.rel.parts) == 1]
    if not any(e.kind == DELETED for e in folder_events):
        return []  # a folder we never saw exist: nothing to record
    if folder_events[0].kind == CREATED:
        return []  # created and removed inside one window
    return [WatchAction(COLLECTION_REMOVED, dir_name)]


def _classify_metadata(dir_name: str, events: list[RawEvent], view: FolderView,
                       extensions: Iterable[str]) -> list[WatchAction]:
    folder_created = any(len(e.rel.parts) == 1 and e.kind == CREATED for e in events)
    meta_kinds = {e.kind for e in events if len(e.rel.parts) == 2 and is_metadata_name(e.rel.name, extensions)}
    if view.metadata != "ok":
        touched = bool(meta_kinds) or folder_created or _changed_documents(events, extensions)
        return [WatchAction(METADATA_LOST, dir_name)] if view.has_documents and touched else []
    if folder_created or CREATED in meta_kinds:
        return [WatchAction(COLLECTION_CREATED, dir_name)]
    if meta_kinds:
        return [WatchAction(METADATA_CHANGED, dir_name)]
    return []


def _changed_documents(events: list[RawEvent], extensions: Iterable[str]) -> tuple[PurePosixPath, ...]:
    paths = {e.rel for e in events
             if len(e.rel.parts) == 2 and not e.is_dir and is_document_name(e.rel.name, extensions)}
    return tuple(sorted(paths))


def normalize_event(event_type: str, src: str, dest: str, is_dir: bool,
                    to_rel: Callable[[str], PurePosixPath | None]) -> list[RawEvent]:
    """A watchdog event as zero, one or two RawEvents (a rename becomes deleted + created)."""
    if event_type == "moved":
        out = []
        for path, kind in ((src, DELETED), (dest, CREATED)):
            rel = to_rel(path) if path else None
            if rel is not None and rel.parts:
                out.append(RawEvent(kind, rel, is_dir))
        return out
    # a close after writing is one more change: whoever judges the file asks the OS whether it is still held
    kind = {"created": CREATED, "modified": MODIFIED, "closed": MODIFIED, "deleted": DELETED}.get(event_type)
    rel = to_rel(src) if kind else None
    if rel is None or not rel.parts:
        return []
    if kind == MODIFIED and is_dir:
        return []  # a folder's mtime changes with every file: the file events say more
    return [RawEvent(kind, rel, is_dir)]


def reconcile(before: dict[str, FolderView], after: dict[str, FolderView]) -> list[WatchAction]:
    """The safety net for lost events (inotify overflow, a watch that could not be added):
    compare two inventories of the root folders and report only what changed for the worse or
    appeared/disappeared. Damage that was already there in ``before`` is not reported again."""
    actions = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name, FolderView(False)), after.get(name, FolderView(False))
        action = _reconcile_folder(name, old, new)
        if action:
            actions.append(WatchAction(action, name))
    return actions


def _reconcile_folder(name: str, old: FolderView, new: FolderView) -> str | None:
    if not is_collection_dir_name(name):
        loadable = new.exists and (new.has_documents or new.metadata != "missing")
        was_loadable = old.exists and (old.has_documents or old.metadata != "missing")
        return STRAY if loadable and not was_loadable else None
    if old.exists and not new.exists:
        return COLLECTION_REMOVED if old.metadata == "ok" or old.has_documents else None
    lost_now = new.exists and new.metadata != "ok" and new.has_documents
    lost_before = old.exists and old.metadata != "ok" and old.has_documents
    if lost_now and not lost_before:
        return METADATA_LOST
    if new.exists and new.metadata == "ok" and old.metadata != "ok":
        return COLLECTION_CREATED
    return None


# --------------------------------------------------------------------------- looking at a folder


def default_metadata_ok(data: bytes) -> bool:
    """Does this metadata file decode to a collection with a non-empty name?"""
    from guardian.errors import CodecError
    from guardian.format.chromem import decode_collection

    try:
        return bool(decode_collection(data).name)
    except CodecError:
        return False


def inspect_folder(folder: Path, metadata_ok: Callable[[bytes], bool] = default_metadata_ok,
                   extensions: Iterable[str] = EXTENSIONS) -> FolderView:
    """Look at one root folder as chromem's loader would (files only, no recursion).

    Cheap whatever the folder holds (this runs after every batch of writes): the metadata file is
    looked up by name, and the listing stops at the first document file."""
    try:
        if not folder.is_dir() or folder.is_symlink():
            return FolderView(exists=False)
        listing = os.scandir(folder)
    except OSError:
        return FolderView(exists=False)
    with listing:
        has_documents = any(is_document_name(e.name, extensions) and e.is_file(follow_symlinks=False)
                            for e in listing)
    metadata = "missing"
    for ext in extensions:
        path = folder / (METADATA_STEM + ext)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        metadata = "ok" if _read_ok(path, metadata_ok) else "damaged"
        if metadata == "ok":
            break
    return FolderView(exists=True, metadata=metadata, has_documents=has_documents)


def inventory(root: Path, metadata_ok: Callable[[bytes], bool] = default_metadata_ok,
              extensions: Iterable[str] = EXTENSIONS) -> dict[str, FolderView]:
    """Every folder directly under the root, as chromem's loader would see it."""
    try:
        names = [e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return {}
    return {name: inspect_folder(root / name, metadata_ok, extensions) for name in names}


def _read_ok(path: Path, metadata_ok: Callable[[bytes], bool]) -> bool:
    try:   # regular files only (a FIFO never blocks the watcher), bounded (a huge file never fills memory)
        data = storefs.read_regular(path, limit=MAX_METADATA_READ, follow=True, prefix=True)
    except OSError:
        return False
    try:
        return bool(data) and metadata_ok(data)
    except Exception:  # a decoder bug must not kill the watcher: treat as undecodable
        log.warning("metadata_decode_failed", path=str(path), exc_info=True)
        return False


# --------------------------------------------------------------------------- the I/O part


@dataclass
class WatchHandlers:
    """Callbacks the sidecar wires; each is optional. Called on the watcher's worker thread."""

    on_collection_created: Callable[[str], object] | None = None
    on_metadata_lost: Callable[[str], object] | None = None
    on_metadata_changed: Callable[[str], object] | None = None
    on_collection_removed: Callable[[str], object] | None = None
    on_documents_changed: Callable[[str, list[Path]], object] | None = None
    on_stray: Callable[[Path], object] | None = None


@dataclass
class _Pending:
    events: list[RawEvent] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0

    def due_at(self, debounce: float, max_wait: float) -> float:
        """Quiet for ``debounce``, or ``max_wait`` after its first event (a steady writer never pauses)."""
        return min(self.last + debounce, self.first + max(max_wait, debounce))


def _default_observer():
    """On Linux guardian's own recursive inotify observer (runtime.inotify_tree: watchdog's lost
    the watch of a folder moved into a folder created at the same moment); elsewhere watchdog's."""
    if sys.platform.startswith("linux"):
        from guardian.runtime.inotify_tree import InotifyTreeObserver

        try:
            return InotifyTreeObserver()
        except ImportError:   # an environment installed before guardian needed inotify_simple
            log.warning("inotify_simple_missing", hint="reinstall guardian (pip install inotify_simple): "
                        "watchdog's observer can lose the watch of a folder moved into the store")
    from watchdog.observers import Observer

    return Observer()


def _event_filter() -> list:
    """The watchdog events the watcher reads. Not "opened" or "closed without writing": every file
    guardian itself reads (a capture, a judgment, an index refresh) would cost two events on
    watchdog's threads, and at 100k documents that was a fifth of the sidecar's CPU."""
    from watchdog import events as ev

    return [ev.FileCreatedEvent, ev.DirCreatedEvent, ev.FileModifiedEvent, ev.FileDeletedEvent,
            ev.DirDeletedEvent, ev.FileMovedEvent, ev.DirMovedEvent, ev.FileClosedEvent]


def _polling_observer(interval: float):
    from watchdog.observers.polling import PollingObserver

    return PollingObserver(timeout=interval)


class StoreWatcher:
    """Watch a store root; debounce per root folder; classify; dispatch on a worker thread."""

    def __init__(self, root: Path, handlers: WatchHandlers, debounce: float = 0.3,
                 clock: Callable[[], float] = time.monotonic, observer_factory=None,
                 compress: bool | None = None, poll_interval: float = POLL_INTERVAL,
                 metadata_ok: Callable[[bytes], bool] = default_metadata_ok,
                 reconcile_interval: float | None = RECONCILE_INTERVAL,
                 on_raw: Callable[[list[RawEvent]], object] | None = None, max_wait: float = MAX_WAIT) -> None:
        self.root = Path(os.path.abspath(root))
        self.real_root = Path(os.path.realpath(root))
        self.handlers = handlers
        self.debounce = debounce
        self.max_wait = max_wait
        self.clock = clock
        self.observer_factory = observer_factory or _default_observer
        self.extensions = EXTENSIONS if compress is None else (extension(compress),)
        self.poll_interval = poll_interval
        self.metadata_ok = functools.lru_cache(maxsize=4096)(metadata_ok)  # metadata files are tiny
        self.reconcile_interval = reconcile_interval
        # every event but guardian's temp files, its own writes included (observer thread: be quick)
        self.on_raw = on_raw
        self._known: dict[str, FolderView] = {}
        self.reconciliations = 0
        self._next_reconcile: float | None = None
        self._root_key: tuple[int, int] | None = None
        self._next_root_check: float | None = None
        self.root_changes = 0   # how often the root went or came back (tests, status)
        self.counts: dict[str, int] = {}
        self.observer_kind = ""
        self._observer = None
        self._pending: dict[str, _Pending] = {}
        self._suppressed: dict[PurePosixPath, float] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._held = False
        self._worker: threading.Thread | None = None

    # -- lifecycle

    def start(self, hold: bool = False) -> "StoreWatcher":
        """Watch from now on. ``hold``: gather events but call no handler (and do not reconcile)
        until :meth:`release` — `guardian run` watches before its pre-flight lists the store, so that
        a write landing after that listing is heard of, while the parts the handlers talk to (the
        repair, the index) are not started yet."""
        self._stopping = False
        self._root_key = root_identity(self.root)
        self._held = hold
        self._observer = self._start_observer()
        self._known = inventory(self.root, self.metadata_ok, self.extensions)
        self._next_root_check = self.clock() + ROOT_CHECK_SECONDS
        if self.reconcile_interval:
            self._next_reconcile = self.clock() + self.reconcile_interval
        self._worker = threading.Thread(target=self._work, name="guardian-watch-dispatch", daemon=True)
        self._worker.start()
        log.info("watching_store", root=str(self.root), observer=self.observer_kind)
        return self

    def release(self) -> None:
        """Let the worker handle what was gathered while held (at once: it is past its debounce), then
        every later batch as usual. Harmless when not held."""
        with self._cond:
            self._held = False
            self._cond.notify_all()

    @property
    def held(self) -> bool:
        return self._held

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True   # first: the worker starts no new observer from now on
            self._cond.notify_all()
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout)
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None

    def __enter__(self) -> "StoreWatcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_observer(self):
        try:
            observer = self._schedule(self.observer_factory())
            self.observer_kind = "native"
            return observer
        except OSError as exc:
            if exc.errno not in INOTIFY_EXHAUSTED:
                raise
            log.warning("inotify_exhausted_polling",
                        error=str(exc), interval=self.poll_interval,
                        hint="raise fs.inotify.max_user_watches / max_user_instances")
        observer = self._schedule(_polling_observer(self.poll_interval))
        self.observer_kind = "polling"
        if self.reconcile_interval:
            self.reconcile_interval = min(self.reconcile_interval, POLLING_RECONCILE_INTERVAL)
        return observer

    def _schedule(self, observer):
        try:
            observer.schedule(_EventSink(self), str(self.root), recursive=True, event_filter=_event_filter())
            observer.start()
        except BaseException:
            try:
                observer.stop()
            except Exception:
                pass
            raise
        return observer

    # -- suppression of guardian's own writes

    def suppress(self, path: str | os.PathLike, seconds: float = 2.0) -> None:
        """Drop creation/modification events for ``path`` (and below) for ``seconds``: guardian writes it.

        Deletions are never dropped: guardian never deletes, so a deletion inside the window is
        someone else's (a second loss of a just-repaired metadata file must be seen at once)."""
        rel = self._to_rel(os.fspath(path))
        if rel is None:
            return
        with self._cond:
            self._suppressed[rel] = self.clock() + seconds

    def _is_suppressed(self, raw: RawEvent, now: float) -> bool:
        if raw.kind == DELETED:
            return False
        rel = raw.rel
        expired = [p for p, until in self._suppressed.items() if until < now]
        for path in expired:
            del self._suppressed[path]
        return any(rel == p or p in rel.parents for p in self._suppressed)

    def _to_rel(self, path: str) -> PurePosixPath | None:
        absolute = os.path.abspath(path)
        for base in (str(self.root), str(self.real_root)):
            if absolute == base or absolute.startswith(base + os.sep):
                return PurePosixPath(os.path.relpath(absolute, base)) if absolute != base else PurePosixPath()
        return None

    # -- intake (observer thread: only append and notify, never block)

    def feed(self, event_type: str, src: str, dest: str = "", is_dir: bool = False) -> None:
        self._report(normalize_event(event_type, src, dest, is_dir, self._to_rel))

    def _report(self, raws: list[RawEvent]) -> None:
        """Hand events to the raw listener and to their folders' batches (the observer's, and the
        ones the root check makes up for events no observer could see)."""
        if not raws:
            return
        if self.on_raw is not None:
            wanted = [raw for raw in raws if not raw.rel.name.startswith(TEMP_PREFIX)]
            if wanted:
                try:
                    self.on_raw(wanted)
                except Exception:  # a listener bug must not stop the debounced dispatch
                    log.error("raw_watch_listener_failed", exc_info=True)
        with self._cond:
            now = self.clock()
            for raw in raws:
                if self._is_suppressed(raw, now) or not relevant(raw, self.extensions):
                    continue
                pending = self._pending.get(raw.folder)
                if pending is None:
                    pending = self._pending[raw.folder] = _Pending(first=now)
                pending.events.append(raw)
                pending.last = now
            self._cond.notify_all()

    # -- worker thread

    def _work(self) -> None:
        while True:
            batches = self._wait_for_work()
            if batches is None:
                return
            try:
                if batches == ROOT_CHECK:
                    self._check_root()
                    continue
                for dir_name, events in batches:
                    self._dispatch_batch(dir_name, events)
                if not batches:
                    self._reconcile()
            except Exception:  # the worker must outlive any surprise
                log.error("watch_worker_failed", exc_info=True)

    def _wait_for_work(self) -> list[tuple[str, list[RawEvent]]] | str | None:
        """Due batches; [] when it is time to reconcile; ROOT_CHECK when the root is to be looked at;
        None when stopping."""
        with self._cond:
            while not self._stopping:
                if self._held:
                    self._cond.wait()
                    continue
                now = self.clock()
                if self._next_root_check is not None and now >= self._next_root_check:
                    self._next_root_check = now + ROOT_CHECK_SECONDS
                    return ROOT_CHECK
                due = self.take_due(now)
                if due:
                    return due
                if self._next_reconcile is not None and now >= self._next_reconcile:
                    return []
                self._cond.wait(self._next_wait(now))
            return None

    def _check_root(self) -> None:
        """Is the root still the folder being watched? If not, report it and watch the new one."""
        key = root_identity(self.root)
        if key == self._root_key and (key is None or self._observer_alive()):
            return   # the same folder, still watched (a deleted root's inode can be reused at once)
        self.root_changes += 1
        old_key, self._root_key = self._root_key, key
        if old_key is not None:
            gone = sorted(self._known)
            log.warning("store_root_changed" if key else "store_root_gone", root=str(self.root), folders=len(gone))
            self._known = {}
            self._report([RawEvent(DELETED, PurePosixPath(name), True) for name in gone])
        if key is None:
            return
        with self._cond:
            if self._stopping:
                return
            old, self._observer = self._observer, None
        if old is not None:
            old.stop()
            old.join(5.0)
        try:
            observer = self._start_observer()   # first watch the new folder, then list it: no gap
        except OSError as exc:   # gone again, or unreadable: the next check tries again
            self._root_key = None
            log.warning("store_watch_failed", root=str(self.root), error=str(exc))
            return
        with self._cond:
            if self._stopping:
                observer.stop()
                return
            self._observer = observer
        log.info("watching_store", root=str(self.root), observer=self.observer_kind, again=True)
        found = [RawEvent(CREATED, PurePosixPath(entry.name), entry.is_dir(follow_symlinks=False))
                 for entry in _scandir_quietly(self.root)]
        self._report(found)

    def _observer_alive(self) -> bool:
        """watchdog's emitter ends when its root is deleted (inotify's IN_DELETE_SELF)."""
        observer = self._observer
        return observer is not None and any(emitter.is_alive() for emitter in observer.emitters)

    def take_due(self, now: float) -> list[tuple[str, list[RawEvent]]]:
        """Remove and return the batches whose folder has been quiet for ``debounce`` seconds (or that
        wait since ``max_wait``)."""
        with self._cond:
            due = [k for k, p in self._pending.items() if p.due_at(self.debounce, self.max_wait) <= now]
            return [(k, self._pending.pop(k).events) for k in due]

    def _next_wait(self, now: float) -> float | None:
        deadlines = [p.due_at(self.debounce, self.max_wait) for p in self._pending.values()]
        for deadline in (self._next_reconcile, self._next_root_check):
            if deadline is not None:
                deadlines.append(deadline)
        return max(0.01, min(deadlines) - now) if deadlines else None

    def _reconcile(self) -> None:
        """Look at every root folder; report what events may have missed. Busy folders wait."""
        self._next_reconcile = self.clock() + (self.reconcile_interval or 0)
        self.reconciliations += 1
        try:
            current = inventory(self.root, self.metadata_ok, self.extensions)
        except Exception:
            log.error("store_inventory_failed", exc_info=True)
            return
        with self._cond:
            busy = set(self._pending)
        before = {k: v for k, v in self._known.items() if k not in busy}
        after = {k: v for k, v in current.items() if k not in busy}
        actions = reconcile(before, after)
        self._known.update(after)
        for name in set(before) - set(after):
            self._known.pop(name, None)
        for action in actions:
            log.warning("change_found_by_reconciliation", action=action.kind,
                        folder=action.dir_name)
            self._run_handler(action)
            self._remember(action.dir_name)

    def _remember(self, dir_name: str) -> None:
        """Record how a folder looks after its handlers ran, so reconciliation does not repeat them."""
        view = inspect_folder(self.root / dir_name, self.metadata_ok, self.extensions)
        if view.exists:
            self._known[dir_name] = view
        else:
            self._known.pop(dir_name, None)

    def _dispatch_batch(self, dir_name: str, events: list[RawEvent]) -> None:
        try:
            view = inspect_folder(self.root / dir_name, self.metadata_ok, self.extensions)
            actions = classify_batch(dir_name, events, view, self.extensions)
        except Exception:
            log.error("watch_events_unclassified", folder=dir_name, exc_info=True)
            return
        for action in actions:
            self._run_handler(action)
        self._remember(dir_name)

    def _run_handler(self, action: WatchAction) -> None:
        self.counts[action.kind] = self.counts.get(action.kind, 0) + 1
        level = log.warning if action.kind in (METADATA_LOST, STRAY, COLLECTION_REMOVED) else log.info
        level("store change", action=action.kind, folder=action.dir_name, files=len(action.paths))
        call = self._handler_call(action)
        if call is None:
            return
        try:
            call()
        except Exception:
            log.error("watch_handler_failed", action=action.kind, folder=action.dir_name, exc_info=True)

    def _handler_call(self, action: WatchAction) -> Callable[[], object] | None:
        h = self.handlers
        simple = {COLLECTION_CREATED: h.on_collection_created, METADATA_LOST: h.on_metadata_lost,
                  METADATA_CHANGED: h.on_metadata_changed, COLLECTION_REMOVED: h.on_collection_removed}
        if action.kind in simple:
            fn = simple[action.kind]
            return (lambda: fn(action.dir_name)) if fn else None
        if action.kind == DOCUMENTS_CHANGED and h.on_documents_changed:
            paths = [self.root / p for p in action.paths]
            return lambda: h.on_documents_changed(action.dir_name, paths)
        if action.kind == STRAY and h.on_stray:
            return lambda: h.on_stray(self.root / action.dir_name)
        return None


ROOT_CHECK = "root-check"


def root_identity(root: Path) -> tuple[int, int] | None:
    """(device, inode) of the store root when it is a folder (a symlinked root is followed, as
    chromem follows it), else None."""
    try:
        st = os.stat(root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _scandir_quietly(root: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(root) as entries:
            return list(entries)
    except OSError:
        return []


class _EventSink:
    """The watchdog event handler: hands every event to the watcher's intake."""

    def __init__(self, watcher: StoreWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event) -> None:
        try:
            self.watcher.feed(event.event_type, os.fsdecode(event.src_path),
                              os.fsdecode(event.dest_path or ""), bool(event.is_directory))
        except Exception:  # never let an odd event kill watchdog's thread
            log.error("watch_event_not_queued", exc_info=True)
