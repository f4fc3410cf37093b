"""The store watcher: pure classification, the debounce window, and real watchdog observers on real stores."""

from __future__ import annotations

import errno
import shutil
import threading
from pathlib import Path, PurePosixPath

import pytest

from tests.waiting import wait_for

from guardian.format.chromem import decode_collection, encode_collection, read_collection
from guardian.local.fsutil import TEMP_PREFIX, atomic_write
from guardian.runtime.watcher import (
    COLLECTION_CREATED, COLLECTION_REMOVED, CREATED, DELETED, DOCUMENTS_CHANGED, METADATA_CHANGED,
    METADATA_LOST, MODIFIED, STRAY, WatchAction, FolderView, RawEvent, StoreWatcher, WatchHandlers,
    classify_batch, inspect_folder, normalize_event,
)

WEBAPP = "40917930"  # webapp_memories, 40 documents
CHECKPOINTS = "6c7f5464"
EMPTY = "655f126a"  # contextd_default: metadata only
OK_WITH_DOCS = FolderView(exists=True, metadata="ok", has_documents=True)
LOST_WITH_DOCS = FolderView(exists=True, metadata="missing", has_documents=True)


def ev(kind: str, rel: str, is_dir: bool = False) -> RawEvent:
    return RawEvent(kind, PurePosixPath(rel), is_dir)


def kinds(actions: list[WatchAction]) -> list[str]:
    return [a.kind for a in actions]


# --------------------------------------------------------------------------- pure classification


def test_metadata_deleted_while_documents_remain_is_lost():
    actions = classify_batch(WEBAPP, [ev(DELETED, f"{WEBAPP}/00000000.gob")], LOST_WITH_DOCS)
    assert actions == [WatchAction(METADATA_LOST, WEBAPP)]


def test_metadata_damaged_in_place_is_lost():
    view = FolderView(exists=True, metadata="damaged", has_documents=True)
    actions = classify_batch(WEBAPP, [ev(MODIFIED, f"{WEBAPP}/00000000.gob")], view)
    assert kinds(actions) == [METADATA_LOST]


def test_metadata_gone_from_a_folder_without_documents_is_not_repaired():
    view = FolderView(exists=True, metadata="missing", has_documents=False)
    assert classify_batch(EMPTY, [ev(DELETED, f"{EMPTY}/00000000.gob")], view) == []


def test_whole_folder_removed_is_recorded_not_resurrected():
    events = [ev(DELETED, f"{WEBAPP}/00000000.gob"), ev(DELETED, f"{WEBAPP}/01e48869.gob"),
              ev(DELETED, WEBAPP, is_dir=True)]
    actions = classify_batch(WEBAPP, events, FolderView(exists=False))
    assert actions == [WatchAction(COLLECTION_REMOVED, WEBAPP)]


def test_folder_created_and_removed_inside_one_window_is_nothing():
    events = [ev(CREATED, WEBAPP, is_dir=True), ev(DELETED, WEBAPP, is_dir=True)]
    assert classify_batch(WEBAPP, events, FolderView(exists=False)) == []


def test_new_folder_with_metadata_is_a_new_collection():
    events = [ev(CREATED, "abcdef01", is_dir=True), ev(CREATED, "abcdef01/00000000.gob"),
              ev(MODIFIED, "abcdef01/00000000.gob")]
    view = FolderView(exists=True, metadata="ok", has_documents=False)
    assert classify_batch("abcdef01", events, view) == [WatchAction(COLLECTION_CREATED, "abcdef01")]


def test_metadata_renamed_into_place_counts_as_created():
    raws = normalize_event("moved", f"/s/{WEBAPP}/.tmp-x", f"/s/{WEBAPP}/00000000.gob", False,
                           lambda p: PurePosixPath(p).relative_to("/s"))
    assert kinds(classify_batch(WEBAPP, raws, OK_WITH_DOCS)) == [COLLECTION_CREATED]


