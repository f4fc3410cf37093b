"""Quarantine on hostile ground: a state dir on another, too small filesystem; FIFOs and devices.

A quarantine is complete (verified by hash) before the original moves, or it is rolled back and the
space it took is given back; nothing in a quarantine is recorded as done unless it is.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading

import pytest

from guardian.local.paths import StatePaths
from guardian.local.quarantine import Quarantine
from guardian.repair.apply import PlanApplier
from guardian.repair.plan import RepairAction, RepairPlan
from guardian.snapshots.repository import Repository


@pytest.fixture
def small_fs(tmpfs):
    return tmpfs("small", "256k")


def free_bytes(path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def stray_folder(store, files: int, size: int):
    folder = store / ".backup"
    folder.mkdir()
    for i in range(files):
        (folder / f"{i:08x}.gob").write_bytes(os.urandom(size))
    return folder


def listing(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_quarantine_that_does_not_fit_is_rolled_back_and_gives_its_space_back(plain_store, small_fs):
    paths = StatePaths.for_store(plain_store, small_fs).ensure()
    folder = stray_folder(plain_store, 150, 4096)       # 600 KiB into 256 KiB
    before = listing(folder)
    free_before = free_bytes(small_fs)
    q = Quarantine(paths)
    with pytest.raises(OSError):
        q.put(plain_store, ".backup", "stray folder", source="repair")
    assert listing(folder) == before                     # the original never moved
    assert q.list() == []                                # nothing recorded as quarantined
    assert free_bytes(small_fs) >= free_before           # the partial copy is gone
    assert not any(paths.quarantine.iterdir())


def test_repair_reports_a_failed_quarantine_as_failed(plain_store, small_fs):
    paths = StatePaths.for_store(plain_store, small_fs).ensure()
    stray_folder(plain_store, 150, 4096)
    applier = PlanApplier(plain_store, Quarantine(paths), Repository(paths.snapshots), False)
    action = RepairAction("quarantine", ".backup", is_folder=True, reason="stray")
    [applied] = applier.apply(RepairPlan(actions=[action]))
    assert not applied.ok and "No space" in applied.detail
    assert (plain_store / ".backup").is_dir() and len(os.listdir(plain_store / ".backup")) == 150


def test_a_quarantine_that_fits_on_another_filesystem_is_verified_and_complete(plain_store, tmp_path, small_fs):
    paths = StatePaths.for_store(plain_store, small_fs).ensure()
    folder = stray_folder(plain_store, 10, 1000)
    os.mkfifo(folder / "pipe.gob")
    before = {n: b for n, b in ((p.name, p.read_bytes()) for p in folder.iterdir() if p.is_file())}
    entry = Quarantine(paths).put(plain_store, ".backup", "stray folder")
    assert not folder.exists()
    copied = {p.name: p.read_bytes() for p in entry.payload_path.iterdir() if p.is_file()}
    assert copied == before and stat.S_ISFIFO(os.lstat(entry.payload_path / "pipe.gob").st_mode)
    assert entry.state == "quarantined" and entry.size == 10_000
    assert all(stat.S_IMODE(os.lstat(p).st_mode) == 0o600 for p in entry.payload_path.iterdir() if p.is_file())


def quarantine_in_thread(q, store, rel):
    outcome = {}

    def run():
        try:
            outcome["entry"] = q.put(store, rel, "special file")
        except BaseException as exc:   # noqa: BLE001 - reported to the test
            outcome["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "quarantining a special file hung"
    return outcome


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_special_files_are_quarantined_without_being_opened(plain_store, state_dir, small_fs, kind):
    """Across filesystems too (a copy, not a rename): a FIFO or /dev/zero is never read."""
    path = plain_store / "40917930" / "aaaaaaaa.gob"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod needs root")
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))   # /dev/zero: reads forever
    for state in (state_dir, small_fs):
        paths = StatePaths.for_store(plain_store, state).ensure()
        outcome = quarantine_in_thread(Quarantine(paths), plain_store, "40917930/aaaaaaaa.gob")
        assert "entry" in outcome, outcome.get("error")
        entry = outcome["entry"]
        assert entry.sha256 is None and not os.path.lexists(path)
        shutil.move(str(entry.payload_path), str(path)) if state == state_dir else None


def test_a_full_disk_leaves_no_empty_entry_folder_behind(plain_store, small_fs):
    """Even the entry's record not fitting: nothing half-made stays (no unreadable entry in the list)."""
    paths = StatePaths.for_store(plain_store, small_fs).ensure()
    filler = small_fs / "filler"
    with open(filler, "wb", buffering=0) as out:
        for chunk in (4096, 1):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError:
                pass
    q = Quarantine(paths)
    with pytest.raises(OSError):
        q.put(plain_store, sorted(plain_store.glob("*/*.gob"))[0].relative_to(plain_store).as_posix(), "test")
    assert q.listing() == ([], [])
    assert not paths.quarantine.exists() or not any(paths.quarantine.iterdir())
