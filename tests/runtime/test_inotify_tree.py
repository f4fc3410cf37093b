"""Every folder that appears in the store, by any route, is watched at once: what it holds is reported,
and so is everything written into it afterwards (the store watcher with its default observer, real
renames, real inotify).

contextd's recovery (``MkdirAll(.quarantine)`` then ``Rename(<hash>, .quarantine/<hash>)``) made
watchdog's inotify emitter drop the moved folder's watch for good in most tries: nothing written in
it afterwards, there or moved back, was ever an event. The contextd test repeats that move a bounded
number of times, since each try only loses the race with some probability on the old observer.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from guardian.runtime.watcher import StoreWatcher, WatchHandlers
from tests.waiting import wait_for

HASH = "abcdef01"
CONTEXTD_TRIES = 5
ROUTE_TRIES = 4


class Heard:
    """Every raw event the store watcher hands on, as (kind, store-relative path)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def __call__(self, raws) -> None:
        with self.lock:
            self.events.extend((raw.kind, str(raw.rel)) for raw in raws)

    def paths(self) -> set[str]:
        with self.lock:
            return {rel for _, rel in self.events}

    def saw(self, *rels: str, kind: str | None = None) -> bool:
        with self.lock:
            seen = {rel for k, rel in self.events if kind in (None, k)}
        return all(rel in seen for rel in rels)


@pytest.fixture
def watched(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "0000aaaa").mkdir()
    (store / "0000aaaa" / "00000000.gob").write_bytes(b"meta")
    heard = Heard()
    watcher = StoreWatcher(store, WatchHandlers(), on_raw=heard, reconcile_interval=None).start()
    yield store, heard
    watcher.stop()


def fill(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"doc " + name.encode())
    return [folder / name for name in names]


def rel(store: Path, *paths: Path) -> list[str]:
    return [str(path.relative_to(store)) for path in paths]


def written_after(store: Path, heard: Heard, folder: Path, tag: str) -> None:
    """A file written into ``folder`` once it is there, and an existing file rewritten: both heard."""
    new = folder / f"{tag}.gob"
    new.write_bytes(b"written after the folder arrived")
    old = sorted(p for p in folder.iterdir() if p.is_file() and p != new)
    if old:
        old[0].write_bytes(b"rewritten after the folder arrived")
    wanted = rel(store, new, *old[:1])
    wait_for(lambda: heard.saw(*wanted), what=f"the writes into {folder.name} after it arrived: {wanted}")


# Each route makes a folder appear in the store and returns it with the files it brought along (they
# arrived whole, in one rename; whether a writer still holds one is asked of the OS when it settles).


def made_with_mkdir(store, outside, name):
    return store / name, []


def renamed_from_inside(store, outside, name):
    staged = fill(store / ".staging" / name, "00000000.gob", "aaaa0001.gob")
    os.rename(staged[0].parent, store / name)
    return store / name, [store / name / f.name for f in staged]


def renamed_from_outside(store, outside, name):
    ready = fill(outside / name, "00000000.gob", "aaaa0001.gob", "aaaa0002.gob")
    os.rename(outside / name, store / name)
    return store / name, [store / name / f.name for f in ready]


def swapped_for_another(store, outside, name):
    fill(store / name, "00000000.gob", "0ld00001.gob")
    ready = fill(outside / "new" / name, "00000000.gob", "new00001.gob")
    os.rename(store / name, outside / f"old-{name}")   # back to back: the old folder's watch must go
    os.rename(outside / "new" / name, store / name)
    (outside / f"old-{name}" / "gone0001.gob").write_bytes(b"outside the store now")
    return store / name, [store / name / f.name for f in ready]


def whole_tree_moved_in(store, outside, name):
    tree = outside / f"tree-{name}"
    deep = fill(tree / "a" / "b" / "c" / name, "00000000.gob", "aaaa0001.gob")
    fill(tree / "a", "top00001.gob")
    os.rename(tree, store / tree.name)
    moved = store / tree.name / "a"
    return moved / "b" / "c" / name, [moved / "top00001.gob", *(moved / "b" / "c" / name / f.name for f in deep)]


def removed_and_made_again(store, outside, name):
    fill(store / name, "00000000.gob", "0ld00001.gob")
    shutil.rmtree(store / name)
    return store / name, []


def nested_deep_in_one_go(store, outside, name):
    return store.joinpath(name, *[f"level{n:02d}" for n in range(40)]), []


