"""Document files chromem never reads are found at any depth and counted: contextd's own .quarantine,
nested folders, hostile trees (symlinks, loops, depth, size) - on stores written by the real chromem."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from guardian.store import hidden
from guardian.store.live_scan import LiveScan
from guardian.store.scan import scan_store
from tests.conftest import chromem_load, run_cli
from tests.contextd_recovery import resilient_load

MEMORIES = "40917930"   # webapp_memories: 40 documents


def kinds(scan) -> list[tuple[str, str, int]]:
    return [(p.kind, p.path, p.documents) for p in scan.problems if p.kind.startswith("hidden")]


def test_contextd_moving_a_collection_aside_is_a_warning_with_every_document_counted(plain_store, chromemh, cli):
    (plain_store / MEMORIES / "00000000.gob").unlink()              # the incident: a metadata file gone
    moved, verdict = resilient_load(chromemh, plain_store)         # contextd starts anyway...
    assert moved == [MEMORIES] and verdict["ok"] is True
    assert "webapp_memories" not in verdict["collections"]        # ...without that collection's 40 memories
    done = cli("check", "--store", str(plain_store), "--json")
    report = json.loads(done.stdout_text)
    assert done.returncode == 1 and report["loadable"] is True     # was 0, "no problems found"
    assert report["hidden_documents"] == 40
    problem = next(p for p in report["problems"] if p["kind"] == "hidden_documents")
    assert problem["path"] == f".quarantine/{MEMORIES}" and problem["documents"] == 40
    assert "contextd" in problem["detail"] and problem["severity"] == "warning"
    text = cli("check", "--store", str(plain_store)).stdout_text
    assert "40 document file(s) in it will not load" in text


def test_every_depth_is_counted_and_symlinks_are_never_followed(plain_store, tmp_path):
    source = plain_store / MEMORIES
    files = sorted(p.name for p in source.iterdir() if p.name != "00000000.gob")
    deep = plain_store / "backup" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    for name in files[:3]:
        shutil.copy(source / name, deep / name)
    inside = source / "old"                                           # below a healthy collection folder
    inside.mkdir()
    shutil.copy(source / files[4], inside / files[4])
    shutil.copy(source / "00000000.gob", inside / "00000000.gob")    # a metadata file is no document
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in files[5:9]:
        shutil.copy(source / name, outside / name)
    (plain_store / "backup" / "link").symlink_to(outside)            # never followed
    (deep / "loop").symlink_to(plain_store / "backup")               # nor this loop
    os.symlink(source / files[0], deep.parent / "linked.gob")        # a symlinked file is not counted either
    scan = scan_store(plain_store)
    assert kinds(scan) == [("hidden_documents", f"{MEMORIES}/old", 1), ("hidden_documents", "backup/a/b/c", 3)]
    assert scan.hidden_documents == 4 and scan.loadable
    assert kinds(LiveScan(plain_store).build()) == kinds(scan)


def test_a_tree_too_deep_or_too_large_stops_the_walk_and_says_so(plain_store, monkeypatch):
    doc = next(p for p in (plain_store / MEMORIES).iterdir() if p.name != "00000000.gob")
    folder = plain_store / "deep"
    folder.mkdir()
    shutil.copy(doc, folder / doc.name)   # depth 1 of the root: chromem reads it (a stray folder)
    (folder / doc.name).unlink()
    path = folder
    for level in range(hidden.MAX_DEPTH + 2):
        path = path / f"d{level}"
    path.mkdir(parents=True)
    shutil.copy(doc, path / doc.name)
    scan = scan_store(plain_store)
    stopped = [p for p in scan.problems if p.kind == "hidden_walk_stopped"]
    assert len(stopped) == 1 and "levels deep" in stopped[0].detail and scan.exit_code() == 1
    monkeypatch.setattr(hidden, "MAX_ENTRIES", 10)
    wide = plain_store / "wide" / "sub"
    wide.mkdir(parents=True)
    for i in range(20):
        (wide / f"{i:08x}.gob").write_bytes(doc.read_bytes())
    scan = scan_store(plain_store)
    assert any(p.kind == "hidden_walk_stopped" and "more than 10 entries" in p.detail for p in scan.problems)


def test_a_bind_mount_looping_back_is_walked_once(plain_store, tmp_path):
    loop = plain_store / "backup" / "again"
    loop.mkdir(parents=True)
    done = os.system(f"mount --bind {plain_store} {loop} 2>/dev/null")
    if done != 0:
        pytest.skip("bind mounts are not allowed here")
    try:
        (plain_store / MEMORIES / "00000000.gob").rename(tmp_path / "meta")
        shutil.move(str(plain_store / MEMORIES), str(plain_store / "backup" / MEMORIES))
        scan = scan_store(plain_store)
        assert kinds(scan) == [("hidden_documents", f"backup/{MEMORIES}", 40)]
    finally:
        os.system(f"umount -l {loop}")


def test_status_and_metrics_count_them_from_disk_and_live(plain_store, chromemh, state_dir, tmp_path):
    from tests.commands.test_serve_cmd import start_serve, stop
    from tests.waiting import wait_until
    import urllib.request

    proc, url = start_serve(plain_store, tmp_path)
    try:
        def metric() -> str:
            text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
            return next(line for line in text.splitlines() if line.startswith("guardian_hidden_documents "))
        assert metric() == "guardian_hidden_documents 0.0"
        (plain_store / MEMORIES / "00000000.gob").unlink()
        resilient_load(chromemh, plain_store)                         # while guardian serve watches
        assert wait_until(lambda: metric() == "guardian_hidden_documents 40.0", timeout=60), metric()
        # a change deeper than chromem reads (in a folder made in place: inotify loses a folder renamed into
        # the watched tree now and then, watchdog's race, and the 10-minute rescan is the safety net there)
        (plain_store / ".quarantine" / "more").mkdir()
        shutil.copy(next((plain_store / ".quarantine" / MEMORIES).glob("[!0]*.gob")),
                    plain_store / ".quarantine" / "more" / "0badc0de.gob")
        assert wait_until(lambda: metric() == "guardian_hidden_documents 41.0", timeout=60), metric()
    finally:
        stop(proc)
    done = run_cli("status", "--store", str(plain_store), "--json", env={"GUARDIAN_STATE_DIR": str(state_dir)})
    status = json.loads(done.stdout)
    assert status["store"]["hidden_documents"] == 41 and done.returncode == 1
    assert any("41 document files" in w for w in status["warnings"])
    text = run_cli("status", "--store", str(plain_store), env={"GUARDIAN_STATE_DIR": str(state_dir)}).stdout_text
    assert "41 document files chromem does not load" in text
    assert chromem_load(chromemh, plain_store)["ok"]


def test_every_other_document_file_chromem_leaves_is_counted_and_warned(gz_store):
    """The other format beside a collection's files, a folder dropped for a duplicate name, the root itself."""
    doc = next(p for p in (gz_store / MEMORIES).iterdir() if p.name != "00000000.gob.gz")
    shutil.copy(doc, gz_store / MEMORIES / "0badc0de.gob")                   # plain in a gz store: ignored
    shutil.copy(doc, gz_store / "loose.gob.gz")                               # at the root: ignored
    shutil.copytree(gz_store / "6c7f5464", gz_store / "6c7f5465")            # same name, earlier folder dropped
    scan = scan_store(gz_store)
    counted = {p.kind: p.documents for p in scan.problems if p.documents}
    assert counted == {"other_format_file": 1, "stray_file": 1, "duplicate_name": 8}
    assert scan.hidden_documents == 10 and scan.exit_code() == 1
    assert all(p.severity == "warning" for p in scan.problems if p.documents)
