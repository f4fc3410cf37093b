"""The restore plan is pure: these tests do no I/O."""

import hashlib

from guardian.snapshots.manifest import FLAG_ABSENT, FLAG_DAMAGED, FLAG_UNSTABLE, CollectionInfo, ManifestEntry
from guardian.snapshots.restore_plan import (CurrentFile, GoodCopy, PlanInputs, copies_wanted, plan_restore,
                                             scope_for_collection)

H1, H2, H3 = ("1" * 64, "2" * 64, "3" * 64)


def entry(path, digest=H1, flags=0):
    return ManifestEntry(path, 10, 0o644, 1, 1, digest, flags)


def cur(path, digest=H1, is_dir=False):
    return CurrentFile(path, 0 if is_dir else 10, None if is_dir else digest, is_dir)


def kinds(plan):
    return {(a.kind, a.path) for a in plan.actions}


SNAP = [entry("a/00000000.gob"), entry("a/x.gob", H2), entry("b/00000000.gob", H3)]
DIRS = [("a", 0o700), ("b", 0o700)]


def test_identical_store_keeps_everything():
    current = {"a": cur("a", is_dir=True), "b": cur("b", is_dir=True), "a/00000000.gob": cur("a/00000000.gob"),
               "a/x.gob": cur("a/x.gob", H2), "b/00000000.gob": cur("b/00000000.gob", H3)}
    plan = plan_restore("s", SNAP, DIRS, current)
    assert plan.counts()["keep"] == 3
    assert not plan.changes and not plan.disturbs_store


def test_missing_damaged_and_extra():
    current = {"a": cur("a", is_dir=True), "a/00000000.gob": cur("a/00000000.gob", H3),
               "a/new.gob": cur("a/new.gob"), "c": cur("c", is_dir=True), "c/y.gob": cur("c/y.gob")}
    plan = plan_restore("s", SNAP, DIRS, current)
    assert kinds(plan) == {("replace", "a/00000000.gob"), ("write", "a/x.gob"), ("write", "b/00000000.gob"),
                           ("move_aside", "a/new.gob"), ("move_aside", "c")}
    assert plan.create_dirs == [("b", 0o700)]
    assert plan.disturbs_store
    # a whole foreign folder is moved aside as one, not file by file
    assert [a.is_dir for a in plan.actions if a.path == "c"] == [True]


def test_collection_scope_leaves_everything_else_alone():
    current = {"a": cur("a", is_dir=True), "a/x.gob": cur("a/x.gob", H3), "a/extra.gob": cur("a/extra.gob"),
               "c": cur("c", is_dir=True), "c/y.gob": cur("c/y.gob"), "top.txt": cur("top.txt")}
    plan = plan_restore("s", SNAP, DIRS, current, scope="a")
    assert kinds(plan) == {("write", "a/00000000.gob"), ("replace", "a/x.gob"), ("move_aside", "a/extra.gob")}


def test_unstable_entry_without_content_is_skipped():
    plan = plan_restore("s", [ManifestEntry("a/u.gob", 5, 0o644, 1, 1, None, 1)], [("a", 0o700)], {})
    assert kinds(plan) == {("skip", "a/u.gob")}


def test_folder_where_snapshot_has_file_and_file_where_it_has_folder():
    current = {"a": cur("a"), "b": cur("b", is_dir=True), "b/00000000.gob": cur("b/00000000.gob", is_dir=True),
               "b/00000000.gob/inner": cur("b/00000000.gob/inner")}
    plan = plan_restore("s", SNAP, DIRS, current)
    assert ("move_aside", "a") in kinds(plan)           # a file blocks the folder a/
    replace = [x for x in plan.actions if x.path == "b/00000000.gob"]
    assert replace[0].kind == "replace" and replace[0].is_dir
    assert ("move_aside", "b/00000000.gob/inner") not in kinds(plan)  # goes with its folder
    assert ("a", 0o700) in plan.create_dirs


def test_top_level_files_are_in_whole_store_scope():
    plan = plan_restore("s", SNAP, DIRS, {"stray.txt": cur("stray.txt")})
    assert ("move_aside", "stray.txt") in kinds(plan)


def test_scope_for_collection_prefers_metadata_name_then_hash():
    def folder(name):
        return hashlib.sha256(name.encode()).hexdigest()[:8]
    cols = [CollectionInfo(folder("notes"), "notes", 3), CollectionInfo("deadbeef", "moved", 1),
            CollectionInfo(folder("lost"), None, 2)]
    assert scope_for_collection("notes", cols, folder) == folder("notes")
    assert scope_for_collection("moved", cols, folder) == "deadbeef"
    assert scope_for_collection("lost", cols, folder) == folder("lost")   # damaged metadata: by hash
    assert scope_for_collection("absent", cols, folder) is None


