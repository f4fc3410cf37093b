"""Fuzz: every kind of directory entry x every guardian command that touches the store, as real processes.

For each (entry kind, command) a fresh store (with a snapshot taken before the entry appeared) gets the
entry, then the real CLI runs with a timeout: nothing may hang, nothing outside the store may change
(symlink targets live in a folder beside it), the exit code must be one of README's, and an error must
be one line, never a traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.errors import ExitCode
from guardian.local.paths import StatePaths
from guardian.snapshots.take import take_snapshot
from tests.conftest import STORE_PLAIN, copy_store, run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.slow   # 12 kinds x 10 commands, each a real process

README_EXIT_CODES = {int(code) for code in ExitCode} - {int(ExitCode.INTERNAL)}   # an internal error is a bug
CALL_TIMEOUT = 90
DOC = "40917930/01e48869.gob"
KINDS = ["fifo", "socket", "zero_device", "block_device", "dangling", "loop", "symlink_outside_file",
         "symlink_outside_folder", "folder", "collection_symlink", "collection_fifo", "huge_sparse"]
COMMANDS = [
    ["check"], ["check", "--repair"], ["check", "--repair", "--dry-run"], ["export"],
    ["snapshot"], ["restore", "--at", "latest", "--force"], ["verify", "--deep"],
    ["query", "--collection", "webapp_memories", "--like", "754cc110-4d8c-46e9-9b36-e3b0827ea2e1", "-k", "2"],
    ["exec", "--", sys.executable, "-c", "pass"], ["quarantine", "list"],
]


def bind_socket(path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(path.name)
    finally:
        os.chdir(cwd)


def make(store: Path, outside: Path, kind: str) -> None:
    doc = store / DOC
    folder = store / "40917930"
    if kind in ("collection_symlink", "collection_fifo"):
        os.rename(folder, outside / "real-collection")
        if kind == "collection_symlink":
            folder.symlink_to(outside / "real-collection")
        else:
            os.mkfifo(folder)
        return
    os.rename(doc, outside / "the-document.gob")
    if kind == "fifo":
        os.mkfifo(doc)
    elif kind == "socket":
        bind_socket(doc)
    elif kind in ("zero_device", "block_device"):
        if os.geteuid() != 0:
            pytest.skip("device nodes need root")
        if kind == "zero_device":
            os.mknod(doc, stat.S_IFCHR | 0o600, os.makedev(1, 5))   # /dev/zero: an endless read
        else:
            os.mknod(doc, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    elif kind == "dangling":
        doc.symlink_to(outside / "nothing")
    elif kind == "loop":
        doc.symlink_to(doc.name)
    elif kind == "symlink_outside_file":
        doc.symlink_to(outside / "the-document.gob")
    elif kind == "symlink_outside_folder":
        doc.symlink_to(outside)
    elif kind == "folder":
        doc.mkdir()
    elif kind == "huge_sparse":
        with open(doc, "wb") as handle:
            handle.truncate(4 << 30)


def outside_state(outside: Path) -> dict:
    """Everything under ``outside``: type, size, mtime and bytes of regular files (never opens others)."""
    found = {}
    for path in sorted(outside.rglob("*")):
        info = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
        found[str(path.relative_to(outside))] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns, data)
    return found


def store_with(tmp_path: Path, kind: str, n: int) -> tuple[Path, Path, Path]:
    base = tmp_path / f"c{n}"
    store = copy_store(STORE_PLAIN, base / "store")
    outside = base / "outside"
    outside.mkdir()
    state = base / "state"
    take_snapshot(StatePaths.for_store(store, state))
    make(store, outside, kind)
    return store, outside, state


@pytest.mark.parametrize("kind", KINDS)
def test_every_command_against_the_entry(tmp_path, kind):
    for n, command in enumerate(COMMANDS):
        store, outside, state = store_with(tmp_path, kind, n)
        before = outside_state(outside)
        args = [command[0], "--store", str(store), *command[1:]]
        try:
            proc = run_cli(*args, env={"GUARDIAN_STATE_DIR": str(state), "GUARDIAN_CONFIG": str(tmp_path / "none")},
                           timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{kind}: guardian {' '.join(command)} hung (> {CALL_TIMEOUT} s)")
        where = f"{kind}: guardian {' '.join(command)} exited {proc.returncode}: {proc.stderr_text[-600:]}"
        assert proc.returncode in README_EXIT_CODES, where
        assert "Traceback" not in proc.stderr_text, where
        assert outside_state(outside) == before, f"{where}: something outside the store changed"


def test_run_with_a_fifo_in_the_store_starts_its_child(tmp_path):
    """`guardian run` repairs before launch (the FIFO goes to quarantine unopened) and starts the child."""
    store, outside, state = store_with(tmp_path, "fifo", 0)
    marker = tmp_path / "child-started"
    env = {**os.environ, "GUARDIAN_STATE_DIR": str(state), "GUARDIAN_CONFIG": str(tmp_path / "none")}
    child = [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(120)"]
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "run", "--store", str(store), "--port", "0",
                             "--", *child], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(marker.exists, timeout=60), "the child never started (pre-flight hung?)"
        assert not os.path.lexists(store / DOC) or stat.S_ISREG(os.lstat(store / DOC).st_mode)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code in README_EXIT_CODES | {-signal.SIGTERM, 128 + signal.SIGTERM}
    assert b"Traceback" not in proc.stderr.read()
