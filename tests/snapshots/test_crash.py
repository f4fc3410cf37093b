"""Crash safety with real processes: >= 100 SIGKILLs of `guardian snapshot` / `guardian restore`."""

import time

import pytest
from crash_harness import run_harness


@pytest.mark.timeout(900)  # 100+ real interpreter start-ups on a loaded 2-core box
def test_sigkill_at_random_moments_never_damages_repository_or_store(tmp_path):
    seed = int(time.time())
    stats = run_harness(tmp_path, kills=100, workers=2, seed=seed)
    assert stats.kills >= 100, f"seed {seed}: only {stats.kills} kills"
    assert stats.snapshots >= 1, f"seed {seed}: no snapshot ever committed"
    assert stats.failures == [], f"seed {seed}: {stats.failures[:5]}"
