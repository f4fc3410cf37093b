"""Stopping a real child's process group: SIGTERM, SIGKILL when ignored, and nothing left behind."""

from __future__ import annotations

import sys
import time

from guardian.logs import get_logger
from guardian.runtime.supervisor.process import group_has_live_members, spawn_process
from guardian.runtime.supervisor.stopping import GroupStopper
from tests.waiting import wait_for

IGNORES_TERM = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True);"
                " time.sleep(600)")


def stopper(stop_timeout: float, hurry=lambda: False) -> GroupStopper:
    return GroupStopper(get_logger("test"), time.monotonic, time.sleep, stop_timeout, hurry)


def started(code: str):
    import subprocess

    process = spawn_process([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.popen.stdout.readline() == b"ready\n"   # its handlers are in place
    return process


def test_sigterm_is_enough_for_a_child_that_listens():
    process = started("import time; print('ready', flush=True); time.sleep(600)")
    assert stopper(60).terminate(process, 15) == -15
    assert not group_has_live_members(process.pgid)


def test_a_child_ignoring_sigterm_is_killed_after_the_stop_timeout():
    process = started(IGNORES_TERM)
    assert stopper(0.5).terminate(process, 15) == -9
    assert not group_has_live_members(process.pgid)


def test_hurry_kills_at_once_whatever_the_stop_timeout():
    process = started(IGNORES_TERM)
    asked = []
    # a second stop signal arrives while it waits (hurry is True once, as the supervisor's inbox gives it)
    hurry = stopper(600, hurry=lambda: asked.append(1) or len(asked) == 3)
    assert hurry.terminate(process, 15) == -9 and len(asked) >= 3


def test_clean_up_stops_what_a_dead_leader_left_in_its_group():
    code = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
            "print('ready', flush=True)")
    process = started(code)
    wait_for(lambda: process.poll() is not None, what="the leader to exit")
    assert group_has_live_members(process.pgid)            # its grandchild is still in the group
    stopper(60).clean_up(process)
    wait_for(lambda: not group_has_live_members(process.pgid), what="the group to be gone")
