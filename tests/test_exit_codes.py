"""README's exit-code table, walked: every row triggered for real by a command, and the rule behind
it (2: change the request; 5: started and could not finish) held where it used to be broken
(refusals that exited 5, a tampered replica that exited 1, a missing output folder that was an
internal error)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from guardian import cli as guardian_cli
from guardian.errors import ExitCode
from guardian.local.lock import sidecar_lock
from guardian.local.paths import StatePaths
from guardian.local.quarantine import Quarantine
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(900)   # real CLI processes, one sidecar: a deadline for a hang

CASES: list = []


def case(code: ExitCode):
    """Register ``function(setup) -> (exit code, stderr)`` as a trigger of ``code``'s row."""
    def register(function):
        CASES.append(pytest.param(code, function, id=f"{int(code)}-{function.__name__}"))
        return function
    return register


class Setup:
    """What a case gets: the real CLI with this test's state dir, a copy of the plain store, a folder."""

    def __init__(self, cli, store: Path, tmp: Path, state: Path, tmpfs) -> None:
        self.cli, self.store, self.tmp, self.state, self.tmpfs = cli, store, tmp, state, tmpfs

    def run(self, *argv, **kwargs):
        proc = self.cli(*argv, "--store", str(self.store), **kwargs)
        return proc.returncode, proc.stderr_text

    def snapshot(self) -> None:
        self.cli("snapshot", "--store", str(self.store), check=True)

    def damage_a_document(self) -> Path:
        doc = next(p for p in sorted((self.store / "40917930").iterdir()) if not p.name.startswith("00000000"))
        doc.write_bytes(b"")
        return doc


@case(ExitCode.OK)
def healthy_check(s):
    return s.run("check")


@case(ExitCode.WARNINGS)
def snapshot_of_no_store_yet(s):
    proc = s.cli("snapshot", "--store", str(s.tmp / "not-yet"))
    return proc.returncode, proc.stderr_text


@case(ExitCode.USAGE)
def unknown_flag(s):
    return s.run("check", "--bogus")


@case(ExitCode.USAGE)
def at_before_the_first_snapshot(s):
    s.snapshot()
    return s.run("restore", "--at", "2001-01-01T00:00:00Z", "--dry-run")


@case(ExitCode.USAGE)
def at_in_the_future(s):
    s.snapshot()
    return s.run("restore", "--at", "2999-01-01T00:00:00Z", "--dry-run")


@case(ExitCode.USAGE)
def target_not_empty(s):
    s.snapshot()
    busy = s.tmp / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    return s.run("restore", "--at", "latest", "--target", str(busy))


@case(ExitCode.USAGE)
def changed_store_without_force(s):
    s.snapshot()
    s.damage_a_document()
    return s.run("restore", "--at", "latest")   # stdin is not a terminal: nobody to ask


@case(ExitCode.USAGE)
def quarantine_restore_of_a_damaged_file(s):
    doc = s.damage_a_document()
    paths = StatePaths.for_store(s.store, s.state)
    entry = Quarantine(paths).put(s.store, f"40917930/{doc.name}", reason="test")
    return s.run("quarantine", "restore", entry.id)


@case(ExitCode.USAGE)
def snapshot_of_a_file_as_store(s):
    afile = s.tmp / "hostname"
    afile.write_text("box\n")
    proc = s.cli("snapshot", "--store", str(afile))
    return proc.returncode, proc.stderr_text


@case(ExitCode.USAGE)
def export_into_a_missing_folder(s):
    return s.run("export", "-o", str(s.tmp / "no-such-folder" / "out.jsonl"))


@case(ExitCode.UNLOADABLE)
def check_of_an_unloadable_store(s):
    s.damage_a_document()
    return s.run("check")


@case(ExitCode.CHILD_FATAL)
def status_of_a_fatal_child(s):
    env = {**os.environ, "GUARDIAN_MAX_FAILURES": "1", "GUARDIAN_BACKOFF_INITIAL": "0.05"}
    log = open(s.tmp / "sidecar.log", "wb")
    sidecar = subprocess.Popen([sys.executable, "-m", "guardian", "run", "--store", str(s.store), "--port", "0",
                                "--", sys.executable, "-c", "raise SystemExit(3)"],
                               env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        status = wait_for(lambda: (p := s.cli("status", "--store", str(s.store), "--json")).returncode == 4 and p,
                          timeout=180, what="status to report the FATAL child")
        return status.returncode, status.stderr_text
    finally:
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=60)


