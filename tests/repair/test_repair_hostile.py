"""Repair on hostile ground: a collection folder swapped for a symlink mid-repair, a symlink loop in a
gz store. Every repair write is relative to a folder fd opened without following symlinks."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from guardian.local.quarantine import Quarantine
from guardian.snapshots.take import take_snapshot
from tests.conftest import STORE_GZ, STORE_PLAIN, copy_store
from tests.repair.helpers_repair import repair, state_paths

SWAP_RUNS = 12
COLLECTION = "40917930"


def outside_state(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


class SwapAfterQuarantines(threading.Thread):
    """Swaps the collection folder for a symlink to ``outside`` once the quarantine holds ``threshold``
    entries (the repair's own progress: it preserves each damaged file before replacing it)."""

    def __init__(self, folder: Path, outside: Path, quarantine: Path, threshold: int) -> None:
        super().__init__(daemon=True)
        self.folder, self.outside, self.quarantine, self.threshold = folder, outside, quarantine, threshold
        self.done = threading.Event()
        self.swapped = False

    def run(self) -> None:
        while not self.done.is_set():
            try:
                count = len(os.listdir(self.quarantine))
            except OSError:
                count = 0
            if count >= self.threshold:
                os.rename(self.folder, self.folder.with_name(self.folder.name + "-moved"))
                os.symlink(self.outside, self.folder)
                self.swapped = True
                return


@pytest.mark.slow(20)
def test_a_collection_swapped_for_a_symlink_mid_repair_is_never_written_through(tmp_path):
    rng = random.Random(7)
    swapped = 0
    for run in range(SWAP_RUNS):
        base = tmp_path / f"r{run}"
        store = copy_store(STORE_PLAIN, base / "store")
        state = base / "state"
        take_snapshot(state_paths(store, state))
        docs = sorted(p for p in (store / COLLECTION).iterdir() if p.name != "00000000.gob")
        for doc in docs:
            doc.write_bytes(doc.read_bytes()[:7])          # truncated: each is preserved, then restored
        outside = base / "outside"
        outside.mkdir()
        for doc in docs:
            (outside / doc.name).write_bytes(b"someone else's file")
        before = outside_state(outside)
        paths = state_paths(store, state).ensure()
        swapper = SwapAfterQuarantines(store / COLLECTION, outside, paths.quarantine, rng.randint(1, len(docs)))
        swapper.start()
        try:
            repair(store, state)
        finally:
            swapper.done.set()
            swapper.join(timeout=60)
        swapped += swapper.swapped
        assert outside_state(outside) == before, f"run {run}: the repair wrote outside the store"
    assert swapped >= SWAP_RUNS // 2


def test_a_symlink_loop_in_a_gz_store_is_reported_and_repaired(tmp_path, cli):
    store = copy_store(STORE_GZ, tmp_path / "store")
    state = tmp_path / "state"
    take_snapshot(state_paths(store, state))
    doc = next(p for p in sorted((store / COLLECTION).iterdir()) if not p.name.startswith("00000000"))
    doc.unlink()
    doc.symlink_to(doc.name)
    env = {"GUARDIAN_STATE_DIR": str(state)}
    check = cli("check", "--store", str(store), env=env)
    assert check.returncode == 3 and "broken_symlink" in check.stdout_text
    assert "permissions" not in check.stdout_text.split("what to do:")[1]
    fixed = cli("check", "--store", str(store), "--repair", env=env)
    assert fixed.returncode in (0, 1), fixed.stdout_text + fixed.stderr_text
    assert doc.is_file() and not doc.is_symlink()
    assert any(e.original_path == f"{COLLECTION}/{doc.name}" for e in Quarantine(state_paths(store, state)).list())
