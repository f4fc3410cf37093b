"""Restore with batched durability: lost folders staged whole and renamed in, leftovers cleaned."""

import json
import os
import shutil
import subprocess

import pytest

from guardian.errors import RestoreError
from guardian.local import storefs
from guardian.local.fsutil import TEMP_PREFIX
from guardian.local.paths import StatePaths
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import Restore
from guardian.snapshots.take import take_snapshot

from tests.snapshots.conftest import damage_blob, tree_bytes


def chromem_load(chromemh, store, compress: bool = False) -> dict:
    """The real chromem-go loader's verdict on ``store``."""
    proc = subprocess.run([str(chromemh), "load", str(store), "1" if compress else "0"],
                          capture_output=True, timeout=300, check=True)
    return json.loads(proc.stdout)


def test_restore_into_an_empty_store_is_identical_and_loads(any_store, state_dir, chromemh, tmp_path):
    compress = any(p.name.endswith(".gz") for p in any_store.rglob("*"))
    paths = StatePaths.for_store(any_store, state_dir)
    take_snapshot(paths)
    target = tmp_path / "empty"
    target.mkdir()
    Restore.of_store(StatePaths(store=target, root=paths.root)).run()
    assert tree_bytes(target) == tree_bytes(any_store)
    assert not [p for p in target.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    modes = {p.relative_to(target): p.stat().st_mode for p in target.rglob("*")}
    assert modes == {p.relative_to(any_store): p.stat().st_mode for p in any_store.rglob("*")}
    assert chromem_load(chromemh, target, compress)["ok"]


def test_lost_collection_comes_back_whole_next_to_kept_ones(plain_paths):
    take_snapshot(plain_paths)
    original = tree_bytes(plain_paths.store)
    lost = sorted(p for p in plain_paths.store.iterdir() if p.is_dir())[0]
    shutil.rmtree(lost)
    kept = sorted(p for p in plain_paths.store.iterdir() if p.is_dir())[0]
    inode = os.stat(next(kept.glob("*.gob"))).st_ino
    result = Restore.of_store(plain_paths).run()
    assert tree_bytes(plain_paths.store) == original and result.loadable
    assert os.stat(next(kept.glob("*.gob"))).st_ino == inode   # identical files are not rewritten


def test_damaged_blob_leaves_no_staging_folder(plain_paths):
    result = take_snapshot(plain_paths)
    repo = Repository(plain_paths.snapshots)
    lost = sorted(p for p in plain_paths.store.iterdir() if p.is_dir())[1]
    victim = next(e for e in repo.read_manifest(result.id).files if e.path.startswith(lost.name + "/"))
    damage_blob(repo, victim.hash)
    shutil.rmtree(lost)
    before = tree_bytes(plain_paths.store)
    with pytest.raises(RestoreError, match="damaged"):
        Restore.of_store(plain_paths).run()
    assert tree_bytes(plain_paths.store) == before
    assert not [p for p in os.listdir(plain_paths.store) if p.startswith(TEMP_PREFIX)]


def test_leftover_staging_folder_is_invisible_to_chromem_and_cleaned(plain_paths, chromemh):
    take_snapshot(plain_paths)
    # what a restore killed before its rename leaves: a staging folder holding a complete collection
    stage = plain_paths.store / f"{storefs.STAGE_PREFIX}dead"
    stage.mkdir()
    folder = sorted(p for p in plain_paths.store.iterdir() if p.is_dir() and p != stage)[0]
    shutil.copytree(folder, stage / folder.name)
    outside = plain_paths.store.parent / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not guardian's")
    (stage / "link").symlink_to(outside, target_is_directory=True)
    loaded = chromem_load(chromemh, plain_paths.store)
    assert loaded["ok"] and len(loaded["collections"]) == 5   # the staged copy is not a sixth
    Restore.of_store(plain_paths).run()
    assert not stage.exists() and (outside / "keep.txt").read_text() == "not guardian's"


def test_bulk_fsync_path_where_there_is_no_syncfs(plain_paths, monkeypatch):
    from guardian.local import fsutil

    take_snapshot(plain_paths)
    original = tree_bytes(plain_paths.store)
    shutil.rmtree(sorted(p for p in plain_paths.store.iterdir() if p.is_dir())[0])
    next(plain_paths.store.glob("*/*.gob")).write_bytes(b"damaged")
    monkeypatch.setattr(fsutil, "sync_filesystem", lambda fd: False)
    Restore.of_store(plain_paths).run()
    assert tree_bytes(plain_paths.store) == original
