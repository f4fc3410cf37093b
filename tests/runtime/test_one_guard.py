"""One guard per store (whatever the state dir) and a child that never outlives guardian: real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from guardian.local.paths import StatePaths
from guardian.runtime.supervisor.child_record import process_start_ticks, write_record
from tests.conftest import run_cli
from tests.waiting import wait_until

CHILD = """
import os, sys, time
open(sys.argv[1], "a").write(f"{os.getpid()}\\n")
time.sleep(3600)
"""


def start_run(store, state_dir, log, *cmd):
    env = {**os.environ, "GUARDIAN_STATE_DIR": str(state_dir), "GUARDIAN_CONFIG": "/nonexistent.toml"}
    args = [sys.executable, "-m", "guardian", "run", "--store", str(store), "--port", "0"]
    if cmd:
        args += ["--", *cmd]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def running(pid: int) -> bool:
    return process_start_ticks(pid) is not None  # None: gone or a zombie


def read_pids(path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_second_run_with_another_state_dir_is_refused(plain_store, tmp_path):
    first = start_run(plain_store, tmp_path / "state-a", tmp_path / "a.log")
    try:
        holder = StatePaths.for_store(plain_store, tmp_path / "state-a").sidecar_lock_file
        assert wait_until(lambda: holder.exists() and str(first.pid) in holder.read_text(), timeout=60)
        second = run_cli("run", "--store", str(plain_store), "--port", "0",
                         env={"GUARDIAN_STATE_DIR": str(tmp_path / "state-b")}, timeout=120)
        assert second.returncode == 7, second.stderr_text  # ExitCode.LOCKED
        assert f"pid {first.pid}" in second.stderr_text
        assert "kill" in second.stderr_text  # how to stop it
        assert "Traceback" not in second.stderr_text
        assert first.poll() is None
    finally:
        stop(first)


def test_kill_9_of_guardian_leaves_no_child(plain_store, tmp_path):
    (tmp_path / "child.py").write_text(CHILD)
    pids = tmp_path / "pids"
    guard = start_run(plain_store, tmp_path / "state", tmp_path / "run.log", sys.executable,
                      str(tmp_path / "child.py"), str(pids))
    try:
        assert wait_until(lambda: read_pids(pids), timeout=60)
        child = read_pids(pids)[0]
        assert running(child)
        guard.kill()
        guard.wait()
        assert wait_until(lambda: not running(child), timeout=30), "the child outlived guardian"
    finally:
        stop(guard)


def test_a_crashed_predecessors_child_is_stopped_before_a_new_one_starts(plain_store, tmp_path):
    # A child guardian recorded but that survived its guardian (e.g. where PDEATHSIG does not exist).
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], process_group=0)
    paths = StatePaths.for_store(plain_store, tmp_path / "state-old")
    write_record(paths.child_record_file, orphan.pid, ["contextd", "--mcp"])
    (tmp_path / "child.py").write_text(CHILD)
    pids = tmp_path / "pids"
    guard = start_run(plain_store, tmp_path / "state-new", tmp_path / "run.log", sys.executable,
                      str(tmp_path / "child.py"), str(pids))
    try:
        assert wait_until(lambda: orphan.poll() is not None, timeout=60), "the predecessor's child still runs"
        assert wait_until(lambda: read_pids(pids), timeout=60)
        assert b"predecessor_child_stopped" in (tmp_path / "run.log").read_bytes()
    finally:
        orphan.kill()
        orphan.wait()
        stop(guard)


def test_a_reused_pid_is_never_signalled(tmp_path, plain_store):
    from guardian.runtime.supervisor.child_record import stop_recorded_child

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], process_group=0)
    try:
        record = tmp_path / "child.json"
        record.write_text(f'{{"pid": {bystander.pid}, "start_ticks": 1, "cmd": ["x"]}}')  # another process's pid
        assert stop_recorded_child(record, timeout=1) is None
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
