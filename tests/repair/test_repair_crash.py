"""A repair killed with SIGKILL at random points, then run again, ends in the same store state."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.snapshots.take import take_snapshot
from tests.conftest import ROOT, STORE_GZ, copy_store
from tests.damage import DAMAGES
from tests.repair.helpers_repair import repair, state_paths, tree_bytes

RUNNER = Path(__file__).with_name("crash_runner.py")
DAMAGE_SET = ("several_empty_documents", "orphan_docs_two_collections", "hidden_backup_dir", "truncated_document",
              "wrong_format_file")


def damaged_store(base: Path, with_snapshot: bool) -> tuple[Path, Path]:
    store = copy_store(STORE_GZ, base / "store")
    state = base / "state"
    if with_snapshot:
        take_snapshot(state_paths(store, state), True)
    for name in DAMAGE_SET:
        if name != "metadata_is_directory":
            DAMAGES[name](store, True)
    meta = store / "beff316c" / "00000000.gob.gz"  # a metadata folder in another collection
    meta.unlink()
    meta.mkdir()
    return store, state


def run_killed(store: Path, state: Path, kill_at_action: int) -> None:
    """Run a repair and SIGKILL it once it has begun action number ``kill_at_action`` (1-based; a
    small sleep follows each announcement, so the kill lands before or inside that action)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(RUNNER), str(store), str(state), "0.02"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout.readline().strip() == b"started"
    for _ in range(kill_at_action):
        if not proc.stdout.readline():
            break   # the repair finished first
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.slow(15)
def test_kill_9_at_random_points_converges(tmp_path):
    rng = random.Random(20260201)
    interrupted_mid_way = 0
    for with_snapshot in (True, False):
        reference_store, reference_state = damaged_store(tmp_path / f"ref-{with_snapshot}", with_snapshot)
        damaged = tree_bytes(reference_store)
        assert repair(reference_store, reference_state).loadable_after
        reference = tree_bytes(reference_store)
        for attempt in range(3):
            store, state = damaged_store(tmp_path / f"run-{with_snapshot}-{attempt}", with_snapshot)
            for _ in range(2):  # killed twice in a row, at different points
                run_killed(store, state, rng.randint(1, 6))
                interrupted_mid_way += tree_bytes(store) not in (damaged, reference)
            result = repair(store, state)
            assert result.loadable_after, result.scan.error
            assert tree_bytes(store) == reference
            assert repair(store, state).actions == []
    assert interrupted_mid_way >= 3, "the kills must land in the middle of repairs"