@case(ExitCode.FAILED)
def restore_of_a_damaged_snapshot(s):
    s.snapshot()
    paths = StatePaths.for_store(s.store, s.state)
    s.damage_a_document()
    for pack in (paths.snapshots / "packs").glob("*.pack"):   # the copies a restore reads: lost
        pack.unlink()
    return s.run("restore", "--at", "latest", "--force")


@case(ExitCode.FAILED)
def export_onto_a_full_disk(s):
    disk = s.tmpfs("small", "16k")
    return s.run("export", "-o", str(disk / "out.jsonl"))


@case(ExitCode.SUPERVISOR)
def restart_without_a_sidecar(s):
    return s.run("restart")


@case(ExitCode.LOCKED)
def run_beside_another_sidecar(s):
    with sidecar_lock(s.store):
        return s.run("run", "--port", "0", timeout=120)


@case(ExitCode.REPLICA)
def verify_of_a_tampered_replica(s):
    s.snapshot()
    replica = s.tmp / "backup" / "guardian"
    (s.tmp / "backup").mkdir()
    env = {"XDG_CONFIG_HOME": str(s.tmp / "config-home"), "GUARDIAN_REPLICA_PASSPHRASE": ""}
    s.cli("replicate", "--store", str(s.store), "--to", f"file://{replica}", env=env, check=True)
    victim = max((p for p in (replica / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    return s.run("verify", "--from", f"file://{replica}", env=env)


@case(ExitCode.STATE_DIR)
def snapshot_with_a_state_dir_under_a_file(s):
    afile = s.tmp / "a-file"
    afile.write_text("x")
    return s.run("snapshot", env={"GUARDIAN_STATE_DIR": str(afile / "state")})


@case(ExitCode.INTERNAL)
def a_bug(s):
    """A command that raises what it should not (monkeypatched here: guardian has no known bug to call)."""
    import contextlib
    import io

    from guardian.commands import check_cmd

    def broken(args, ctx):
        raise ZeroDivisionError("a bug")

    original, check_cmd.run = check_cmd.run, broken
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = guardian_cli.main(["check", "--store", str(s.store)])
    finally:
        check_cmd.run = original
    return code, err.getvalue()


@case(ExitCode.NOT_RUNNABLE)
def exec_of_a_missing_command(s):
    return s.run("exec", "--", str(s.tmp / "no-such-program"))


@case(ExitCode.NOT_RUNNABLE)
def install_with_a_child_that_is_not_found(s):
    home = s.tmp / "home"
    home.mkdir()
    return s.run("install", "--dry-run", "--", "no-such-contextd", env={"HOME": str(home), "GUARDIAN_STATE_DIR": ""})


@case(ExitCode.INTERRUPTED)
def ctrl_c_at_the_restore_question(s):
    """restore asks on a terminal before it replaces files; Ctrl-C there is 130."""
    s.snapshot()
    s.damage_a_document()
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "restore", "--at", "latest", "--store", str(s.store)],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = bytearray()

    def asked() -> bool:
        if select.select([master], [], [], 0.2)[0]:
            try:
                seen.extend(os.read(master, 4096))
            except OSError:
                pass
        return b"[y/N]" in seen

    try:
        wait_for(lambda: asked() or proc.poll() is not None, timeout=120, what="the restore question")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen.extend(chunk)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, seen.decode("utf-8", "replace").split("[y/N]")[-1]


def test_every_code_has_a_row_trigger():
    assert {param.values[0] for param in CASES} == set(ExitCode)


@pytest.mark.parametrize("code,trigger", CASES)
def test_each_row_of_the_table(code, trigger, cli, plain_store, tmp_path, state_dir, tmpfs, monkeypatch):
    monkeypatch.setenv("GUARDIAN_LOCK_DIR", str(tmp_path / "locks"))
    (tmp_path / "locks").mkdir(mode=0o700)
    got, stderr = trigger(Setup(cli, plain_store, tmp_path, state_dir, tmpfs))
    assert got == code, stderr
    assert "Traceback" not in stderr
    if code in (ExitCode.USAGE, ExitCode.FAILED, ExitCode.REPLICA, ExitCode.STATE_DIR) and stderr.strip() \
            and "usage:" not in stderr:   # an error (not a report on stdout, as verify's): one line
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "internal error" not in lines[0], stderr