def test_metadata_rewritten_and_valid_is_changed():
    actions = classify_batch(WEBAPP, [ev(MODIFIED, f"{WEBAPP}/00000000.gob")], OK_WITH_DOCS)
    assert actions == [WatchAction(METADATA_CHANGED, WEBAPP)]


def test_document_changes_are_collected_sorted_and_unique():
    events = [ev(CREATED, f"{WEBAPP}/bbbb0000.gob"), ev(MODIFIED, f"{WEBAPP}/bbbb0000.gob"),
              ev(DELETED, f"{WEBAPP}/aaaa0000.gob"), ev(CREATED, f"{WEBAPP}/{TEMP_PREFIX}x.gob.1"),
              ev(CREATED, f"{WEBAPP}/.DS_Store"), ev(CREATED, f"{WEBAPP}/sub/cccc0000.gob")]
    actions = classify_batch(WEBAPP, events, OK_WITH_DOCS)
    assert actions == [WatchAction(DOCUMENTS_CHANGED, WEBAPP, (PurePosixPath(f"{WEBAPP}/aaaa0000.gob"),
                                                               PurePosixPath(f"{WEBAPP}/bbbb0000.gob")))]


def test_extensions_follow_the_compression_setting():
    events = [ev(CREATED, f"{WEBAPP}/bbbb0000.gob.gz")]
    assert classify_batch(WEBAPP, events, OK_WITH_DOCS, extensions=(".gob",)) == []
    assert kinds(classify_batch(WEBAPP, events, OK_WITH_DOCS, extensions=(".gob.gz",))) == [DOCUMENTS_CHANGED]


def test_hidden_folder_holding_a_document_is_stray():
    events = [ev(CREATED, ".backup", is_dir=True), ev(CREATED, ".backup/01e48869.gob")]
    view = FolderView(exists=True, metadata="missing", has_documents=True)
    assert classify_batch(".backup", events, view) == [WatchAction(STRAY, ".backup")]


def test_hidden_folder_chromem_skips_is_not_stray():
    events = [ev(CREATED, ".cache", is_dir=True), ev(CREATED, ".cache/notes.txt")]
    assert classify_batch(".cache", events, FolderView(exists=True)) == []
    assert classify_batch(".cache", events, FolderView(exists=False)) == []


def test_files_at_root_and_deep_files_are_ignored():
    assert classify_batch("README.txt", [ev(CREATED, "README.txt")], FolderView(exists=False)) == []
    deep = [ev(MODIFIED, f"{WEBAPP}/sub/deeper/00000000.gob")]
    assert classify_batch(WEBAPP, deep, LOST_WITH_DOCS) == []


def test_metadata_replaced_by_a_folder_is_lost():
    events = [ev(DELETED, f"{WEBAPP}/00000000.gob"), ev(CREATED, f"{WEBAPP}/00000000.gob", is_dir=True)]
    assert kinds(classify_batch(WEBAPP, events, LOST_WITH_DOCS)) == [METADATA_LOST]


def test_normalize_splits_renames_and_drops_noise():
    to_rel = lambda p: PurePosixPath(p).relative_to("/s") if p.startswith("/s/") else None  # noqa: E731
    moved = normalize_event("moved", "/s/a/x.gob", "/s/b/y.gob", False, to_rel)
    assert moved == [ev(DELETED, "a/x.gob"), ev(CREATED, "b/y.gob")]
    assert normalize_event("moved", "/s/a", "/elsewhere/a", True, to_rel) == [ev(DELETED, "a", True)]
    assert normalize_event("modified", "/s/a", "", True, to_rel) == []
    assert normalize_event("opened", "/s/a/x.gob", "", False, to_rel) == []
    assert normalize_event("closed_no_write", "/s/a/x.gob", "", False, to_rel) == []
    assert normalize_event("closed", "/s/a/x.gob", "", False, to_rel) == [ev(MODIFIED, "a/x.gob")]
    assert normalize_event("created", "/other/a", "", True, to_rel) == []


