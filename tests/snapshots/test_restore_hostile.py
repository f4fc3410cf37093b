"""Restore against a hostile store: folders swapped for symlinks mid-restore, setuid modes in a manifest.

The swap tests run a real restore while a second thread replaces a collection folder by a symlink to a
folder outside the store. The moment of the swap is chosen from the restore's own progress (how many
staged or committed files the folder holds), from a fixed seed, never from the clock.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import threading
from pathlib import Path

import pytest

from guardian.errors import GuardianError
from guardian.local.fsutil import TEMP_PREFIX
from guardian.local.paths import StatePaths
from guardian.local.quarantine import Quarantine
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import Restore
from guardian.restoring.request import RestoreRequest
from guardian.snapshots.take import take_snapshot

from tests.snapshots.conftest import Clock, age_files, tree_bytes
from tests.conftest import STORE_PLAIN, copy_store

SWAP_RUNS = 24


def outside_state(folder: Path) -> dict:
    return {p.name: (p.stat().st_size, p.read_bytes()) for p in folder.iterdir()}


class Swapper(threading.Thread):
    """Waits until the collection folder shows ``threshold`` entries of one kind, then swaps it for a
    symlink to ``outside`` (the real folder is renamed inside the store, as an attacker might)."""

    def __init__(self, folder: Path, outside: Path, threshold: int, count_temps: bool) -> None:
        super().__init__(daemon=True)
        self.folder, self.outside, self.threshold, self.count_temps = folder, outside, threshold, count_temps
        self.done = threading.Event()
        self.swapped = False

    def seen(self) -> int:
        try:
            names = os.listdir(self.folder)
        except OSError:
            return 0
        if self.count_temps:
            return sum(n.startswith(TEMP_PREFIX) for n in names)
        return sum(n.endswith(".gob") for n in names)

    def run(self) -> None:
        while not self.done.is_set():
            if self.seen() >= self.threshold:
                moved = self.folder.with_name(self.folder.name + "-moved")
                os.rename(self.folder, moved)
                os.symlink(self.outside, self.folder)
                self.swapped = True
                return


def restore_while_swapping(swapper: "Swapper", restore) -> None:
    """Run ``restore`` while ``swapper`` races it; refusing is fine (writing outside is what is checked)."""
    swapper.start()
    try:
        restore()
    except GuardianError:
        pass
    finally:
        swapper.done.set()
        swapper.join(timeout=60)


def one_swap_run(tmp_path: Path, run: int, rng: random.Random) -> bool:
    base = tmp_path / f"run{run}"
    store = copy_store(STORE_PLAIN, base / "store")
    age_files(store)
    outside = base / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"not the store's")
    paths = StatePaths.for_store(store, base / "state")
    take_snapshot(paths, clock=Clock())
    folder = max((p for p in store.iterdir() if p.is_dir()), key=lambda p: len(os.listdir(p)))
    docs = sorted(p for p in folder.iterdir() if p.name != "00000000.gob")
    for doc in docs:
        doc.unlink()                       # the restore must write all of them back
    before_outside = outside_state(outside)
    count_temps = run % 2 == 0
    threshold = rng.randint(0, len(docs))
    swapper = Swapper(folder, outside, threshold, count_temps)
    restore_while_swapping(swapper, lambda: Restore.of_store(paths).run())
    assert outside_state(outside) == before_outside, f"run {run}: the restore wrote outside the store"
    return swapper.swapped


def test_swapped_collection_folder_never_redirects_a_restore(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARDIAN_TEST_SLOW_IO", "0.001")   # widen the windows; correctness does not need it
    rng = random.Random(11)
    swapped = [one_swap_run(tmp_path, run, rng) for run in range(SWAP_RUNS)]
    assert sum(swapped) >= SWAP_RUNS // 2    # the swap really happened during most restores


def test_restore_refuses_a_collection_folder_that_is_a_symlink(plain_paths):
    take_snapshot(plain_paths, clock=Clock())
    store = plain_paths.store
    folder = next(p for p in store.iterdir() if p.is_dir())
    outside = store.parent / "elsewhere"
    os.rename(folder, outside)
    for doc in outside.iterdir():
        doc.write_bytes(b"attacker's bytes")
    os.symlink(outside, folder)
    before = tree_bytes(outside)
    try:
        Restore.of_store(plain_paths).run()
    except GuardianError as exc:
        assert "symlink" in exc.message
    assert tree_bytes(outside) == before


def test_setuid_and_sticky_bits_in_a_manifest_are_not_restored(plain_paths):
    doc = next(plain_paths.store.glob("*/1*.gob"))
    folder = doc.parent
    os.chmod(doc, 0o6777)
    os.chmod(folder, 0o1777)
    take_snapshot(plain_paths, clock=Clock())
    shutil.rmtree(folder)
    Restore.of_store(plain_paths).run()
    file_mode, dir_mode = stat.S_IMODE(os.lstat(doc).st_mode), stat.S_IMODE(os.lstat(folder).st_mode)
    assert not file_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | 0o111), oct(file_mode)
    assert not dir_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), oct(dir_mode)
    assert file_mode == 0o666 and dir_mode == 0o777


def test_quarantine_restore_refuses_a_symlinked_folder(plain_paths, tmp_path):
    store = plain_paths.store
    doc = next(store.glob("*/1*.gob"))
    rel = str(doc.relative_to(store))
    entry = Quarantine(plain_paths).put(store, rel, "test")
    outside = tmp_path / "outside"
    os.rename(doc.parent, outside)
    os.symlink(outside, doc.parent)
    with pytest.raises(GuardianError, match="symlink"):
        Quarantine(plain_paths).restore(entry.id, store)
    assert not (outside / doc.name).exists() and entry.payload_path.exists()


def test_quarantined_copies_are_private(plain_paths):
    store = plain_paths.store
    doc = next(store.glob("*/1*.gob"))
    os.chmod(doc, 0o644)
    q = Quarantine(plain_paths)
    moved = q.put(store, str(doc.relative_to(store)), "test")
    other = next(store.glob("*/2*.gob"))
    kept = q.preserve(store, str(other.relative_to(store)), "test")
    for entry in (moved, kept):
        assert stat.S_IMODE(os.lstat(entry.payload_path).st_mode) == 0o600
    q.restore(moved.id, store)
    assert stat.S_IMODE(os.lstat(doc).st_mode) == 0o644
    assert Repository(plain_paths.snapshots) is not None


class StagingSwapper(Swapper):
    """The same swap, of a collection folder inside `restore --target`'s staging folder (found by its
    name next to the target once the restore has made it)."""

    def __init__(self, parent: Path, target_name: str, collection_dir: str, outside: Path, threshold: int) -> None:
        super().__init__(parent, outside, threshold, count_temps=False)
        self.pattern, self.collection_dir = f"{TEMP_PREFIX}restore.{target_name}.*", collection_dir

    def run(self) -> None:
        while not self.done.is_set():
            staged = list(self.folder.glob(self.pattern))
            if staged:
                self.folder = staged[0] / self.collection_dir
                super().run()
                return


def test_swapped_folder_never_redirects_a_restore_into_a_target(tmp_path, monkeypatch):
    from guardian.restoring.destinations import TargetFolder
    from guardian.restoring.pipeline import InProcess
    from guardian.restoring.sources import LocalSource

    monkeypatch.setenv("GUARDIAN_TEST_SLOW_IO", "0.001")   # widen the windows; correctness does not need it
    rng, swapped = random.Random(12), 0
    for run in range(SWAP_RUNS // 2):
        base = tmp_path / f"run{run}"
        store = copy_store(STORE_PLAIN, base / "store")
        age_files(store)
        paths = StatePaths.for_store(store, base / "state")
        snapshot_id = take_snapshot(paths, clock=Clock()).id
        folder = max((p for p in store.iterdir() if p.is_dir()), key=lambda p: len(os.listdir(p)))
        outside = base / "outside"
        outside.mkdir()
        (outside / "keep.txt").write_bytes(b"not the restore's")
        before = outside_state(outside)
        target = base / "restored"
        swapper = StagingSwapper(base, target.name, folder.name, outside, rng.randint(0, len(os.listdir(folder)) - 1))
        into_target = Restore(LocalSource(paths), TargetFolder(paths, target), RestoreRequest(snapshot_id=snapshot_id))
        restore_while_swapping(swapper, lambda: into_target.run(InProcess(check_load=False)))
        assert outside_state(outside) == before, f"run {run}: the restore wrote through the swapped folder"
        assert not list(base.glob(f"{TEMP_PREFIX}restore.*")), "the staging folder was left behind"
        swapped += swapper.swapped
    assert swapped >= SWAP_RUNS // 4    # the swap really happened during most restores
