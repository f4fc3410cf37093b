"""A recursive inotify observer that keeps every folder under the store watched, however it arrived.

Why not watchdog's inotify emitter: it keeps its watches in a tree of *paths* and fills it by
walking a new folder on a second thread, after the fact. When a folder is created and an already
watched folder is renamed into it at once — exactly contextd's recovery: ``MkdirAll(.quarantine)``
then ``Rename(<hash>, .quarantine/<hash>)`` — the walk meets the moved folder under its new path,
registers its (same) watch descriptor a second time ("Callback ... already exists"), and the
unmatched ``IN_MOVED_FROM`` of the old path then removes that descriptor for good. From then on
nothing written in the folder produces an event, wherever it is moved next (back to ``<hash>/`` by
``check --repair`` or by hand): in 17 of 20 tries here. Only the periodic full rescans found its
writes, minutes later.

What this observer does instead, on one thread that reads events in the kernel's order:

- a watch descriptor names an *inode*: the tree of watched folders is kept by descriptor (its parent's
  descriptor and its name), with the folder's (device, inode) recorded when it was watched. A folder
  that moves keeps its descriptor and its sub-folders follow it; a folder met again under a new path
  (``inotify_add_watch`` returns the descriptor it already has) is simply moved there in the tree;
- a folder that arrives (created, or renamed in from inside or outside the store, or a whole tree) is
  opened, watched through its open descriptor (so the watch, the inode recorded and the listing are
  the same folder even if the path is swapped meanwhile), and only then listed: everything already
  in it — moved in with it, or written between its arrival and the watch — is reported, and
  everything written after is an event. Its sub-folders likewise, as deep as they go;
- a watched folder that moved (``IN_MOVE_SELF``) is looked for at the path the tree gives it: there
  (moved within the store, already placed by its ``IN_MOVED_TO``) it stays; elsewhere (moved out of
  the store) it and its sub-folders stop being watched, so that no event of a folder outside the
  store is ever reported under a path inside it;
- a lost queue (``IN_Q_OVERFLOW``) rebuilds every watch from a fresh walk and reports what it finds.

It has the small part of watchdog's observer interface the store watcher uses (``schedule``,
``start``, ``stop``, ``join``, ``emitters``) and hands it watchdog's own event types. Linux only:
elsewhere, and when inotify is unavailable, watchdog's observers are used.
"""

from __future__ import annotations

import errno
import os
import select
import threading
from dataclasses import dataclass

from guardian.logs import get_logger

log = get_logger("guardian.runtime.inotify_tree")

MAX_DEPTH = 256   # deeper than any store; a loop of bind mounts must not walk forever
PROC_FD = "/proc/self/fd"
INOTIFY_EXHAUSTED = (errno.ENOSPC, errno.EMFILE)


@dataclass
class _Watched:
    """One watched folder: where it is in the tree (its parent's descriptor; None for the root) and
    which inode it is (to tell, after it moved, whether it is still where the tree says)."""

    parent: int | None
    name: str
    key: tuple[int, int]


def _flags():
    from inotify_simple import flags

    return flags


