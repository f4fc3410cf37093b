import os
import stat

from guardian.local.paths import StatePaths


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
    from guardian.local.paths import tighten_state_dirs

    paths = StatePaths.for_store(plain_store, state).ensure()
    assert mode_of(state) == 0o755
    warnings = tighten_state_dirs(paths.root)
    assert len(warnings) == 1 and "chmod 700" in warnings[0] and str(state) in warnings[0]
    assert mode_of(paths.root) == 0o700