# --------------------------------------------------------------------------- looking at real folders


def test_inspect_folder_on_real_fixture_folders(plain_store):
    assert inspect_folder(plain_store / WEBAPP) == OK_WITH_DOCS
    assert inspect_folder(plain_store / EMPTY) == FolderView(exists=True, metadata="ok", has_documents=False)
    assert inspect_folder(plain_store / "ffffffff") == FolderView(exists=False)
    (plain_store / CHECKPOINTS / "00000000.gob").write_bytes(b"\x00garbage")
    assert inspect_folder(plain_store / CHECKPOINTS).metadata == "damaged"
    (plain_store / WEBAPP / "00000000.gob").unlink()
    assert inspect_folder(plain_store / WEBAPP) == LOST_WITH_DOCS


def test_inspect_folder_sees_an_empty_name_as_damaged(plain_store):
    (plain_store / CHECKPOINTS / "00000000.gob").write_bytes(encode_collection("", {}))
    assert inspect_folder(plain_store / CHECKPOINTS).metadata == "damaged"


# --------------------------------------------------------------------------- debounce (injected clock)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_batch_flushes_debounce_seconds_after_its_last_event(tmp_path):
    clock = FakeClock()
    watcher = StoreWatcher(tmp_path, WatchHandlers(), debounce=0.3, clock=clock)
    watcher.feed("created", str(tmp_path / WEBAPP / "aaaa0000.gob"))
    clock.now += 0.2
    watcher.feed("modified", str(tmp_path / WEBAPP / "aaaa0000.gob"))
    watcher.feed("created", str(tmp_path / CHECKPOINTS / "bbbb0000.gob"))
    assert watcher.take_due(clock.now + 0.29) == []
    due = watcher.take_due(clock.now + 0.3)
    assert sorted(name for name, _ in due) == sorted([CHECKPOINTS, WEBAPP])
    assert [e.kind for name, events in due if name == WEBAPP for e in events] == [CREATED, MODIFIED]
    assert watcher.take_due(clock.now + 10) == []


def test_a_folder_written_without_pause_is_still_dispatched_max_wait_after_its_first_event(tmp_path):
    clock = FakeClock()
    watcher = StoreWatcher(tmp_path, WatchHandlers(), debounce=0.3, clock=clock, max_wait=2.0)
    started = clock.now
    for tick in range(19):   # a writer every 0.1 s: the folder is never quiet for 0.3 s
        clock.now = started + tick / 10
        watcher.feed("created", str(tmp_path / WEBAPP / f"{tick:08x}.gob"))
        assert watcher.take_due(clock.now) == []
    due = watcher.take_due(started + 2.0)
    assert [name for name, _ in due] == [WEBAPP] and len(due[0][1]) == 19
    clock.now = started + 2.0
    watcher.feed("created", str(tmp_path / WEBAPP / "eeee0000.gob"))   # the next batch starts its own wait
    assert watcher.take_due(started + 2.2) == [] and watcher.take_due(started + 2.31) != []


def test_suppressed_paths_are_dropped_for_their_window(tmp_path):
    clock = FakeClock()
    watcher = StoreWatcher(tmp_path, WatchHandlers(), debounce=0.0, clock=clock)
    watcher.suppress(tmp_path / WEBAPP / "00000000.gob", seconds=2.0)
    watcher.suppress(tmp_path / "newdir00")
    watcher.feed("created", str(tmp_path / WEBAPP / "00000000.gob"))
    watcher.feed("created", str(tmp_path / "newdir00" / "aaaa0000.gob"))
    assert watcher.take_due(clock.now) == []
    watcher.feed("deleted", str(tmp_path / WEBAPP / "00000000.gob"))  # never guardian's doing
    assert [name for name, _ in watcher.take_due(clock.now)] == [WEBAPP]
    clock.now += 2.1
    watcher.feed("modified", str(tmp_path / WEBAPP / "00000000.gob"))
    assert [name for name, _ in watcher.take_due(clock.now)] == [WEBAPP]