def test_plan_to_dict_hides_keeps():
    current = {"a": cur("a", is_dir=True), "a/00000000.gob": cur("a/00000000.gob")}
    data = plan_restore("s", SNAP[:1], DIRS[:1], current).to_dict()
    assert data["counts"]["keep"] == 1 and data["actions"] == []


# --------------------------------------------------------------------------- a collection without good metadata

DOCS_ONLY = [entry("a/x.gob", H2), entry("a/y.gob", H3), entry("b/00000000.gob", H3), entry("b/z.gob", H2)]
H4 = "4" * 64


def test_copies_wanted_names_the_metadata_of_a_folder_of_documents_and_rows_without_content():
    files = DOCS_ONLY + [entry("b/w.gob", None, FLAG_DAMAGED), entry("c/00000000.gob", None, FLAG_UNSTABLE)]
    paths, folders = copies_wanted(files, False, None)
    assert folders == {"a"}   # c has no documents: chromem skips it, nothing is needed
    assert paths == {"b/w.gob"}
    assert copies_wanted(files, False, "b") == ({"b/w.gob"}, set())
    # a metadata copy judged unusable counts as none
    assert copies_wanted(DOCS_ONLY, False, None, frozenset({"b/00000000.gob"}))[1] == {"a", "b"}


def test_a_good_copy_from_elsewhere_is_written_and_said():
    copy = GoodCopy(entry("a/00000000.gob", H4), "snapshot S0")
    plan = plan_restore("s", DOCS_ONLY, [("a", 0o755), ("b", 0o755)], {}, None,
                        PlanInputs(copies={"a/00000000.gob": copy}))
    assert ("write", "a/00000000.gob") in kinds(plan)
    assert plan.substituted == {"a/00000000.gob": "snapshot S0"} and plan.left_out == {}
    written = next(a for a in plan.actions if a.path == "a/00000000.gob")
    assert written.entry.hash == H4 and "snapshot S0" in written.reason
    assert plan.to_dict()["substituted"] == [{"path": "a/00000000.gob", "source": "snapshot S0"}]


def test_a_copy_never_overrides_a_good_row_of_the_snapshot():
    copy = GoodCopy(entry("b/00000000.gob", H4), "snapshot S0")
    plan = plan_restore("s", DOCS_ONLY, [], {}, None, PlanInputs(copies={"b/00000000.gob": copy}))
    assert plan.substituted == {}
    assert next(a for a in plan.actions if a.path == "b/00000000.gob").entry.hash == H3


def test_a_collection_with_no_good_metadata_anywhere_is_left_out_and_the_store_folder_moved_aside():
    current = {"a": cur("a", is_dir=True), "a/x.gob": cur("a/x.gob", H2), "b": cur("b", is_dir=True)}
    plan = plan_restore("s", DOCS_ONLY, [("a", 0o755), ("b", 0o755)], current)
    assert plan.left_out == {"a": 2}
    assert ("skip", "a") in kinds(plan) and ("move_aside", "a") in kinds(plan)
    assert not any(a.path.startswith("a/") for a in plan.actions)
    assert "a" not in {d for d, _ in plan.create_dirs}
    # an unusable metadata row without a copy is no metadata either
    plan = plan_restore("s", DOCS_ONLY, [], {}, None, PlanInputs(unusable=frozenset({"b/00000000.gob"})))
    assert plan.left_out == {"a": 2, "b": 1}
    # asked for: everything written as the snapshot has it
    plan = plan_restore("s", DOCS_ONLY, [], {}, None, PlanInputs(allow_damaged=True))
    assert plan.left_out == {} and ("write", "a/x.gob") in kinds(plan)


def test_the_kept_copy_of_a_missing_metadata_file_is_written_with_its_reason():
    files = [entry("a/00000000.gob", H1, FLAG_DAMAGED | FLAG_ABSENT), entry("a/x.gob", H2)]
    plan = plan_restore("s", files, [], {"a": cur("a", is_dir=True), "a/x.gob": cur("a/x.gob", H2)})
    action = next(a for a in plan.actions if a.path == "a/00000000.gob")
    assert action.kind == "write" and "missing when snapshotted" in action.reason
    assert plan.left_out == {} and plan.substituted == {}


def test_rebuilt_blobs_are_those_the_plan_writes():
    rebuilt = GoodCopy(entry("a/00000000.gob", H4), "rebuilt")
    inputs = PlanInputs(copies={"a/00000000.gob": rebuilt}, rebuilt={H4: b"bytes", H1: b"unused"})
    assert plan_restore("s", DOCS_ONLY, [], {}, None, inputs).rebuilt_blobs(inputs) == {H4: b"bytes"}
    kept = {"a/00000000.gob": CurrentFile("a/00000000.gob", 5, H4)}
    assert plan_restore("s", DOCS_ONLY, [], kept, None, inputs).rebuilt_blobs(inputs) == {}
