"""File lists read as stored: a row looked up in a delta's text (or parsed) is the row the full
decoder gives, for every path of every snapshot, odd file names included."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from guardian.errors import SnapshotError
from guardian.format.layout import collection_dir_name
from guardian.local.paths import StatePaths
from guardian.memories.diff import one_sided
from guardian.memories.filelists import FileLists, RowText, kept
from guardian.snapshots.repository import Repository
from guardian.snapshots.take import take_snapshot
from tests.memories.conftest import ChromemStore, doc


def test_kept_and_one_sided_runs():
    runs = [(0, 3), (5, 6), (9, 12)]
    assert [p for p in range(13) if kept(runs, p)] == [0, 1, 2, 5, 9, 10, 11]
    assert one_sided(runs, [(0, 3), (9, 10)]) == [(5, 6), (10, 12)]
    assert one_sided([(0, 10)], [(0, 4), (6, 10)]) == [(4, 6)]
    assert one_sided(runs, runs) == []


def test_row_text_finds_rows_outside_strings_only():
    text = RowText(b'[["a/x[1,2].gob",1,2,3,4,null,1],[3,2],["a/b.gob",5,6,7,8,"' + b"f" * 64 + b'",0]]', "t")
    assert text.plain and text.runs(10) == [(3, 5)]     # "[1,2]" inside a name is no run
    assert text.find("a/b.gob")[1][1] == 5 and text.find("a/c.gob") is None
    assert text.find("a/x[1,2].gob")[1][5] is None
    with pytest.raises(SnapshotError, match="out of range"):
        text.runs(4)
    assert not RowText(b'[["a/q\\".gob",1,2,3,4,null,1]]', "t").plain


def test_rows_looked_up_equal_the_full_decode(chromemh, tmp_path):
    store = tmp_path / "store"
    subprocess.run([str(chromemh), "synth", str(store), "600", "8", "0"], check=True, capture_output=True, timeout=120)
    s = ChromemStore(chromemh, tmp_path)
    paths = StatePaths.for_store(store, tmp_path / "state")
    folder = next(p for p in store.iterdir() if p.is_dir())
    moment = datetime.now(timezone.utc) - timedelta(hours=1)
    result = take_snapshot(paths, clock=lambda: moment)
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("00000000"))
    for step in range(1, 6):
        changed = {names[step], names[10 * step]}
        for name in changed:
            (folder / name).write_bytes((folder / name).read_bytes())   # rewritten, as chromem's update
        (folder / names[100 + step]).unlink()
        changed.add(names[100 + step])
        odd = f'odd[{step},1]' + (' "q".gob' if step >= 4 else ".gob")   # a quote: the text cannot be searched
        (folder / odd).write_bytes((folder / names[0]).read_bytes())   # a document chromem loads, oddly named
        changed.add(odd)
        s.gen(("lessons", [doc(f"l{step}", "x", step)]))
        moment += timedelta(minutes=1)
        result = take_snapshot(paths, clock=lambda: moment, baseline=result.baseline,
                               changed={f"{folder.name}/{n}" for n in changed} | {collection_dir_name("lessons")})
    repo = Repository(paths.snapshots)
    lists = FileLists(repo)
    ids = repo.list_ids()
    assert sum(bool(repo.read_header(i).files_dict) for i in ids) >= 4     # deltas against a base list
    everywhere = set()
    truth = {}
    for snapshot_id in ids:
        truth[snapshot_id] = {row[0]: row for row in repo.read_manifest_rows(snapshot_id)[1]}
        everywhere |= set(truth[snapshot_id])
    def searchable(snapshot_id: str) -> bool:
        files = lists.open(snapshot_id)
        return files.text.plain and (files.base_digest is None or lists.base_text(files.base_digest)[0].plain)
    assert [searchable(i) for i in ids] == [True] * 4 + [False] * 2   # a quote in a name: parsed instead
    for snapshot_id in ids:
        files = lists.open(snapshot_id)
        for path in sorted(everywhere):
            assert files.row(path) == files.lookup(path) == truth[snapshot_id].get(path), (snapshot_id, path)
        assert files.row_index() == truth[snapshot_id]
