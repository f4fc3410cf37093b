"""The fast whole-list file-list check accepts exactly what the per-entry checks accept."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian.errors import SnapshotError
from guardian.snapshots.manifest import FLAG_UNSTABLE, _checked_entries, _rows_look_valid, delta_rows, validated_rows

H = "ab" * 32
GOOD = ["c/x.gob", 3, 0o644, 5, 7, H, 0]

PATHS = st.one_of(st.sampled_from(["a/b.gob", "a", "...", ".h/x", "a/..b", "/a", "a//b", "a/", "", ".", "..",
                                   "a/./b", "a/../b", "a\\b", "a\x00b", "x/..", "./x", "a/b/c"]),
                  st.text(alphabet="ab./\\\x00", max_size=6), st.integers())
NUMS = st.one_of(st.integers(min_value=-2, max_value=0o10000), st.booleans(), st.floats(0, 3), st.none(),
                 st.just("1"))
HASHES = st.one_of(st.just(H), st.just("AB" * 32), st.just(H[:63]), st.just(H + "0"), st.just(H + "\n"),
                   st.none(), st.integers(), st.text(max_size=3))
ROWS = st.one_of(st.tuples(PATHS, NUMS, NUMS, NUMS, NUMS, HASHES, NUMS).map(list),
                 st.lists(st.integers(0, 3), max_size=8), st.just(list(GOOD)), st.text(max_size=7),
                 st.just(GOOD[:6]))


def per_entry_verdict(rows):
    try:
        return [e.row() for e in _checked_entries(rows, "t")]
    except SnapshotError:
        return None


@settings(max_examples=400, deadline=None)
@given(st.lists(ROWS, max_size=5))
def test_fast_check_never_accepts_what_the_entry_checks_refuse(rows):
    expected = per_entry_verdict(rows)
    if _rows_look_valid(rows):
        assert expected == rows
    try:
        got = validated_rows(rows, "t")
    except SnapshotError:
        got = None
    assert got == expected


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "", "a/b\x00", "..",
                                  "a\\..\\b", "a/", ".", "x/.", "x/.."])
def test_unsafe_path_anywhere_in_a_long_list_is_refused(path):
    rows = [[f"c/{i:04d}.gob", 1, 0o644, 1, i, H, 0] for i in range(50)]
    rows.insert(25, [path, 1, 0o644, 1, 99, H, 0])
    with pytest.raises(SnapshotError, match="entry 26 is invalid"):
        validated_rows(rows, "t")


def test_valid_list_is_returned_as_is_and_unstable_rows_may_lack_a_hash():
    rows = [list(GOOD), ["c/y.gob", 0, 0o600, 0, 0, None, FLAG_UNSTABLE], ["c/...", 1, 0, 1, 1, H, 2]]
    assert validated_rows(rows, "t") is rows


def test_duplicate_in_long_list_refused():
    rows = [[f"c/{i:04d}.gob", 1, 0o644, 1, i, H, 0] for i in range(50)] + [["c/0007.gob", 1, 0o644, 1, 1, H, 0]]
    with pytest.raises(SnapshotError, match="listed twice"):
        validated_rows(rows, "t")


def test_unchanged_list_is_one_reference():
    base = [[f"c/{i:04d}.gob", 1, 0o644, 1, i, H, 0] for i in range(50)]
    assert delta_rows([list(r) for r in base], base) == [[0, 50]]
    assert delta_rows([], []) == []


def test_sweep_lists_blobs_and_removes_only_temp_files(tmp_path):
    from guardian.local.fsutil import TEMP_PREFIX
    from guardian.snapshots.repository import Repository

    repo = Repository(tmp_path / "repo").ensure()
    kept = [repo.put_blob(bytes([i]) * 10) for i in range(40)]
    repo.sync()
    digests = set(repo.list_blobs())
    folder = repo.packs
    (folder / f"{TEMP_PREFIX}pack.beef").write_bytes(b"partial")
    (folder / "notes.txt").write_bytes(b"not a blob")
    (repo.manifests / f"{TEMP_PREFIX}x.manifest.dead").write_bytes(b"partial")
    assert all(kept) and Repository(repo.root).sweep() == digests and len(digests) == 40
    assert not any(p.name.startswith(TEMP_PREFIX) for p in repo.root.rglob("*"))
    assert (folder / "notes.txt").exists()


def test_sparse_delta_equals_the_full_delta_for_random_changes():
    import random

    from guardian.snapshots.manifest import apply_delta, delta_rows, sparse_delta
    from guardian.snapshots.take import DeltaState

    rng = random.Random(5)
    for trial in range(200):
        base = [[f"c/{i:05d}.gob", i, 0o644, i, i, "a" * 64, 0] for i in range(rng.randint(0, 60))]
        state = DeltaState.compute("x", base, base)
        rows = {r[0]: r for r in base}
        for _ in range(rng.randint(1, 4)):
            changes = set()
            for _ in range(rng.randint(0, 8)):
                path = f"c/{rng.randint(0, 80):05d}.gob"
                changes.add(path)
                if rng.random() < 0.3:
                    rows.pop(path, None)
                else:
                    rows[path] = [path, rng.randint(0, 9), 0o644, trial, 1, "b" * 64, 0]
            state = state.updated(base, changes, rows)
            ordered = [rows[p] for p in sorted(rows)]
            ops = sparse_delta(base, [r[0] for r in base], state.explicit, state.dropped)
            assert apply_delta(ops, base) == ordered
            assert apply_delta(delta_rows(ordered, base), base) == ordered
