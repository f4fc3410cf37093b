"""Real processes: the child leads its own process group, which is signalled and reaped as a whole."""

import os
import signal
import subprocess
import sys

import psutil
import pytest

from guardian.runtime.supervisor.process import group_has_live_members, spawn_process
from tests.waiting import wait_until


def test_the_child_leads_a_new_process_group():
    proc = spawn_process([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
        assert proc.poll() is None and proc.group_alive()
    finally:
        assert proc.signal_group(signal.SIGKILL)
        proc.popen.wait(5)
    assert proc.poll() == -signal.SIGKILL
    assert wait_until(lambda: not proc.group_alive())
    assert proc.signal_group(signal.SIGTERM) is False  # group gone: reported, not raised


def test_signal_group_reaches_grandchildren(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time\n"
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
            f"open({str(pidfile)!r}, 'w').write(str(g.pid))\n"
            "time.sleep(30)\n")
    proc = spawn_process([sys.executable, "-c", code])
    assert wait_until(lambda: pidfile.exists() and pidfile.read_text())
    grandchild = psutil.Process(int(pidfile.read_text()))
    assert os.getpgid(grandchild.pid) == proc.pid
    proc.signal_group(signal.SIGKILL)
    proc.popen.wait(5)
    assert wait_until(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE)
    assert wait_until(lambda: not group_has_live_members(proc.pid))


def test_zombies_do_not_count_as_live_members():
    popen = subprocess.Popen([sys.executable, "-c", "pass"], process_group=0)
    assert wait_until(lambda: psutil.Process(popen.pid).status() == psutil.STATUS_ZOMBIE)
    assert not group_has_live_members(popen.pid)  # exited but not reaped yet
    popen.wait()


def test_a_missing_command_raises_oserror():
    with pytest.raises(FileNotFoundError):
        spawn_process(["/nonexistent/definitely-not-here"])
