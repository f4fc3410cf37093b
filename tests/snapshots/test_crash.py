"""Crash safety with real processes: >= 100 SIGKILLs of `guardian snapshot` / `guardian restore`.

The kill points are steps of the work's own progress (see crash_harness.py) and the seed is fixed:
the same kills land at the same steps on a fast machine and on a loaded 2-core CI box."""

import pytest
from crash_harness import DEFAULT_SEED, run_harness


# ~250 guardian processes: a generous deadline, not a speed goal (about 70 s on an idle 2-core box)
@pytest.mark.slow(70)
@pytest.mark.timeout(1200)
def test_sigkill_at_progress_chosen_steps_never_damages_repository_or_store(tmp_path):
    stats = run_harness(tmp_path, kills=100, workers=2, seed=DEFAULT_SEED)
    assert stats.kills >= 100, f"only {stats.kills} kills in {stats.rounds} rounds"
    assert stats.snapshots >= 2, "the first (complete) snapshot and later ones must commit"
    assert stats.completed >= 10, f"only {stats.completed} runs finished"   # restores and snapshots that commit
    assert stats.failures == [], stats.failures[:5]
