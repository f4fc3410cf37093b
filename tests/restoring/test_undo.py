"""`restore --undo`: the store as it was before one restore, in one step; what a writer changed since
is left as it is (real files, the real quarantine)."""

from __future__ import annotations

import shutil

import pytest

from guardian.errors import UsageError
from guardian.local.quarantine import Quarantine
from guardian.restoring.pipeline import Restore
from guardian.restoring.undo import undo_restore
from guardian.snapshots.take import take_snapshot

from tests.snapshots.conftest import tree_bytes


def test_undo_puts_back_what_a_restore_moved_aside_or_replaced_and_takes_out_what_it_wrote(plain_paths, clock):
    store = plain_paths.store
    take_snapshot(plain_paths, clock=clock)
    docs = sorted(p for p in (store / "40917930").iterdir() if p.name != "00000000.gob")
    shutil.rmtree(store / "6c7f5464")                                  # written back whole by the restore
    (store / "40917930" / "extra.gob").write_bytes(docs[0].read_bytes())   # moved aside
    docs[1].write_bytes(docs[2].read_bytes())                          # replaced
    docs[3].unlink()                                                   # written back
    (store / "stray").mkdir()
    (store / "stray" / "x.gob").write_bytes(b"x")                      # a folder moved aside
    before = tree_bytes(store)
    outcome = Restore.of_store(plain_paths).run()
    assert outcome.restore_id and len(outcome.quarantined) == 3
    # a writer after the restore: one restored file changed, one moved-aside path filled again
    late = next((store / "6c7f5464").glob("[1-9a-f]*.gob"))
    late.write_bytes(b"a later write")
    (store / "40917930" / "extra.gob").write_bytes(b"written again")

    undone = undo_restore(plain_paths, None)
    assert undone.restore_id == outcome.restore_id
    assert sorted(item["path"] for item in undone.left_alone) == ["40917930/extra.gob", f"6c7f5464/{late.name}"]
    expected = {k: v for k, v in before.items() if k != "40917930/extra.gob"}
    expected.update({"40917930/extra.gob": b"written again", f"6c7f5464/{late.name}": b"a later write"})
    assert tree_bytes(store) == expected                     # as before the restore, the later writes kept
    taken = {e.id: e for e in Quarantine(plain_paths).list()}
    assert {taken[i].original_path for i in undone.taken_out} >= {docs[1].relative_to(store).as_posix(),
                                                                           docs[3].relative_to(store).as_posix()}
    with pytest.raises(UsageError, match="no restore of this store is recorded that could be undone"):
        undo_restore(plain_paths, None)


def test_the_undo_plan_takes_a_created_folder_whole_only_while_every_file_in_it_is_as_restored():
    from guardian.local.quarantine import QuarantineEntry
    from guardian.restoring.journal import RestoreRecord
    from guardian.restoring.undo import plan_undo

    record = RestoreRecord("R1", "t", "/store", "S1", entries=["q1", "q2"], written=["a/new.gob"], created=["c"])
    entries = {"q1": QuarantineEntry("q1", "t", "a/old.gob", "r", "file", 1, "11"),
               "q2": QuarantineEntry("q2", "t", "stray", "r", "folder", 1, None)}
    restored = {"a/new.gob": "22", "a/old.gob": "33", "c/00000000.gob": "44", "c/d.gob": "55"}
    current = {"a/new.gob": "22", "a/old.gob": "33", "c": None, "c/00000000.gob": "44", "c/d.gob": "55"}
    steps = [(s.kind, s.path) for s in plan_undo(record, entries, restored, current).steps]
    assert steps == [("take_out", "c"), ("take_out", "a/new.gob"), ("take_out", "a/old.gob"),
                     ("put_back", "a/old.gob"), ("put_back", "stray")]
    written_since = plan_undo(record, entries, restored, {**current, "c/d.gob": "66", "stray": None})
    assert [(s.kind, s.path) for s in written_since.steps] == [
        ("take_out", "c/00000000.gob"), ("take_out", "a/new.gob"), ("take_out", "a/old.gob"), ("put_back", "a/old.gob")]
    assert sorted(item["path"] for item in written_since.left_alone) == ["c/d.gob", "stray"]
