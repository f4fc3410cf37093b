"""A snapshot that runs out of space leaves no partial blob or manifest and keeps older snapshots."""

import json
import os
import resource
import signal
import subprocess
import sys

import pytest

from guardian.errors import SnapshotError
from guardian.local.fsutil import TEMP_PREFIX
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import Restore
from guardian.snapshots.take import take_snapshot
from guardian.snapshots.verify import verify_repository
from guardian.local.paths import StatePaths

from tests.snapshots.conftest import age_files, tree_bytes


def assert_repository_clean(repo: Repository, expected_ids: list[str]) -> None:
    assert repo.list_ids() == expected_ids
    for digest in repo.list_blobs():
        repo.read_blob(digest)  # raises if any blob is partial
    leftovers = [p for p in repo.root.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []
    assert verify_repository(repo).ok


@pytest.fixture
def small_fs(tmpfs):
    return tmpfs("small", "640k")


def test_no_space_on_a_small_filesystem(plain_store, small_fs, cli, monkeypatch):
    age_files(plain_store)
    monkeypatch.setenv("GUARDIAN_STATE_DIR", str(small_fs))
    paths = StatePaths.for_store(plain_store, small_fs)
    original = tree_bytes(plain_store)
    first = take_snapshot(paths)
    (plain_store / "40917930" / "big.bin").write_bytes(os.urandom(1 << 20))
    with pytest.raises(SnapshotError, match="No space left"):
        take_snapshot(paths)
    repo = Repository(paths.snapshots)
    assert_repository_clean(repo, [first.id])
    out = cli("snapshot", "--store", str(plain_store), env={"GUARDIAN_STATE_DIR": str(small_fs)})
    assert out.returncode == 5 and out.stderr_text.count("\n") == 1 and "No space left" in out.stderr_text
    assert_repository_clean(repo, [first.id])
    (plain_store / "40917930" / "big.bin").unlink()
    next(plain_store.glob("*/1*.gob")).write_bytes(b"damage")
    Restore.of_store(paths).run()
    assert tree_bytes(plain_store) == original


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_writes_failing_midway_rlimit(plain_store, state_dir, cli):
    age_files(plain_store)
    first = cli("snapshot", "--store", str(plain_store), "--json", check=True)
    (plain_store / "40917930" / "big.bin").write_bytes(os.urandom(256 * 1024))
    (plain_store / "40917930" / "mid.gob").write_bytes(os.urandom(10 * 1024))
    repo = Repository(StatePaths.for_store(plain_store, state_dir).snapshots)
    blobs_before = repo.list_blobs()
    env = dict(os.environ, GUARDIAN_STATE_DIR=str(state_dir))
    proc = subprocess.run([sys.executable, "-m", "guardian", "snapshot", "--store", str(plain_store)],
                          env=env, capture_output=True, preexec_fn=_limit_file_size, timeout=60)
    stderr = proc.stderr.decode()
    assert proc.returncode == 5 and stderr.count("\n") == 1 and "snapshot failed" in stderr
    assert_repository_clean(repo, [json.loads(first.stdout_text)["id"]])
    assert repo.list_blobs() == blobs_before  # blobs this failed snapshot wrote were removed
