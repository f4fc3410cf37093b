"""LiveScan (kept current change by change) says exactly what scan_store says, after every kind of change."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

import damage
from guardian.format import chromem
from guardian.store.live_scan import LiveScan
from guardian.store.scan import scan_store
from tests.repair.test_entry_kinds import CASES, entry_path, make_entry


def verdict(scan) -> dict:
    """Everything a scan says, in order (problems with chromem's error, collections with counts)."""
    return {**scan.to_dict(), "loaded": scan.loaded_collections(),
            "problems": [(p.path, p.kind, p.severity, p.detail, p.error, p.collection_dir) for p in scan.problems],
            "collections": [(c.dir, c.name, c.metadata, c.documents, c.status, c.skipped) for c in scan.collections]}


def entries(store: Path) -> dict[str, tuple]:
    """Every path chromem could care about (root entries and their direct children) with its lstat key."""
    out = {}
    for top in os.scandir(store):
        info = os.lstat(top.path)
        out[top.name] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ino)
        if top.is_dir(follow_symlinks=False):
            for entry in os.scandir(top.path):
                info = os.lstat(entry.path)
                out[f"{top.name}/{entry.name}"] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ino)
    return out


def changed(before: dict, after: dict) -> set[str]:
    """What the watcher would report: every path created, removed or rewritten."""
    return {rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel)}


def agrees(live: LiveScan, store: Path, before: dict, compress=None) -> dict:
    after = entries(store)
    got = live.update(changed(before, after))
    assert verdict(got) == verdict(scan_store(store, compress))
    return after


@pytest.mark.parametrize("name", sorted(damage.DAMAGES))
def test_each_fixture_damage_after_the_build_reads_as_scan_store(name, any_store, state_dir):
    compress = any(any_store.glob("*/*.gob.gz"))
    live = LiveScan(any_store, cache_dir=state_dir / "cache")
    assert verdict(live.build()) == verdict(scan_store(any_store))
    before = entries(any_store)
    damage.DAMAGES[name](any_store, compress)
    agrees(live, any_store, before)
    assert verdict(LiveScan(any_store).build()) == verdict(scan_store(any_store))


@pytest.mark.parametrize("position,kind", CASES, ids=[f"{p}-{k}" for p, k in CASES])
def test_each_entry_kind_appearing_and_going_reads_as_scan_store(tmp_path, plain_store, position, kind):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = entry_path(plain_store, position)
    original = elsewhere / "original"
    shutil.move(path, original)
    live = LiveScan(plain_store, False)
    live.build()
    before = entries(plain_store)
    make_entry(path, kind, elsewhere, original)
    before = agrees(live, plain_store, before, False)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    before = agrees(live, plain_store, before, False)
    shutil.move(original, path)   # healed
    agrees(live, plain_store, before, False)


