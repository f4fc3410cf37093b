"""Continuous capture's fast path: rows updated in place, one kept repository, a baseline read ahead.

Whatever the shortcuts, every committed snapshot must read back (with a fresh Repository) exactly as
the capture kept it in memory, list exactly the files on disk with the right totals, survive a
prune that deletes packs under the kept repository object, and restore the store byte for byte.
"""

from __future__ import annotations

import random
import shutil

from bench.common import make_store
from guardian.format.chromem import Document, encode_document
from guardian.local.paths import StatePaths
from guardian.snapshots.prune import forget_and_prune
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import InProcess, Restore
from guardian.snapshots.take import BASE_LIST_MIN_FILES, prepare_baseline, take_snapshot
from guardian.snapshots.verify import verify_repository

from tests.snapshots.conftest import age_files, tree_bytes


def store_files(store) -> dict[str, int]:
    return {str(p.relative_to(store)): p.stat().st_size for p in store.glob("*/*") if p.is_file()}


def test_in_place_captures_read_back_as_kept_and_survive_a_prune(tmp_path, state_dir, clock):
    store = make_store(tmp_path / "store", BASE_LIST_MIN_FILES + 300, dims=8, collections=("a", "b"))
    age_files(store)
    paths = StatePaths.for_store(store, state_dir)
    full = take_snapshot(paths, clock=clock)
    repo = Repository(paths.snapshots)
    baseline = prepare_baseline(repo)
    assert baseline.manifest.id == full.id
    assert baseline.rows == Repository(paths.snapshots).read_manifest_rows(full.id)[1]
    rng = random.Random(20261202)
    folders = sorted(p for p in store.iterdir())
    for step in range(40):
        changed = set()
        for _ in range(rng.randint(1, 6)):
            folder = rng.choice(folders)
            docs = sorted(p for p in folder.iterdir() if p.name != "00000000.gob")
            kind = rng.choice(["add", "add", "rewrite", "delete"])
            if kind == "add":
                path = folder / f"{rng.getrandbits(32):08x}.gob"
                path.write_bytes(encode_document(Document(id=f"new-{step}-{len(changed)}", content="x" * step)))
            else:
                path = rng.choice(docs)
                if kind == "rewrite":
                    path.write_bytes(encode_document(Document(id=f"re-{step}", content="y" * (step + 1))))
                else:
                    path.unlink()
            changed.add(str(path.relative_to(store)))
        clock.advance(seconds=5)
        result = take_snapshot(paths, changed=changed, baseline=baseline, repo=repo, clock=clock)
        assert result.incremental and result.read_files <= len(changed)
        baseline = result.baseline
        manifest, rows = Repository(paths.snapshots).read_manifest_rows(result.id)
        assert rows == baseline.rows
        assert {row[0]: row[1] for row in rows} == store_files(store)
        assert manifest.stats["total_bytes"] == sum(store_files(store).values())
        assert manifest.stats["unstable"] == []
        assert sum(c.documents for c in manifest.collections) == len(store_files(store)) - len(folders)
        if step == 20:   # the hourly snapshot's prune deletes packs behind the kept repository object
            forget_and_prune(paths, keep_last=1)
    assert verify_repository(Repository(paths.snapshots)).ok
    expected = tree_bytes(store)
    shutil.rmtree(store)
    store.mkdir()
    Restore.of_store(paths).run(InProcess(check_load=False))
    assert tree_bytes(store) == expected


def test_a_baseline_read_ahead_is_used_only_while_it_is_the_newest(tmp_path, state_dir, clock):
    store = make_store(tmp_path / "store", 40, dims=8)
    paths = StatePaths.for_store(store, state_dir)
    take_snapshot(paths, clock=clock)
    repo = Repository(paths.snapshots)
    stale = prepare_baseline(repo)
    doc = next(p for p in next(store.iterdir()).iterdir() if p.name != "00000000.gob")
    doc.unlink()
    clock.advance(seconds=5)
    newer = take_snapshot(paths, clock=clock)   # another part's full snapshot: the read-ahead is stale
    extra = next(store.iterdir()) / "0000abcd.gob"
    extra.write_bytes(encode_document(Document(id="extra", content="e")))
    clock.advance(seconds=5)
    result = take_snapshot(paths, changed={str(extra.relative_to(store))}, baseline=stale, repo=repo, clock=clock)
    paths_in = {row[0] for row in Repository(paths.snapshots).read_manifest_rows(result.id)[1]}
    assert str(doc.relative_to(store)) not in paths_in   # built on the newer snapshot, not on the stale one
    assert str(extra.relative_to(store)) in paths_in and newer.id != result.id
