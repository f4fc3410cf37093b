"""A killed restore leaves staged temp files; check reports them and any guardian write cleans them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from guardian.local.fsutil import TEMP_PREFIX
from guardian.local.paths import StatePaths
from guardian.snapshots.take import take_snapshot

from tests.snapshots.conftest import Clock
from tests.waiting import wait_until


def leftovers(store):
    return [p for p in store.rglob(f"{TEMP_PREFIX}*")]


def killed_restore(store, state) -> None:
    """Start a real `guardian restore --at latest --force`, SIGKILL it once it has staged 10 files."""
    for folder in (p for p in store.iterdir() if p.is_dir()):
        for doc in folder.iterdir():
            if doc.name != "00000000.gob":
                doc.unlink()
    env = {**os.environ, "GUARDIAN_STATE_DIR": str(state), "GUARDIAN_TEST_SLOW_IO": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "restore", "--store", str(store), "--at", "latest",
                             "--force"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(leftovers(store)) >= 10 or proc.poll() is not None, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    if not leftovers(store):
        pytest.skip("the restore finished before it could be killed")


@pytest.mark.parametrize("command", [["snapshot"], ["check", "--repair"], ["exec", "--", "true"]])
def test_check_reports_leftovers_and_the_next_write_cleans_them(plain_store, state_dir, cli, command):
    take_snapshot(StatePaths.for_store(plain_store, state_dir), clock=Clock())
    killed_restore(plain_store, state_dir)
    found = len(leftovers(plain_store))
    check = cli("check", "--store", str(plain_store))
    assert check.returncode in (1, 3) and "guardian_leftover" in check.stdout_text
    assert "no problems found" not in check.stdout_text
    done = cli(*command[:1], "--store", str(plain_store), *command[1:], timeout=120)
    assert done.returncode in (0, 1, 3), done.stderr_text
    assert leftovers(plain_store) == [], f"{command}: {found} leftovers were kept"
