"""The store locks are keyed on the store (device + inode), not on the state dir."""

from __future__ import annotations

import os

import pytest

from guardian.errors import LockError
from guardian.local.lock import read_holder, sidecar_lock, store_identity, store_lock
from guardian.local.paths import StatePaths


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    return root


def test_two_state_dirs_share_the_writer_lock(tmp_path, store):
    one = StatePaths.for_store(store, tmp_path / "state-a")
    two = StatePaths.for_store(store, tmp_path / "state-b")
    assert one.root != two.root
    assert one.lock_file == two.lock_file
    assert one.sidecar_lock_file == two.sidecar_lock_file
    with store_lock(one.lock_file, timeout=5):
        with pytest.raises(LockError) as caught:
            with store_lock(two.lock_file, timeout=0.2):
                pass
    assert f"pid {os.getpid()}" in caught.value.message
    with store_lock(two.lock_file, timeout=5):  # free again once released
        pass


def test_a_symlink_to_the_store_is_the_same_store(tmp_path, store):
    link = tmp_path / "link"
    link.symlink_to(store)
    assert store_identity(link) == store_identity(store)
    other = tmp_path / "other"
    other.mkdir()
    assert store_identity(other) != store_identity(store)


def test_lock_files_live_outside_store_and_state_dir(tmp_path, store):
    paths = StatePaths.for_store(store, tmp_path / "state")
    assert store not in paths.lock_file.parents
    assert paths.root not in paths.lock_file.parents


def test_second_sidecar_is_refused_with_the_first_ones_pid(tmp_path, store):
    with sidecar_lock(store, tmp_path / "state-a"):
        assert read_holder(StatePaths.for_store(store, tmp_path / "x").sidecar_lock_file)["pid"] == os.getpid()
        with pytest.raises(LockError) as caught:
            with sidecar_lock(store, tmp_path / "state-b"):
                pass
    assert f"pid {os.getpid()}" in caught.value.message
    assert "state-a" in caught.value.message
    assert "kill" in caught.value.hint
    with sidecar_lock(store, tmp_path / "state-b"):
        pass


def test_lock_dir_owned_by_someone_else_is_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    if os.getuid() == 0:
        os.chown(foreign, 65534, 65534)
    elif os.lstat("/tmp").st_uid != os.getuid():
        foreign = __import__("pathlib").Path("/tmp")  # owned by root
    else:
        pytest.skip("no folder owned by someone else")
    with pytest.raises(LockError) as caught:
        with store_lock(foreign / "x.lock", timeout=0.1):
            pass
    assert "GUARDIAN_LOCK_DIR" in caught.value.hint
