"""`guardian restore --id`: chosen memories back, byte for byte, nothing else touched.

The pure finding and planning without I/O; then stores written by the real chromem (`chromemh gen`,
which updates a document in place when it is added again with the same ID), restored by the real
CLI, every other file compared (bytes, inode, mtime) and the result loaded by the real loader."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from guardian.errors import RestoreError
from guardian.format.layout import collection_dir_name, document_stem
from guardian.restoring.memories import find_memories, plan_memories
from guardian.snapshots.manifest import CollectionInfo, Manifest, ManifestEntry
from guardian.snapshots.restore_plan import CurrentFile

from tests.conftest import chromem_load
from tests.waiting import wait_for

ALPHA, BETA = collection_dir_name("alpha"), collection_dir_name("beta")


def doc_path(collection: str, memory_id: str) -> str:
    return f"{collection_dir_name(collection)}/{document_stem(memory_id)}.gob"


# ---- pure: finding a memory by its file name, planning without touching anything else -----------

def entry(path: str, digest: str | None = "aa" * 32) -> ManifestEntry:
    return ManifestEntry(path, 100, 0o644, 0, 1, digest)


def manifest(*extra: ManifestEntry) -> Manifest:
    files = [entry(f"{ALPHA}/00000000.gob", "11" * 32), entry(doc_path("alpha", "a1")),
             entry(doc_path("alpha", "a2")), entry(f"{BETA}/00000000.gob", "22" * 32),
             entry(doc_path("beta", "a1"), "bb" * 32), *extra]
    return Manifest("S1", datetime(2026, 5, 1, tzinfo=timezone.utc), "/store", False,
                    collections=[CollectionInfo(ALPHA, "alpha", 2), CollectionInfo(BETA, "beta", 1)],
                    dirs=[(ALPHA, 0o755), (BETA, 0o700)], files=files)


def test_a_memory_is_found_by_its_file_name_and_an_ambiguous_one_needs_its_collection():
    [a2] = find_memories(manifest(), ("a2",))
    assert (a2.folder, a2.collection, a2.entry.path) == (ALPHA, "alpha", doc_path("alpha", "a2"))
    with pytest.raises(RestoreError, match="several collections") as several:
        find_memories(manifest(), ("a1",))
    assert "'alpha'" in several.value.message and "--collection" in several.value.hint
    [a1] = find_memories(manifest(), ("a1",), "beta")
    assert a1.entry.path == doc_path("beta", "a1")
    with pytest.raises(RestoreError, match="memory 'zz' is not in snapshot S1"):
        find_memories(manifest(), ("a2", "zz"))
    with pytest.raises(RestoreError, match="no collection 'gamma'"):
        find_memories(manifest(), ("a2",), "gamma")


def test_the_plan_writes_only_the_memories_and_a_missing_metadata():
    chosen = find_memories(manifest(), ("a2",), None) + find_memories(manifest(), ("a1",), "beta")
    metadata = {ALPHA: entry(f"{ALPHA}/00000000.gob", "11" * 32), BETA: entry(f"{BETA}/00000000.gob", "22" * 32)}
    current = {ALPHA: CurrentFile(ALPHA, 0, None, is_dir=True),
               f"{ALPHA}/00000000.gob": CurrentFile(f"{ALPHA}/00000000.gob", 5, "99" * 32),   # differs: kept
               doc_path("alpha", "a2"): CurrentFile(doc_path("alpha", "a2"), 100, "cc" * 32),
               doc_path("alpha", "a1"): CurrentFile(doc_path("alpha", "a1"), 100, "dd" * 32)}   # not chosen
    plan = plan_memories("S1", chosen, metadata, current, {BETA: 0o700})
    kinds = {a.path: a.kind for a in plan.actions}
    assert kinds == {doc_path("alpha", "a2"): "replace",        # the chosen memory, other bytes now
                     f"{BETA}/00000000.gob": "write",           # beta is gone: its metadata comes back
                     doc_path("beta", "a1"): "write"}
    assert plan.create_dirs == [(BETA, 0o700)] and not plan.of_kind("move_aside")
    same = plan_memories("S1", chosen[:1], metadata, {**current, doc_path("alpha", "a2"): CurrentFile(
        doc_path("alpha", "a2"), 100, "aa" * 32)})
    assert [a.kind for a in same.actions] == ["keep"] and not same.changes


def test_a_memory_the_snapshot_kept_no_bytes_of_is_skipped_and_a_file_in_the_folders_place_moves():
    lost = entry(doc_path("alpha", "a3"), None)
    chosen = find_memories(manifest(lost), ("a3",))
    plan = plan_memories("S1", chosen, {}, {ALPHA: CurrentFile(ALPHA, 3, "ee" * 32)})
    assert [(a.kind, a.path) for a in plan.actions] == [
        ("move_aside", ALPHA), ("skip", f"{ALPHA}/00000000"), ("skip", doc_path("alpha", "a3"))]
    assert plan.create_dirs == [(ALPHA, 0o755)]


# ---- real stores, real CLI, real loader ----------------------------------------------------------

def vector(rng: random.Random) -> list[float]:
    values = [rng.random() + 0.01 for _ in range(8)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def gen(chromemh: Path, store: Path, spec: list[dict]) -> None:
    """Write through the real chromem (AddDocument): a document added again with its ID is updated."""
    (store.parent / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([str(chromemh), "gen", str(store.parent / "spec.json"), str(store), "0"],
                          capture_output=True, timeout=120, check=True)
    assert json.loads(done.stdout)["ok"] is True


def first_store(chromemh: Path, tmp_path: Path) -> Path:
    rng = random.Random(5)
    store = tmp_path / "store"
    gen(chromemh, store, [
        {"name": "alpha", "metadata": {"kind": "memories"},
         "docs": [{"id": f"a{i}", "content": f"alpha memory {i}", "metadata": {"n": str(i)}, "embedding": vector(rng)}
                  for i in range(6)]},
        {"name": "beta", "metadata": {},
         "docs": [{"id": "a1", "content": "the same id in beta", "metadata": {}, "embedding": vector(rng)},
                  {"id": "b1", "content": "beta memory", "metadata": {}, "embedding": vector(rng)}]}])
    return store


def update(chromemh: Path, store: Path, collection: str, ids: list[str]) -> None:
    rng = random.Random(9)
    gen(chromemh, store, [{"name": collection, "metadata": {"kind": "memories"} if collection == "alpha" else {},
                           "docs": [{"id": i, "content": f"{i} rewritten later", "metadata": {"n": "new"},
                                     "embedding": vector(rng)} for i in ids]}])


def files_now(store: Path) -> dict[str, tuple]:
    """Every file: (bytes, inode, mtime_ns) - what "touched nothing else" is checked against."""
    found = {}
    for path in sorted(store.rglob("*")):
        if path.is_file():
            info = path.stat()
            found[str(path.relative_to(store))] = (path.read_bytes(), info.st_ino, info.st_mtime_ns)
    return found


def content_of(chromemh: Path, store: Path, collection: str, memory_id: str) -> str | None:
    dump = json.loads(subprocess.run([str(chromemh), "dump", str(store), "0"], capture_output=True, timeout=120,
                                     check=True).stdout)
    for held in dump["collections"]:
        if held["name"] == collection:
            return next((d["content"] for d in held["documents"] if d["id"] == memory_id), None)
    return None


def test_restore_id_brings_one_memory_back_byte_for_byte_and_touches_nothing_else(cli, tmp_path, chromemh):
    store = first_store(chromemh, tmp_path)
    first = json.loads(cli("snapshot", "--store", str(store), "--json", check=True).stdout_text)["id"]
    then = (store / doc_path("alpha", "a1")).read_bytes()
    update(chromemh, store, "alpha", ["a1", "a2"])           # two memories rewritten, same IDs
    assert (store / doc_path("alpha", "a1")).read_bytes() != then
    ambiguous = cli("restore", "--at", first, "--id", "a1", "--force", "--store", str(store))
    assert ambiguous.returncode == 5 and "several collections" in ambiguous.stderr_text
    before = files_now(store)
    proc = cli("restore", "--at", first, "--id", "a1", "--collection", "alpha", "--force", "--json",
               "--store", str(store))
    assert proc.returncode == 0, proc.stderr_text
    answer = json.loads(proc.stdout_text)
    assert answer["ids"] == ["a1"] and answer["counts"]["replace"] == 1 and answer["counts"]["write"] == 0
    after = files_now(store)
    assert (store / doc_path("alpha", "a1")).read_bytes() == then                 # byte for byte
    assert {k: v for k, v in after.items() if k != doc_path("alpha", "a1")} == \
        {k: v for k, v in before.items() if k != doc_path("alpha", "a1")}            # nothing else touched
    assert content_of(chromemh, store, "alpha", "a1") == "alpha memory 1"           # the real loader agrees
    assert content_of(chromemh, store, "alpha", "a2") == "a2 rewritten later"
    assert content_of(chromemh, store, "beta", "a1") == "the same id in beta"
    [entry_id] = answer["quarantine_entries"]                                       # the newer version is kept
    listed = json.loads(cli("quarantine", "list", "--json", "--store", str(store)).stdout_text)
    [kept] = [e for e in listed if e["id"] == entry_id]
    assert Path(kept["payload_path"]).read_bytes() == before[doc_path("alpha", "a1")][0]


def test_restore_id_brings_back_a_lost_collection_with_its_metadata_in_place_in_a_target_and_from_a_replica(
        cli, tmp_path, chromemh):
    store = first_store(chromemh, tmp_path)
    cli("snapshot", "--store", str(store), check=True)
    original = files_now(store)
    shutil.rmtree(store / ALPHA)                                                    # the collection is gone
    kept = files_now(store)
    proc = cli("restore", "--at", "latest", "--id", "a2", "--id", "a4", "--store", str(store))
    assert proc.returncode == 0, proc.stderr_text                                   # nothing replaced: no question
    assert "restored 2 memories" in proc.stdout_text and "chromem will load the store: yes" in proc.stdout_text
    now = files_now(store)
    back = {f"{ALPHA}/00000000.gob", doc_path("alpha", "a2"), doc_path("alpha", "a4")}
    assert set(now) == set(kept) | back and {k: now[k] for k in kept} == kept
    assert all(now[k][0] == original[k][0] for k in back)
    loaded = chromem_load(chromemh, store)
    assert loaded["ok"] and loaded["collections"]["alpha"] == {"count": 2, "metadata": {"kind": "memories"}}

    target = tmp_path / "one-memory"
    cli("restore", "--at", "latest", "--id", "b1", "--target", str(target), "--store", str(store), check=True)
    assert files_now(store) == now                                                  # the store was not touched
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*.gob")) == sorted(
        [f"{BETA}/00000000.gob", doc_path("beta", "b1")])
    assert chromem_load(chromemh, target)["collections"] == {"beta": {"count": 1, "metadata": {}}}

    env = {"XDG_CONFIG_HOME": str(tmp_path / "config-home")}
    url = f"file://{tmp_path / 'backup'}"
    (tmp_path / "backup").mkdir()
    cli("replicate", "--store", str(store), "--to", url, env=env, check=True)
    (store / doc_path("beta", "b1")).unlink()
    fresh = tmp_path / "fresh-state"
    proc = cli("restore", "--from", url, "--at", "latest", "--id", "b1", "--store", str(store), "--json",
               env={**env, "GUARDIAN_STATE_DIR": str(fresh)})
    assert proc.returncode == 0, proc.stderr_text
    assert json.loads(proc.stdout_text)["replica"] and (store / doc_path("beta", "b1")).read_bytes() == \
        original[doc_path("beta", "b1")][0]


HOLD = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)   # as a writer between chromem's truncate and its write
open(sys.argv[2], "w").write("holding")
time.sleep(600)
"""


def test_a_memory_file_a_process_holds_for_writing_is_left_alone_and_named(cli, tmp_path, chromemh):
    store = first_store(chromemh, tmp_path)
    cli("snapshot", "--store", str(store), check=True)
    update(chromemh, store, "alpha", ["a3"])
    held = store / doc_path("alpha", "a3")
    newer = held.read_bytes()
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(held), str(ready)])
    try:
        wait_for(ready.exists, timeout=60, what="the holder to open the file")
        proc = cli("restore", "--at", "latest", "--id", "a3", "--force", "--store", str(store))
        assert proc.returncode == 1, proc.stderr_text
        assert f"held open for writing by pid {holder.pid}" in proc.stdout_text and "left as it is" in proc.stdout_text
        assert held.read_bytes() == newer                                          # its write wins
    finally:
        holder.kill()
        holder.wait()
    assert not os.path.exists(tmp_path / "state" / "quarantine") or not any(
        (tmp_path / "state" / "quarantine").iterdir())                             # nothing was preserved for it
