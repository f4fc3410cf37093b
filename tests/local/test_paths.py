"""guardian.local.paths: one state folder per store (never inside it), private, and clear errors."""

import json
import os
import stat

import pytest

from guardian.errors import StateDirError, StoreError
from guardian.local.paths import StatePaths, state_root, store_key, tighten_state_dirs


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_guardian_only_state_dir_at_0755_is_tightened(tmp_path, plain_store):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    paths = StatePaths.for_store(plain_store, state).ensure()
    assert mode_of(state) == 0o700
    assert mode_of(paths.root) == 0o700 and mode_of(paths.root.parent) == 0o700


def test_a_shared_folder_passed_as_state_dir_is_warned_about_not_changed(tmp_path, plain_store):
    state = tmp_path / "mine"
    state.mkdir()
    os.chmod(state, 0o755)
    (state / "my-notes.txt").write_text("someone's own file")
    paths = StatePaths.for_store(plain_store, state).ensure()
    assert mode_of(state) == 0o755
    warnings = tighten_state_dirs(paths.root)
    assert len(warnings) == 1 and "chmod 700" in warnings[0] and str(state) in warnings[0]
    assert mode_of(paths.root) == 0o700


def test_state_root_precedence_flag_then_env_then_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARDIAN_STATE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_root(tmp_path / "flag") == tmp_path / "flag"
    assert state_root() == tmp_path / "env"
    monkeypatch.delenv("GUARDIAN_STATE_DIR")
    assert state_root() == tmp_path / "xdg" / "guardian"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_root() == tmp_path / "home" / ".local" / "state" / "guardian"


def test_one_folder_per_store_whatever_path_names_it(tmp_path, plain_store):
    alias = tmp_path / "alias"
    alias.symlink_to(plain_store)
    direct = StatePaths.for_store(plain_store, tmp_path / "state")
    via_link = StatePaths.for_store(alias, tmp_path / "state")
    assert direct == via_link and direct.store == plain_store.resolve()
    assert direct.root == tmp_path / "state" / "stores" / store_key(plain_store) and len(store_key(alias)) == 16
    (tmp_path / "another-store").mkdir()
    other = StatePaths.for_store(tmp_path / "another-store", tmp_path / "state")
    assert other.root != direct.root
    assert {direct.snapshots.name, direct.quarantine.name, direct.cache.name, direct.catalog_file.name,
            direct.status_file.name} == {"snapshots", "quarantine", "cache", "catalog.json", "status.json"}
    assert not direct.lock_file.is_relative_to(direct.root)  # keyed on the store, not on this state dir


@pytest.mark.parametrize("where", ["inside", "via_symlink"])
def test_a_state_dir_inside_the_store_is_refused(tmp_path, plain_store, where):
    state = plain_store / ".guardian"
    if where == "via_symlink":
        state.mkdir()
        state = tmp_path / "looks-outside"
        state.symlink_to(plain_store / ".guardian")
    with pytest.raises(StoreError) as exc:
        StatePaths.for_store(plain_store, state)
    assert "inside the store" in exc.value.message and "GUARDIAN_STATE_DIR" in exc.value.hint


def test_ensure_records_the_store_once_and_is_idempotent(tmp_path, plain_store):
    paths = StatePaths.for_store(plain_store, tmp_path / "state").ensure()
    marker = paths.root / "store.json"
    assert json.loads(marker.read_text()) == {"store": str(plain_store.resolve())}
    before = marker.stat().st_mtime_ns
    assert paths.ensure() is paths and marker.stat().st_mtime_ns == before


def test_an_unwritable_state_dir_is_one_error_naming_the_path(tmp_path, plain_store):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state dir should be")
    paths = StatePaths.for_store(plain_store, blocker)
    with pytest.raises(StateDirError) as exc:
        paths.ensure()
    assert str(blocker) in exc.value.message and "\n" not in exc.value.message
    assert isinstance(paths.ensure_if_possible(), StateDirError)


def test_owns_says_which_paths_are_the_state_dirs(tmp_path, plain_store):
    paths = StatePaths.for_store(plain_store, tmp_path / "state")
    assert paths.owns(paths.snapshots / "x") and paths.owns(paths.root)
    assert not paths.owns(plain_store / "x") and not paths.owns(None) and not paths.owns(tmp_path / "state2")