class InotifyTreeObserver:
    """Watch one folder and everything below it; hand watchdog events to one handler."""

    def __init__(self) -> None:
        f = _flags()
        self._f = f
        self._mask = (f.CREATE | f.DELETE | f.MOVED_FROM | f.MOVED_TO | f.MODIFY | f.CLOSE_WRITE
                      | f.DELETE_SELF | f.MOVE_SELF | f.ONLYDIR)
        self._handler = None
        self._root = ""
        self._inotify = None
        self._root_wd: int | None = None
        self._watched: dict[int, _Watched] = {}
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._wake_lock = threading.Lock()
        self._stopping = False
        self._root_lost = False
        self._limit_warned = False
        self._through_proc = os.path.isdir(PROC_FD)
        self.rebuilds = 0   # queue overflows recovered from (tests, debugging)

    # ---- watchdog's observer interface (the part StoreWatcher uses) ------------------------------

    def schedule(self, handler, path, recursive: bool = True, event_filter=None, **_) -> None:
        """One handler and one folder; always recursive; the events are the ones the store watcher reads."""
        self._handler = handler
        self._root = os.path.abspath(os.fspath(path))

    def start(self) -> None:
        """Watch the whole tree now (an error on the root itself, e.g. inotify exhausted, is raised)."""
        from inotify_simple import INotify

        self._inotify = INotify()
        try:
            self._watch_root()
        except BaseException:
            self._inotify.close()
            raise
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="guardian-inotify-tree", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake_lock:   # (the thread closes the pipe when it ends: never write to a reused fd)
            self._stopping = True
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def emitters(self) -> tuple["InotifyTreeObserver", ...]:
        return (self,)

    def is_alive(self) -> bool:
        """Reading events and still watching the root (gone or moved away: the store watcher starts anew)."""
        return self._thread is not None and self._thread.is_alive() and not self._root_lost

    # ---- the reading thread ------------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._inotify.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not self._stopping:
                poller.poll()
                if self._stopping:
                    break
                for event in self._inotify.read(timeout=0):
                    try:
                        self._handle(event)
                    except Exception:   # one odd event must not end the watching
                        log.error("inotify_event_failed", event=repr(event), exc_info=True)
        finally:
            self._inotify.close()
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1

    def _handle(self, event) -> None:
        f = self._f
        mask = event.mask
        if self._root_lost:
            return   # the root went or moved away: nothing it reports is the store's (a new observer comes)
        if mask & f.Q_OVERFLOW:
            self._rebuild()
            return
        if mask & f.IGNORED:   # the kernel dropped the watch (folder deleted, or we removed it)
            self._forget(event.wd)
            return
        if mask & (f.DELETE_SELF | f.MOVE_SELF):
            self._check_still_here(event.wd)
            return
        base = self._path_of(event.wd)
        if base is None:
            return   # a folder that left the store (its watch is being removed) or is not placed yet
        path = os.path.join(base, event.name)
        is_dir = bool(mask & f.ISDIR)
        if mask & f.CREATE:
            self._emit("created", path, is_dir=is_dir)
            if is_dir:
                self._arrive(event.wd, event.name, moved=False)
        elif mask & f.MOVED_TO:
            self._emit("moved", "", path, is_dir=is_dir)   # arrived whole: a rename is never half a file
            if is_dir:
                self._arrive(event.wd, event.name, moved=True)
        elif mask & f.MOVED_FROM:
            self._emit("moved", path, "", is_dir=is_dir)
        elif mask & f.DELETE:
            self._emit("deleted", path, is_dir=is_dir)
        elif mask & f.CLOSE_WRITE:
            self._emit("closed", path)
        elif mask & f.MODIFY and not is_dir:
            self._emit("modified", path)

    # ---- the tree of watched folders ----------------------------------------------------------------

    def _path_of(self, wd: int) -> str | None:
        """The folder's path as the tree has it; None when it is not (or no longer) under the root."""
        parts = []
        seen = 0
        while wd != self._root_wd:
            node = self._watched.get(wd)
            if node is None or node.parent is None or seen > len(self._watched):
                return None
            parts.append(node.name)
            wd, seen = node.parent, seen + 1
        return os.path.join(self._root, *reversed(parts)) if parts else self._root

    def _descendants(self, wd: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for child, node in self._watched.items():
            if node.parent is not None:
                children.setdefault(node.parent, []).append(child)
        found, stack = [], [wd]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in found and child != wd:
                    found.append(child)
                    stack.append(child)
        return found

    def _forget(self, wd: int) -> None:
        self._watched.pop(wd, None)
        if wd == self._root_wd:
            self._root_lost = True

    def _unwatch(self, wd: int) -> None:
        """A folder that is not under the store any more: its watch and its sub-folders' go."""
        for gone in [wd, *self._descendants(wd)]:
            if self._watched.pop(gone, None) is not None:
                try:
                    self._inotify.rm_watch(gone)
                except OSError:
                    pass   # already dropped by the kernel (deleted)

    def _check_still_here(self, wd: int) -> None:
        """A watched folder moved or was deleted: keep it if it is (still or again) where the tree says."""
        node = self._watched.get(wd)
        if node is None:
            return
        path = self._path_of(wd)
        try:   # the root is followed if a symlink (as when it was watched), a sub-folder never
            st = None if path is None else os.stat(path) if wd == self._root_wd else os.lstat(path)
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == node.key:
            return
        if wd == self._root_wd:
            self._root_lost = True   # the store watcher looks at the root every second and starts anew
            return
        self._unwatch(wd)

    # ---- watching folders and listing them -----------------------------------------------------------

    def _watch_root(self) -> None:
        """The root (followed if a symlink: chromem follows it too) and every folder below, silently."""
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            st = os.fstat(fd)
            wd = self._add_watch(fd, self._root)
            self._root_wd = wd
            self._root_lost = False
            self._watched[wd] = _Watched(None, "", (st.st_dev, st.st_ino))
            self._list(fd, wd, self._root, report=None, depth=0)
        finally:
            os.close(fd)

    def _rebuild(self) -> None:
        """Events were lost: watch everything again from a fresh walk, report all of it, drop what left."""
        self.rebuilds += 1
        log.warning("inotify_queue_overflow", root=self._root, hint="every folder is watched and listed again")
        before = set(self._watched)
        seen: set[int] = set()
        try:
            fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            self._root_lost = True
            return
        try:
            seen.add(self._root_wd)
            self._list(fd, self._root_wd, self._root, report="moved", depth=0, seen=seen)
        finally:
            os.close(fd)
        for wd in before - seen:
            if wd in self._watched:
                self._unwatch(wd)

    def _arrive(self, parent_wd: int, name: str, moved: bool) -> None:
        """A folder appeared under a watched one: watch it (and below) first, then report what it holds."""
        parent_path = self._path_of(parent_wd)
        if parent_path is None:
            return
        try:
            parent_fd = os.open(parent_path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return   # its parent went too: the events for that are on their way
        try:
            st = os.fstat(parent_fd)
            if (st.st_dev, st.st_ino) != self._watched[parent_wd].key:
                return   # another folder is at the parent's path by now: the events of those moves place both
            self._enter(parent_fd, parent_wd, name, os.path.join(parent_path, name),
                        report="moved" if moved else "created", depth=1)
        finally:
            os.close(parent_fd)

    def _enter(self, parent_fd: int, parent_wd: int, name: str, path: str, report: str | None,
               depth: int, seen: set[int] | None = None) -> None:
        """Open ``name`` in its parent (never through a symlink), watch that very folder, place it in the
        tree under its parent, list it, and report the listing only if the folder is still there: one
        that left while we looked (renamed out of the store) is unwatched and reports nothing, its
        departure is already an event."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
        except OSError:
            return   # gone, replaced by a file or a symlink: its own events say so
        try:
            st = os.fstat(fd)
            try:
                wd = self._add_watch(fd, path)
            except OSError as exc:
                self._cannot_watch(path, exc)
                wd = None
            if wd is not None:
                if self._is_ancestor(wd, parent_wd):
                    if wd not in self._watched:
                        self._inotify.rm_watch(wd)
                    return   # the tree is behind a chain of moves; their own events place it
                self._watched[wd] = _Watched(parent_wd, name, (st.st_dev, st.st_ino))
                if seen is not None:
                    seen.add(wd)
            entries = _entries(fd)
            if not _still_at(parent_fd, name, st):
                if wd is not None:
                    self._unwatch(wd)
                return
            self._report(fd, wd, path, entries, report, depth, seen)
        finally:
            os.close(fd)

    def _list(self, fd: int, wd: int | None, path: str, report: str | None, depth: int,
              seen: set[int] | None = None) -> None:
        self._report(fd, wd, path, _entries(fd), report, depth, seen)

    def _report(self, fd: int, wd: int | None, path: str, entries: list[tuple[str, bool]], report: str | None,
                depth: int, seen: set[int] | None) -> None:
        """Report what the (already watched) folder holds and enter its sub-folders."""
        for name, is_dir in entries:
            child = os.path.join(path, name)
            if report == "moved":
                self._emit("moved", "", child, is_dir=is_dir)
            elif report == "created":
                self._emit("created", child, is_dir=is_dir)
            if is_dir and wd is not None:
                if depth >= MAX_DEPTH:
                    log.warning("folder_too_deep_to_watch", path=child, depth=depth)
                    continue
                self._enter(fd, wd, name, child, report, depth + 1, seen)

    def _is_ancestor(self, wd: int, of: int) -> bool:
        seen = 0
        while of is not None and seen <= len(self._watched):
            if of == wd:
                return True
            node = self._watched.get(of)
            of, seen = (node.parent if node else None), seen + 1
        return False

    def _add_watch(self, fd: int, path: str) -> int:
        """Watch the folder open as ``fd`` — that inode, not whatever the path names by now."""
        if self._through_proc:
            return self._inotify.add_watch(f"{PROC_FD}/{fd}", self._mask)
        return self._inotify.add_watch(path, self._mask | self._f.DONT_FOLLOW)

    def _cannot_watch(self, path: str, exc: OSError) -> None:
        if exc.errno in INOTIFY_EXHAUSTED and not self._limit_warned:
            self._limit_warned = True
            log.warning("inotify_watch_limit_reached", path=path, error=str(exc),
                        hint="raise fs.inotify.max_user_watches; the periodic rescans still find changes")
        elif exc.errno not in INOTIFY_EXHAUSTED:
            log.warning("folder_not_watched", path=path, error=str(exc))

    # ---- handing events over -----------------------------------------------------------------------

    def _emit(self, kind: str, src: str, dest: str = "", is_dir: bool = False) -> None:
        from watchdog import events as ev

        if kind == "moved":
            event = (ev.DirMovedEvent if is_dir else ev.FileMovedEvent)(src, dest)
        else:
            cls = {"created": (ev.FileCreatedEvent, ev.DirCreatedEvent),
                   "deleted": (ev.FileDeletedEvent, ev.DirDeletedEvent),
                   "modified": (ev.FileModifiedEvent, ev.DirModifiedEvent),
                   "closed": (ev.FileClosedEvent, ev.FileClosedEvent)}[kind][is_dir]
            event = cls(src)
        self._handler.dispatch(event)


def _entries(fd: int) -> list[tuple[str, bool]]:
    """(name, is a folder) of what the open folder holds; [] when it cannot be read."""
    try:
        with os.scandir(fd) as listing:
            return [(e.name, e.is_dir(follow_symlinks=False)) for e in listing]
    except OSError:
        return []


def _still_at(parent_fd: int, name: str, st: os.stat_result) -> bool:
    """Is the folder opened as ``st`` still ``name`` in its parent?"""
    try:
        now = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)