# --------------------------------------------------------------------------- real observers


class Recorder:
    """Handlers that record every call (and the thread it ran on), optionally repairing metadata."""

    def __init__(self, root: Path, names: dict[str, str] | None = None) -> None:
        self.root = root
        self.names = names or {}
        self.calls: list[tuple] = []
        self.threads: set[str] = set()
        self.snapshot: dict[str, str] = {}
        self.watcher: StoreWatcher | None = None

    def record(self, *call) -> None:
        self.calls.append(call)
        self.threads.add(threading.current_thread().name)

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]

    def handlers(self, repair: bool = True) -> WatchHandlers:
        return WatchHandlers(
            on_collection_created=self.created,
            on_metadata_lost=self.lost if repair else lambda d: self.record("lost", d),
            on_metadata_changed=lambda d: self.record("changed", d),
            on_collection_removed=lambda d: self.record("removed", d),
            on_documents_changed=lambda d, paths: self.record("documents", d, sorted(p.name for p in paths)),
            on_stray=lambda p: self.record("stray", p),
        )

    def created(self, dir_name: str) -> None:
        record = read_collection(self.root / dir_name / "00000000.gob")
        self.snapshot[dir_name] = record.name
        self.record("created", dir_name)

    def lost(self, dir_name: str) -> None:
        """What the repair code does: suppress, then write the metadata back atomically."""
        target = self.root / dir_name / "00000000.gob"
        self.watcher.suppress(target)
        atomic_write(target, encode_collection(self.names[dir_name], {}))
        self.record("lost", dir_name)


def start_watcher(root: Path, recorder: Recorder, **kwargs) -> StoreWatcher:
    watcher = StoreWatcher(root, recorder.handlers(**kwargs.pop("handler_options", {})), debounce=0.2, **kwargs)
    recorder.watcher = watcher
    return watcher.start()


def settle(root: Path, recorder: Recorder, folder: str = CHECKPOINTS) -> None:
    """A sentinel change flushed after everything before it: lets a test assert that nothing else came."""
    count = len(recorder.of("documents"))
    (root / folder / "feedf00d.gob").write_bytes(b"sentinel")
    wait_for(lambda: len(recorder.of("documents")) > count, what="sentinel")


@pytest.fixture
def recorder(plain_store, contents):
    names = {c["dir"]: c["name"] for c in contents["collections"]} if "collections" in contents else {
        c["dir"]: c["name"] for c in contents.values()}
    return Recorder(plain_store, names)


def test_deleted_metadata_is_back_and_valid(plain_store, recorder):
    metadata = plain_store / WEBAPP / "00000000.gob"
    with start_watcher(plain_store, recorder) as watcher:
        metadata.unlink()
        wait_for(metadata.exists, what="metadata re-created")
        assert decode_collection(metadata.read_bytes()).name == "webapp_memories"
        settle(plain_store, recorder)
    assert recorder.of("lost") == [("lost", WEBAPP)]  # our own write did not trigger anything
    assert recorder.of("changed") == [] and recorder.of("created") == []
    assert watcher.counts[METADATA_LOST] == 1
    assert recorder.threads == {"guardian-watch-dispatch"}


def test_damaged_metadata_is_rewritten(plain_store, recorder):
    metadata = plain_store / CHECKPOINTS / "00000000.gob"
    with start_watcher(plain_store, recorder):
        metadata.write_bytes(metadata.read_bytes()[:20])  # chromem-style in-place truncation
        wait_for(lambda: recorder.of("lost"), what="metadata repaired")
    assert decode_collection(metadata.read_bytes()).name == "checkpoints"