def test_a_seeded_stream_of_writes_deletes_damage_and_repairs_reads_as_scan_store(plain_store):
    rng = random.Random(20261202)
    live = LiveScan(plain_store)
    live.build()
    folders = sorted(p.name for p in plain_store.iterdir())
    spare = {}   # rel -> the bytes a document had before it was damaged or removed
    before = entries(plain_store)
    for step in range(120):
        folder = plain_store / rng.choice(folders)
        docs = sorted(p for p in folder.iterdir() if p.name != "00000000.gob")
        action = rng.choice(["copy", "copy", "delete", "empty", "cut", "garbage", "heal", "heal", "meta", "stray"])
        target = rng.choice(docs) if docs else None
        if action == "copy" and target is not None:       # same id in another file: duplicate + hash mismatch
            shutil.copy2(target, folder / f"{rng.getrandbits(32):08x}.gob")
        elif action in ("delete", "empty", "cut", "garbage") and target is not None:
            rel = str(target.relative_to(plain_store))
            spare.setdefault(rel, target.read_bytes())
            if action == "delete":
                target.unlink()
            else:
                data = spare[rel]
                target.write_bytes({"empty": b"", "cut": data[:len(data) // 2],
                                    "garbage": bytes(rng.getrandbits(8) for _ in range(64))}[action])
        elif action == "heal" and spare:
            rel = rng.choice(sorted(spare))
            (plain_store / rel).write_bytes(spare.pop(rel))
        elif action == "meta":
            meta = folder / "00000000.gob"
            rel = str(meta.relative_to(plain_store))
            if rel in spare:
                meta.write_bytes(spare.pop(rel))
            else:
                spare[rel] = meta.read_bytes()
                meta.unlink()
        elif action == "stray":
            (folder / f"note-{step}.txt").write_text("not chromem's")
        before = agrees(live, plain_store, before)
    assert live.updates == 120


def test_a_collection_folder_created_and_removed_is_read_whole(plain_store):
    live = LiveScan(plain_store)
    live.build()
    before = entries(plain_store)
    new = plain_store / chromem.collection_dir_name("brand_new")
    new.mkdir()
    (new / "00000000.gob").write_bytes(chromem.encode_collection("brand_new", {"k": "v"}))
    shutil.copy2(next((plain_store / damage.MEMORIES).glob("0*.gob")), new / "0000abcd.gob")
    before = agrees(live, plain_store, before)
    assert live.scan().loaded_collections()["brand_new"] == 1
    shutil.rmtree(new)
    before = agrees(live, plain_store, before)
    os.rename(plain_store / damage.MEMORIES, plain_store / "0badc0de")   # name mismatch, by a rename
    agrees(live, plain_store, before)


def test_an_update_looks_only_at_the_changed_files(plain_store, monkeypatch):
    """The cost of a change is the change: one decode per changed file, no listing of its folder."""
    live = LiveScan(plain_store)
    live.build()
    from guardian.store import scan as scan_module

    decoded, listed = [], []
    real_verify, real_read = scan_module.verify_document, scan_module.FolderListing.read
    monkeypatch.setattr(scan_module, "verify_document", lambda path: decoded.append(path) or real_verify(path))
    monkeypatch.setattr(scan_module.FolderListing, "read", classmethod(
        lambda cls, path, *a, **k: listed.append(path) or real_read(path, *a, **k)))
    doc = next((plain_store / damage.MEMORIES).glob("1*.gob"))
    doc.write_bytes(b"")
    scan = live.update([str(doc.relative_to(plain_store))])
    assert not scan.loadable and scan.cause == str(doc.relative_to(plain_store))
    assert decoded == [str(doc)] and listed == []


def test_document_files_below_the_first_level_follow_every_change_as_scan_store_counts_them(plain_store):
    """contextd moving a collection to .quarantine/<hash>/, then changes deeper than chromem reads (the
    health part hands over the sub-folder of a collection folder for each): the live scan counts the
    hidden documents as scan_store does."""
    live = LiveScan(plain_store, False)
    live.build()
    before = entries(plain_store)
    (plain_store / "40917930" / "00000000.gob").unlink()
    (plain_store / ".quarantine").mkdir()
    (plain_store / "40917930").rename(plain_store / ".quarantine" / "40917930")
    before = agrees(live, plain_store, before, False)
    assert live.scan().hidden_documents == 40   # every document of webapp_memories
    moved = plain_store / ".quarantine" / "40917930"
    deeper = moved / "older" / "copy"
    deeper.mkdir(parents=True)
    doc = next(moved.glob("[!0]*.gob"))
    shutil.copy(doc, deeper / doc.name)
    got = live.update([".quarantine/40917930"])
    assert verdict(got) == verdict(scan_store(plain_store, False)) and got.hidden_documents == 41
    shutil.copy(doc, plain_store / "655f126a" / "old.gob")   # beside a healthy collection's files: chromem reads it
    (plain_store / "655f126a" / "keep").mkdir()                 # below it: chromem does not
    shutil.copy(doc, plain_store / "655f126a" / "keep" / doc.name)
    before = agrees(live, plain_store, before, False)
    assert live.scan().hidden_documents == 42
    shutil.rmtree(deeper.parent)
    got = live.update([".quarantine/40917930/older"])
    assert verdict(got) == verdict(scan_store(plain_store, False)) and got.hidden_documents == 41
    shutil.rmtree(plain_store / "655f126a" / "keep")
    agrees(live, plain_store, before, False)
    assert live.scan().hidden_documents == 40
