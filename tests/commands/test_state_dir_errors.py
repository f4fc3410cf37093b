"""An unwritable or full state dir: one line naming the path; read-only commands still answer.

Root ignores permission bits, so a read-only tmpfs stands in for an unwritable folder there."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from guardian.errors import ExitCode

# (restore is not here: its lock lives beside the store's identity, not in the state dir, so with an
# empty read-only state dir it truly answers "no snapshots yet" before it needs to write anything)
WRITERS = (("snapshot",), ("check", "--repair"), ("run", "--port", "0"))
READERS = (("check",), ("status",), ("snapshots",), ("verify",), ("verify", "--deep"),
           ("query", "--collection", "checkpoints", "--like", "19d2b8c6-06bc-4021-8d45-936ca7fddd07"),
           ("export",))

# many real CLI processes per test: a deadline for a hang, not a speed goal (CI is a loaded 2-core box)
pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def read_only_dir(tmp_path, tmpfs):
    """A folder nobody may write: chmod for a normal user, a read-only tmpfs for root."""
    if os.geteuid() == 0:
        yield tmpfs("ro-state", "1m", read_only=True)
        return
    path = tmp_path / "ro-state"
    path.mkdir()
    path.chmod(0o555)
    yield path
    path.chmod(0o755)


@pytest.fixture
def full_dir(tmpfs):
    return tmpfs("full-state", "1m")


def _one_line(proc) -> str:
    lines = [line for line in proc.stderr_text.splitlines() if line.strip()]
    assert "internal error" not in proc.stderr_text and "Traceback" not in proc.stderr_text, proc.stderr_text
    return lines


@pytest.mark.parametrize("argv", WRITERS, ids=lambda a: " ".join(a))
def test_writers_name_the_unwritable_path_in_one_line(cli, plain_store, read_only_dir, argv):
    proc = cli(*argv, "--store", str(plain_store), env={"GUARDIAN_STATE_DIR": str(read_only_dir)}, timeout=60)
    lines = _one_line(proc)
    assert proc.returncode == ExitCode.STATE_DIR, proc.stderr_text
    assert lines[-1].startswith("error: ") and str(read_only_dir) in lines[-1]
    assert "still work" in lines[-1]  # and it says what keeps working


@pytest.mark.parametrize("argv", READERS, ids=lambda a: " ".join(a))
def test_readers_still_answer_with_a_note(cli, plain_store, read_only_dir, argv):
    proc = cli(*argv, "--store", str(plain_store), env={"GUARDIAN_STATE_DIR": str(read_only_dir)})
    _one_line(proc)
    assert proc.returncode in (0, 1), proc.stderr_text   # 1: status warns (no sidecar, no snapshot)
    if argv[0] in ("check", "status", "query") or argv == ("verify", "--deep"):
        assert f"note: guardian's state dir cannot be written: {read_only_dir}" in proc.stderr_text
    if argv[0] == "check":
        assert "no problems found" in proc.stdout_text


def fill(folder) -> None:
    """Fill the filesystem holding ``folder`` to the last byte (a filler file of the test's own)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_verify_deep_in_a_full_state_dir_names_the_path(cli, plain_store, full_dir):
    env = {"GUARDIAN_STATE_DIR": str(full_dir)}
    assert cli("snapshot", "--store", str(plain_store), env=env).returncode == 0
    fill(full_dir)
    plain = cli("verify", "--store", str(plain_store), env=env)
    assert plain.returncode == 0, plain.stderr_text       # reading needs no space
    proc = cli("verify", "--deep", "--store", str(plain_store), env=env)
    lines = _one_line(proc)
    assert proc.returncode == ExitCode.STATE_DIR, proc.stderr_text
    assert len(lines) == 1 and str(full_dir) in lines[0] and "No space left" in lines[0]
    assert "without --deep" in lines[0]
    assert not list(full_dir.rglob("verify-*"))          # the scratch copy was removed


@pytest.fixture
def snapshotted_read_only_state(cli, plain_store, tmpfs):
    """A state dir holding a snapshot of ``plain_store``, then made read-only (a remounted tmpfs),
    and a read-only lock folder: what a dry run or a search finds on a read-only home."""
    state, locks = tmpfs("ro-snap-state", "20m"), tmpfs("ro-locks", "1m", read_only=True)
    env = {"GUARDIAN_STATE_DIR": str(state)}
    cli("snapshot", "--store", str(plain_store), env=env, check=True)
    assert subprocess.run(["mount", "-o", "remount,ro", str(state)], capture_output=True).returncode == 0
    return {**env, "GUARDIAN_LOCK_DIR": str(locks)}


ON_A_READ_ONLY_STATE = (("restore", "--at", "latest", "--dry-run"),
                        ("restore", "--at", "latest", "--dry-run", "--json"),
                        ("restore", "--at", "latest", "--dry-run", "--collection", "checkpoints"),
                        ("snapshots",), ("verify",), ("status",), ("check",), ("export",),
                        ("quarantine", "list"),
                        ("query", "--collection", "checkpoints", "--like", "19d2b8c6-06bc-4021-8d45-936ca7fddd07"))


@pytest.mark.parametrize("argv", ON_A_READ_ONLY_STATE, ids=lambda a: " ".join(a))
def test_read_only_commands_answer_on_a_read_only_state_that_holds_snapshots(cli, plain_store,
                                                                             snapshotted_read_only_state, argv):
    proc = cli(*argv, "--store", str(plain_store), env=snapshotted_read_only_state)
    lines = _one_line(proc)
    assert proc.returncode in (0, 1), proc.stderr_text   # 1: status warns (no sidecar)
    assert not any(line.lstrip().startswith("{") for line in lines), proc.stderr_text   # no JSON log line
    notes = [line for line in lines if "from the store)" not in line]
    assert len(notes) <= 1, proc.stderr_text   # at most the note (besides export's and query's own counts)
    if argv[0] == "restore":
        assert proc.returncode == 0
        assert ("would restore" in proc.stdout_text) or json.loads(proc.stdout_text)["dry_run"] is True
    if argv[0] == "query":
        assert "19d2b8c6-06bc-4021-8d45-936ca7fddd07" in proc.stdout_text
    if argv[0] in ("query", "status", "check"):
        assert f"note: guardian's state dir cannot be written: {snapshotted_read_only_state['GUARDIAN_STATE_DIR']}" \
            in proc.stderr_text


def test_query_with_a_full_state_dir_says_so_in_one_line(cli, plain_store, full_dir):
    env = {"GUARDIAN_STATE_DIR": str(full_dir)}
    full_dir.chmod(0o700)
    cli("status", "--store", str(plain_store), env=env)   # the state folder exists: only the cache write fails
    fill(full_dir)
    proc = cli("query", "--collection", "checkpoints", "--like", "19d2b8c6-06bc-4021-8d45-936ca7fddd07",
               "--store", str(plain_store), env=env)
    lines = _one_line(proc)
    assert proc.returncode == 0, proc.stderr_text
    assert "19d2b8c6-06bc-4021-8d45-936ca7fddd07" in proc.stdout_text
    notes = [line for line in lines if "from the store)" not in line]
    assert len(notes) == 1 and notes[0].startswith("note: the index cache was not written"), proc.stderr_text
    assert "No space left" in notes[0]