def test_metadata_lost_again_right_after_a_repair_is_repaired_again(plain_store, recorder):
    metadata = plain_store / WEBAPP / "00000000.gob"
    with start_watcher(plain_store, recorder):
        for round_ in (1, 2, 3):
            metadata.unlink()  # well inside the 2 s suppression window of the previous repair
            wait_for(lambda: len(recorder.of("lost")) == round_ and metadata.exists(),
                     what=f"repair {round_}")
        settle(plain_store, recorder)
    assert len(recorder.of("lost")) == 3 and recorder.of("changed") == []


def test_removed_collection_folder_is_recorded_and_not_resurrected(plain_store, recorder):
    with start_watcher(plain_store, recorder):
        shutil.rmtree(plain_store / WEBAPP)
        wait_for(lambda: recorder.of("removed"), what="collection removed")
        settle(plain_store, recorder)
    assert recorder.of("removed") == [("removed", WEBAPP)]
    assert recorder.of("lost") == []
    assert not (plain_store / WEBAPP).exists()


def test_new_collection_metadata_is_captured_within_five_seconds(plain_store, recorder):
    folder = plain_store / "0badcafe"
    with start_watcher(plain_store, recorder):
        folder.mkdir()
        with open(folder / "00000000.gob", "wb") as handle:  # chromem writes in place, not atomically
            handle.write(encode_collection("brand_new", {"created_by": "contextd"}))
        wait_for(lambda: "0badcafe" in recorder.snapshot, what="new collection snapshot")
    assert recorder.snapshot["0badcafe"] == "brand_new"
    assert recorder.of("lost") == []


def test_document_writes_reach_the_index_but_guardian_writes_do_not(plain_store, recorder):
    with start_watcher(plain_store, recorder) as watcher:
        (plain_store / WEBAPP / "abcd0001.gob").write_bytes(b"new document")
        wait_for(lambda: recorder.of("documents"), what="documents changed")
        own = plain_store / WEBAPP / "abcd0002.gob"
        watcher.suppress(own)
        atomic_write(own, b"written by guardian")
        settle(plain_store, recorder)
    assert recorder.of("documents")[0] == ("documents", WEBAPP, ["abcd0001.gob"])
    assert all("abcd0002.gob" not in c[2] for c in recorder.of("documents"))


def test_a_failing_handler_does_not_stop_the_watcher(plain_store, recorder):
    failures = []

    def flaky(dir_name, paths):
        if not failures:
            failures.append(dir_name)
            raise RuntimeError("handler bug")
        recorder.record("documents", dir_name, sorted(p.name for p in paths))

    handlers = recorder.handlers()
    handlers.on_documents_changed = flaky
    with StoreWatcher(plain_store, handlers, debounce=0.1) as watcher:
        (plain_store / WEBAPP / "abcd0001.gob").write_bytes(b"one")
        wait_for(lambda: failures, what="first call")
        (plain_store / WEBAPP / "abcd0003.gob").write_bytes(b"two")
        wait_for(lambda: recorder.of("documents"), what="second call")
        assert watcher.counts[DOCUMENTS_CHANGED] == 2


def test_hidden_folder_with_a_document_is_reported_as_stray(plain_store, recorder):
    with start_watcher(plain_store, recorder):
        backup = plain_store / ".backup"
        backup.mkdir()
        shutil.copy(plain_store / WEBAPP / "01e48869.gob", backup / "01e48869.gob")
        wait_for(lambda: recorder.of("stray"), what="stray folder")
    assert recorder.of("stray") == [("stray", plain_store / ".backup")]


def exhausted_inotify():
    raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_falls_back_to_polling_when_inotify_is_exhausted(plain_store, recorder):
    metadata = plain_store / WEBAPP / "00000000.gob"
    watcher = start_watcher(plain_store, recorder, observer_factory=exhausted_inotify, poll_interval=0.2)
    try:
        assert watcher.observer_kind == "polling"
        assert watcher.reconcile_interval == 5.0  # polling can miss a quick delete + re-create
        metadata.unlink()
        wait_for(metadata.exists, what="metadata re-created by the polling observer")
    finally:
        watcher.stop()
    assert decode_collection(metadata.read_bytes()).name == "webapp_memories"