ROUTES = [made_with_mkdir, renamed_from_inside, renamed_from_outside, swapped_for_another, whole_tree_moved_in,
          removed_and_made_again, nested_deep_in_one_go]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.__name__)
def test_a_folder_that_appears_is_watched_at_once_with_what_it_holds(watched, tmp_path, route):
    """Each try: the folder appears and a file is written into it at once, before any watch can be in
    place (found by listing the folder once it is watched); what came with it is reported as whole;
    then a write into it and a rewrite of what it held are heard too."""
    store, heard = watched
    for attempt in range(ROUTE_TRIES):
        folder, whole = route(store, tmp_path / f"outside{attempt}", f"{attempt:08x}")
        at_once = fill(folder, "race0001.gob")
        wanted = rel(store, *whole, *at_once)
        wait_for(lambda: heard.saw(*wanted), what=f"what the folder brought and what was written at once: {wanted}")
        assert heard.saw(*rel(store, *whole)), "files moved in with their folder are heard"
        written_after(store, heard, folder, f"late{attempt:04d}")
    assert not any(rel.endswith("gone0001.gob") for rel in heard.paths())   # an old folder's writes, not the store's


def test_contextd_moving_a_collection_aside_and_back_keeps_it_watched(watched):
    """contextd's resilient loader: make .quarantine and rename the collection into it in the same
    instant; later the collection is renamed back (by hand, or `ctxd`). Each try: writes in the
    folder while it is aside and after it is back are heard."""
    store, heard = watched
    folder = store / HASH
    fill(folder, "00000000.gob", "aaaa0001.gob")
    wait_for(lambda: heard.saw(f"{HASH}/aaaa0001.gob"), what="the collection")
    for attempt in range(CONTEXTD_TRIES):
        aside = store / ".quarantine" / HASH
        os.mkdir(aside.parent)
        os.rename(folder, aside)
        # heard the move (the old path gone, the new one there): the old observer had lost the watch by then
        wait_for(lambda: heard.saw(HASH, kind="deleted") and heard.saw(f".quarantine/{HASH}/aaaa0001.gob"),
                 what="contextd's move")
        written_after(store, heard, aside, f"asid{attempt:04d}")
        os.rename(aside, folder)
        os.rmdir(aside.parent)
        wait_for(lambda: heard.saw(f"{HASH}/asid{attempt:04d}.gob", kind="created"), what="the move back")
        written_after(store, heard, folder, f"back{attempt:04d}")
        with heard.lock:   # the next try's move is told from this one's
            heard.events.clear()


class Blocking:
    """A handler that holds the observer's thread while ``gate`` is closed (the kernel's queue then fills)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.paths: set[str] = set()

    def dispatch(self, event) -> None:
        self.entered.set()
        self.gate.wait()
        self.paths.update(p for p in (event.src_path, event.dest_path) if p)


def test_a_lost_event_queue_is_recovered_by_watching_and_listing_everything_again(tmp_path):
    """The observer's thread held while far more changes happen than inotify queues: the kernel drops
    events (IN_Q_OVERFLOW); every folder is then watched again and everything listed, the folders
    that arrived meanwhile included."""
    from guardian.runtime.inotify_tree import InotifyTreeObserver

    store = tmp_path / "store"
    fill(store / "0000aaaa", "00000000.gob")
    handler = Blocking()
    observer = InotifyTreeObserver()
    observer.schedule(handler, store)
    observer.start()
    try:
        fill(store / "0000aaaa", "first001.gob")   # its event holds the thread in the handler
        wait_for(handler.entered.is_set, what="the observer's thread held")
        queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
        for n in range(queued // 3 + 100):   # three events a file (create, modify, close): past the queue
            (store / "0000aaaa" / f"{n:08x}.gob").write_bytes(b"x")
        arrived = fill(tmp_path / "outside" / HASH, "00000000.gob")[0].parent
        os.rename(arrived, store / HASH)
        handler.gate.set()
        wait_for(lambda: observer.rebuilds == 1, what="the overflow")
        wait_for(lambda: str(store / HASH / "00000000.gob") in handler.paths, what="the folder that arrived")
        (store / HASH / "late0001.gob").write_bytes(b"after")
        wait_for(lambda: str(store / HASH / "late0001.gob") in handler.paths, what="a write into it after")
    finally:
        handler.gate.set()
        observer.stop()
        observer.join(5)
