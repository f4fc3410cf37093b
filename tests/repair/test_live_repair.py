"""Live repair of judged paths only, each checked unchanged right before it lands (real files)."""

from __future__ import annotations

import pytest

from guardian.config import Config
from guardian.local.paths import StatePaths
from guardian.repair.apply import FileChanged, replace_checked
from guardian.repair.live import repair_judged
from guardian.snapshots.take import take_snapshot
from guardian.store.judge import judge_path
from tests.snapshots.conftest import doc_bytes


@pytest.fixture
def setup(plain_store, state_dir):
    config = Config(store=str(plain_store))
    paths = StatePaths.for_store(plain_store, state_dir)
    take_snapshot(paths)
    return config, paths, plain_store


def docs(store):
    return sorted(p for p in store.glob("*/*.gob") if not p.name.startswith("00000000"))


def rel(path):
    return f"{path.parent.name}/{path.name}"


def test_a_judged_empty_document_comes_back_and_nothing_else_is_touched(setup):
    config, paths, store = setup
    first, second = docs(store)[:2]
    good_first, good_second = first.read_bytes(), second.read_bytes()
    first.write_bytes(b"")
    second.write_bytes(b"")  # damaged too, but not (yet) judged: a writer may be at work on it
    damage = judge_path(store, rel(first))
    result = repair_judged(config, paths, [damage])
    assert first.read_bytes() == good_first
    assert second.read_bytes() == b""
    assert [a.action.path for a in result.repaired] == [rel(first)]
    assert good_second


def test_a_file_written_after_it_was_judged_is_left_alone(setup):
    config, paths, store = setup
    doc = docs(store)[0]
    doc.write_bytes(b"")
    damage = judge_path(store, rel(doc))
    doc.write_bytes(doc_bytes("a newer write"))  # the writer finished after the judgment
    result = repair_judged(config, paths, [damage])
    assert doc.read_bytes() == doc_bytes("a newer write") and not result.repaired
    doc.write_bytes(b"")
    damage = judge_path(store, rel(doc))
    doc.write_bytes(b"\x00")  # still mid-write (a different state than the one judged)
    result = repair_judged(config, paths, [damage])
    assert doc.read_bytes() == b"\x00"
    assert result.changed_meanwhile == [rel(doc)] and not result.repaired


def test_a_write_landing_between_the_check_and_the_rename_is_kept(tmp_path):
    path = tmp_path / "c" / "x.gob"
    path.parent.mkdir()
    path.write_bytes(b"")
    newer = doc_bytes("newer")

    def guard_then_a_writer_slips_in(rel):
        with open(path, "r+b") as handle:  # writes into the old inode, as chromem's in-place write would
            handle.write(newer)

    note = replace_checked(tmp_path, "c/x.gob", doc_bytes("snapshot copy"), guard_then_a_writer_slips_in)
    assert path.read_bytes() == newer and "put back" in note


def test_a_failed_check_leaves_the_file_and_no_temp(tmp_path):
    path = tmp_path / "c" / "x.gob"
    path.parent.mkdir()
    path.write_bytes(b"")

    def changed(rel):
        raise FileChanged("changed")

    with pytest.raises(FileChanged):
        replace_checked(tmp_path, "c/x.gob", doc_bytes("copy"), changed)
    assert path.read_bytes() == b"" and sorted(p.name for p in path.parent.iterdir()) == ["x.gob"]