def test_other_observer_errors_are_not_hidden(plain_store, recorder):
    def broken():
        raise OSError(errno.EACCES, "permission denied")

    with pytest.raises(OSError):
        StoreWatcher(plain_store, WatchHandlers(), observer_factory=broken).start()


# --------------------------------------------------------------------------- reconciliation (lost events)


def test_reconcile_reports_only_changes_for_the_worse():
    ok = OK_WITH_DOCS
    before = {WEBAPP: ok, CHECKPOINTS: ok, EMPTY: FolderView(True, "ok", False), "deadbeef": LOST_WITH_DOCS}
    after = {WEBAPP: LOST_WITH_DOCS, EMPTY: FolderView(True, "ok", False), "deadbeef": LOST_WITH_DOCS,
             "0badcafe": FolderView(True, "ok", False), ".backup": FolderView(True, "missing", True),
             ".cache": FolderView(True)}
    from guardian.runtime.watcher import reconcile

    assert reconcile(before, after) == [
        WatchAction(STRAY, ".backup"), WatchAction(COLLECTION_CREATED, "0badcafe"),
        WatchAction(METADATA_LOST, WEBAPP), WatchAction(COLLECTION_REMOVED, CHECKPOINTS),
    ]
    assert reconcile(after, after) == []


def test_reconciliation_catches_a_deletion_whose_events_were_lost(plain_store, recorder):
    metadata = plain_store / WEBAPP / "00000000.gob"
    watcher = StoreWatcher(plain_store, recorder.handlers(), debounce=0.1, reconcile_interval=0.3)
    recorder.watcher = watcher
    with watcher:
        watcher.suppress(metadata, seconds=60)  # stands in for an inotify queue overflow
        metadata.unlink()
        wait_for(metadata.exists, what="metadata re-created by reconciliation")
        settle(plain_store, recorder)
        passes = watcher.reconciliations
        wait_for(lambda: watcher.reconciliations >= passes + 2, what="two more reconciliation passes")
    assert recorder.of("lost") == [("lost", WEBAPP)]
    assert recorder.of("created") == [] and recorder.of("removed") == []
    assert decode_collection(metadata.read_bytes()).name == "webapp_memories"


@pytest.mark.parametrize("how", ["removed", "moved away"])
def test_a_store_root_that_goes_and_comes_back_is_watched_again(plain_store, recorder, tmp_path, how):
    """inotify watches the old root's inode: after `rm -rf` (or `mv`) of the store and a new store in
    its place, the watcher reports what went (a `mv` sends no event for what was inside), watches the
    new folder, reports what is already in it, and sees every write made into it afterwards."""
    raws: list = []
    with start_watcher(plain_store, recorder, on_raw=raws.extend) as watcher:
        if how == "removed":
            shutil.rmtree(plain_store)
        else:
            plain_store.rename(tmp_path / "moved-away")
        wait_for(lambda: {(r.kind, str(r.rel)) for r in raws} >= {("deleted", WEBAPP), ("deleted", CHECKPOINTS)},
                 what="the old root folders reported gone")
        folder = plain_store / "0badcafe"
        folder.mkdir(parents=True)                       # contextd's next start makes a new store
        (folder / "00000000.gob").write_bytes(encode_collection("brand_new", {}))
        wait_for(lambda: "0badcafe" in recorder.snapshot, what="the new store's collection")
        (folder / "abcd0001.gob").write_bytes(b"a document written into the new root")
        wait_for(lambda: any(c[1] == "0badcafe" and "abcd0001.gob" in c[2] for c in recorder.of("documents")),
                 what="a write into the new root")
        assert watcher.root_changes >= 1   # gone then back (2), or replaced between two checks (1)
    assert recorder.snapshot["0badcafe"] == "brand_new"
    if how == "moved away":   # the moved folder is no longer the store: its changes are not reported
        assert all(not str(r.rel).startswith("..") for r in raws)
