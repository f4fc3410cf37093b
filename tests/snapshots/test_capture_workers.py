"""A large capture shared with worker processes: the same snapshot as one thread's, packs handed over
durable, and no worker left behind when the taking process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from guardian.local.paths import StatePaths
from guardian.local.procpool import new_pool
from guardian.snapshots import capture
from guardian.snapshots.capture import HASH, CaptureJob, capture_in_worker
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import InProcess, Restore
from guardian.snapshots.take import list_store, take_snapshot
from tests.conftest import CHROMEMH, ROOT, chromem_load
from tests.snapshots.conftest import tree_bytes
from tests.waiting import wait_for


def rows_of(paths: StatePaths, snapshot_id: str) -> list[list]:
    _, rows = Repository(paths.snapshots).read_manifest_rows(snapshot_id)
    return [row[:6] for row in rows]   # flags aside: "racy" depends on when each take ran


def test_a_capture_shared_with_worker_processes_is_the_capture_of_one_thread(any_store, tmp_path, monkeypatch):
    monkeypatch.setattr(capture, "usable_cpus", lambda: 3)   # workers even on a one-core machine
    one = StatePaths.for_store(any_store, tmp_path / "one")
    alone = take_snapshot(one)
    monkeypatch.setenv("GUARDIAN_TEST_PARALLEL_CHUNK", "5")   # the taker waits for its workers: they get chunks
    shared = StatePaths.for_store(any_store, tmp_path / "shared")
    together = take_snapshot(shared)
    assert len(Repository(shared.snapshots).read_header(together.id).packs) >= 2   # a worker's and the taker's
    assert rows_of(shared, together.id) == rows_of(one, alone.id)
    assert together.files == alone.files and together.read_files == alone.read_files
    assert [c["name"] for c in together.collections] == [c["name"] for c in alone.collections]
    target = tmp_path / "restored"
    target.mkdir()
    Restore.of_store(StatePaths(store=target, root=shared.root)).run(InProcess(check_load=False))
    assert tree_bytes(target) == tree_bytes(any_store)
    if CHROMEMH.is_file():   # the real loader, where it is here
        compress = any(rel.endswith(".gob.gz") for rel in tree_bytes(target))
        assert chromem_load(CHROMEMH, target, compress)["ok"]


def test_a_worker_process_hands_back_durable_packs_the_take_adopts(plain_store, tmp_path):
    repo = Repository(tmp_path / "repo").ensure()
    chunk = sorted(list_store(plain_store).files)[:10]
    job = CaptureJob(str(repo.root), str(plain_store), time.time_ns(), 0, "take-1")
    with new_pool(1) as pool:
        result = pool.submit(capture_in_worker, job, chunk, {}).result(timeout=120)
    assert [row[0] for row in result.rows] == chunk and all(row[HASH] for row in result.rows)
    assert result.read_files == 10 and result.new_blobs == 10 and result.packs
    assert all(repo.pack_path(pack.pack_id).is_file() for pack in result.packs)
    repo.adopt(result.packs)
    assert sorted(repo.new_packs()) == sorted(pack.pack_id for pack in result.packs)
    for row in result.rows:
        assert repo.read_blob(row[HASH]) == (plain_store / row[0]).read_bytes()


PARENT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    from guardian.local.procpool import new_pool
    from guardian.local.procpool import warm_up

    def main():
        pool = new_pool(1)
        pool.submit(warm_up).result()
        print(os.getpid(), flush=True)
        time.sleep(600)

    if __name__ == "__main__":
        main()
""")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_and_outlive_helpers(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``, then wait for every process it had started (forkserver, workers) to exit."""
    helpers = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    wait_for(lambda: all(gone(p.pid) for p in helpers), timeout=60, what="the workers and the forkserver to exit")


def test_a_worker_exits_when_the_process_it_works_for_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT.format(root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert int(proc.stdout.readline()) == proc.pid
        helpers = psutil.Process(proc.pid).children(recursive=True)
        assert [p for p in helpers if p.ppid() != proc.pid], "the pool started no worker"   # the forkserver's
        kill_and_outlive_helpers(proc)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_take_killed_while_workers_capture_leaves_old_snapshots_and_no_process(cli, plain_store, state_dir,
                                                                                  tmp_path):
    env = {"GUARDIAN_TEST_PARALLEL_CHUNK": "3", "GUARDIAN_TEST_SLOW_IO": "0.1"}   # ~10 s for the taker alone
    proc = subprocess.Popen([sys.executable, "-m", "guardian", "snapshot", "--store", str(plain_store)],
                            env={**os.environ, "GUARDIAN_STATE_DIR": str(state_dir), **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    paths = StatePaths.for_store(plain_store, state_dir)
    packs = paths.snapshots / "packs"
    try:
        # a pack before the take commits: a worker finished a chunk (the taker's own pack waits for the end)
        def packed_or_ended():
            return proc.poll() is not None or (packs.is_dir() and any(n.endswith(".pack") for n in os.listdir(packs)))
        wait_for(packed_or_ended, timeout=120, what="a worker's first pack")
        assert proc.poll() is None, "the take ended before any worker handed in a chunk"
        kill_and_outlive_helpers(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert Repository(paths.snapshots).list_ids() == []   # killed before its manifest: no snapshot
    assert cli("snapshot", "--store", str(plain_store)).returncode == 0
    assert cli("verify", "--store", str(plain_store)).returncode == 0
    target = tmp_path / "restored"
    target.mkdir()
    Restore.of_store(StatePaths(store=target, root=paths.root)).run(InProcess(check_load=False))
    assert tree_bytes(target) == tree_bytes(plain_store)
    assert not [n for n in os.listdir(packs) if not n.endswith(".pack")], "temp packs left behind"


@pytest.mark.parametrize("chunk", ["0", "x", ""])
def test_the_test_hook_is_off_unless_set_to_a_chunk_size(monkeypatch, chunk):
    monkeypatch.setenv("GUARDIAN_TEST_PARALLEL_CHUNK", chunk)
    assert capture.parallel_sizes() == (capture.PARALLEL_MIN_FILES, capture.CHUNK_FILES, False)
