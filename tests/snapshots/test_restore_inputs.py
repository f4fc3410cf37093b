"""The incident window, on real files: a collection's metadata deleted, a snapshot taken before its
repair. Every snapshot must restore (in place and --target) to a store the real chromem loads."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from guardian.format.chromem import encode_collection
from guardian.local.paths import StatePaths
from guardian.snapshots import capture
from guardian.snapshots.manifest import FLAG_ABSENT, FLAG_DAMAGED
from guardian.snapshots.repository import Repository, new_snapshot_id
from guardian.snapshots.restore import restore_store
from guardian.snapshots.take import take_snapshot
from tests.conftest import chromem_load
from tests.snapshots.conftest import age_files, doc_bytes, drop_blob

VICTIM = "40917930"   # webapp_memories in the fixture store: 40 documents


def loaded(chromemh, store, compress=False) -> dict:
    """The real loader's verdict: collection name -> documents (the error when it refuses)."""
    verdict = chromem_load(chromemh, store, compress)
    assert verdict["ok"], verdict["error"]
    return {name: c["count"] for name, c in verdict["collections"].items()}


def row(paths, snapshot_id, rel):
    return next((e for e in Repository(paths.snapshots).read_manifest(snapshot_id).files if e.path == rel), None)


def restores_in_full(cli, paths, snapshot_id, target, chromemh, expected, compress=False) -> None:
    """--target, then in place over the store as the incident left it: the real loader finds all."""
    done = cli("restore", "--store", str(paths.store), "--at", snapshot_id, "--target", str(target))
    assert done.returncode == 0, done.stdout_text + done.stderr_text
    assert loaded(chromemh, target, compress) == expected
    metadata = paths.store / VICTIM / ("00000000.gob.gz" if compress else "00000000.gob")
    metadata.unlink(missing_ok=True)   # the incident again
    done = cli("restore", "--store", str(paths.store), "--at", snapshot_id, "--force")
    assert done.returncode == 0, done.stdout_text + done.stderr_text
    assert loaded(chromemh, paths.store, compress) == expected


def test_every_snapshot_of_the_incident_window_restores_in_full(plain_paths, clock, cli, chromemh, tmp_path):
    expected = loaded(chromemh, plain_paths.store)
    metadata = plain_paths.store / VICTIM / "00000000.gob"
    rel = f"{VICTIM}/00000000.gob"
    good = metadata.read_bytes()
    before = take_snapshot(plain_paths, clock=clock)
    metadata.unlink()                                   # the incident
    clock.advance(seconds=1)
    continuous = take_snapshot(plain_paths, clock=clock, changed={rel}, baseline=before.baseline)
    clock.advance(seconds=1)
    hourly = take_snapshot(plain_paths, clock=clock)    # the full walk
    metadata.write_bytes(good)                          # its live repair
    clock.advance(seconds=1)
    repaired = take_snapshot(plain_paths, clock=clock, changed={rel}, baseline=hourly.baseline)
    assert continuous.incremental and (rel, "missing while the collection's documents remain") in continuous.damaged
    for window in (continuous, hourly):
        kept = row(plain_paths, window.id, rel)
        assert kept is not None and kept.flags == FLAG_DAMAGED | FLAG_ABSENT
        assert kept.hash == row(plain_paths, before.id, rel).hash
        header = Repository(plain_paths.snapshots).read_header(window.id)
        assert {c.dir: c.name for c in header.collections}[VICTIM] == "webapp_memories"
    assert not row(plain_paths, repaired.id, rel).flags & (FLAG_DAMAGED | FLAG_ABSENT)
    for number, taken in enumerate((before, continuous, hourly, repaired)):
        restores_in_full(cli, plain_paths, taken.id, tmp_path / f"target-{number}", chromemh, expected)


def write_prefix_snapshot(paths, source_id: str, moment) -> str:
    """A copy of snapshot ``source_id`` as guardian wrote the incident window before this fix: no row
    for the victim's metadata, its header without metadata or name. Returns its id."""
    repo = Repository(paths.snapshots)
    manifest = repo.read_manifest(source_id)
    manifest.files = [e for e in manifest.files if not e.path.startswith(f"{VICTIM}/00000000.")]
    manifest.collections = [dataclasses.replace(c, name=None, metadata_hash=None) if c.dir == VICTIM else c
                            for c in manifest.collections]
    manifest.time, manifest.id = moment, new_snapshot_id(moment)
    repo.write_manifest(manifest)
    return manifest.id


def test_a_snapshot_taken_before_the_fix_restores_with_the_metadata_of_another(plain_paths, clock, cli, chromemh,
                                                                              tmp_path):
    expected = loaded(chromemh, plain_paths.store)
    good = take_snapshot(plain_paths, clock=clock)
    old_style = write_prefix_snapshot(plain_paths, good.id, clock.advance(minutes=1))
    # the incident before guardian's first snapshot: only a newer snapshot holds the metadata
    first = write_prefix_snapshot(plain_paths, good.id, good.time - timedelta(minutes=1))
    for snapshot_id in (old_style, first):
        dry = cli("restore", "--store", str(plain_paths.store), "--at", snapshot_id, "--dry-run", "--target",
                  str(tmp_path / "never"))
        assert f"{VICTIM}/00000000.gob: the snapshot holds no good copy of it; the one restored is from snapshot " \
               f"{good.id}" in dry.stdout_text
        restores_in_full(cli, plain_paths, snapshot_id, tmp_path / snapshot_id, chromemh, expected)
    assert not (tmp_path / "never").exists()
    # the next full snapshot of the incident, after such a snapshot: the copy an older header names
    (plain_paths.store / VICTIM / "00000000.gob").unlink()
    clock.advance(minutes=5)
    later = take_snapshot(plain_paths, clock=clock)
    assert row(plain_paths, later.id, f"{VICTIM}/00000000.gob").hash == row(plain_paths, good.id,
                                                                           f"{VICTIM}/00000000.gob").hash


def test_with_no_copy_anywhere_a_known_name_rebuilds_the_metadata_else_the_collection_is_left_out(
        plain_paths, clock, cli, chromemh, tmp_path):
    assert cli("check", "--store", str(plain_paths.store)).returncode == 0   # guardian sees the names once
    expected = loaded(chromemh, plain_paths.store)
    (plain_paths.store / VICTIM / "00000000.gob").unlink()
    first = take_snapshot(plain_paths, clock=clock)       # no good copy of its metadata anywhere
    assert row(plain_paths, first.id, f"{VICTIM}/00000000.gob").hash is None
    done = cli("restore", "--store", str(plain_paths.store), "--at", first.id, "--target", str(tmp_path / "named"))
    assert done.returncode == 0 and "rebuilt with the name 'webapp_memories'" in done.stdout_text
    assert loaded(chromemh, tmp_path / "named") == expected
    plain_paths.catalog_file.unlink()                     # a new machine: no name known
    done = cli("restore", "--store", str(plain_paths.store), "--at", first.id, "--target", str(tmp_path / "t"),
               "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout_text)["left_out"] == [{"folder": VICTIM, "documents": 40}]
    assert loaded(chromemh, tmp_path / "t") == {n: c for n, c in expected.items() if n != "webapp_memories"}
    dry = cli("restore", "--store", str(plain_paths.store), "--at", first.id, "--dry-run")
    assert f"left out {VICTIM}/: 40 documents" in dry.stdout_text
    done = cli("restore", "--store", str(plain_paths.store), "--at", first.id, "--force")
    assert done.returncode == 0 and not (plain_paths.store / VICTIM).exists()
    assert loaded(chromemh, plain_paths.store) == {n: c for n, c in expected.items() if n != "webapp_memories"}
    listed = cli("quarantine", "list", "--store", str(plain_paths.store), "--json")
    assert VICTIM in [entry["original_path"] for entry in json.loads(listed.stdout_text)]   # nothing lost
    everything = cli("restore", "--store", str(plain_paths.store), "--at", first.id, "--allow-damaged",
                     "--target", str(tmp_path / "all"))
    assert everything.returncode == 3 and len(list((tmp_path / "all" / VICTIM).glob("*.gob"))) == 40


def test_a_capture_shared_with_worker_processes_keeps_the_metadata_too(store_paths, clock, monkeypatch, chromemh,
                                                                     tmp_path):
    compress = any(store_paths.store.glob("*/*.gob.gz"))
    name = "00000000.gob.gz" if compress else "00000000.gob"
    expected = loaded(chromemh, store_paths.store, compress)
    first = take_snapshot(store_paths, clock=clock)
    other = next(p.name for p in sorted(store_paths.store.iterdir()) if p.is_dir() and p.name != VICTIM)
    (store_paths.store / VICTIM / name).unlink()
    (store_paths.store / other / name).write_bytes(encode_collection("", None, compress))   # names nothing
    age_files(store_paths.store, 7200)   # every file read again: by worker processes
    monkeypatch.setattr(capture, "usable_cpus", lambda: 3)
    monkeypatch.setenv("GUARDIAN_TEST_PARALLEL_CHUNK", "5")   # the taker waits for its workers: they get chunks
    shared = []
    run = capture.ParallelCapture.run
    monkeypatch.setattr(capture.ParallelCapture, "run",
                        lambda self, files: shared.append(len(files)) or run(self, files))
    clock.advance(minutes=1)
    window = take_snapshot(store_paths, clock=clock)
    assert shared and shared[0] == window.read_files   # the capture shared with worker processes
    assert {path for path, _ in window.damaged} == {f"{VICTIM}/{name}", f"{other}/{name}"}
    for folder in (VICTIM, other):
        assert row(store_paths, window.id, f"{folder}/{name}").hash == row(store_paths, first.id,
                                                                          f"{folder}/{name}").hash
    target = tmp_path / "restored"
    target.mkdir()
    restore_store(StatePaths(store=target, root=store_paths.root), None, snapshot_id=window.id, check_load=False)
    assert loaded(chromemh, target, compress) == expected


def test_verify_tells_recorded_damage_from_a_broken_snapshot(plain_paths, clock, cli):
    metadata = plain_paths.store / VICTIM / "00000000.gob"
    take_snapshot(plain_paths, clock=clock)
    metadata.unlink()
    clock.advance(minutes=1)
    window = take_snapshot(plain_paths, clock=clock)
    old_style = write_prefix_snapshot(plain_paths, window.id, clock.advance(minutes=1))
    done = cli("verify", "--store", str(plain_paths.store), "--deep")
    assert done.returncode == 0, done.stdout_text
    assert "OK; 2 snapshot(s) faithfully recorded damage" in done.stdout_text
    assert f"snapshot {window.id} recorded {VICTIM}/00000000.gob: missing when snapshotted; a restore writes the " \
           "last good copy the snapshot kept" in done.stdout_text
    assert f"snapshot {old_style} recorded {VICTIM}/00000000.gob: not in the snapshot" in done.stdout_text
    assert "chromem would NOT load" not in done.stdout_text
    report = json.loads(cli("verify", "--store", str(plain_paths.store), "--json").stdout_text)
    assert report["ok"] and set(report["recorded_damage"]) == {window.id, old_style}
    repo = Repository(plain_paths.snapshots)
    doc = next(e for e in repo.read_manifest(window.id).files if e.path.startswith("6c7f5464/")
               and not e.path.endswith("/00000000.gob"))
    drop_blob(repo, doc.hash)   # a snapshot that is itself broken
    done = cli("verify", "--store", str(plain_paths.store))
    assert done.returncode == 1 and "PROBLEMS FOUND" in done.stdout_text


def test_restoring_the_collection_alone_writes_its_metadata(plain_paths, clock, cli, chromemh):
    expected = loaded(chromemh, plain_paths.store)
    before = take_snapshot(plain_paths, clock=clock)
    old_style = write_prefix_snapshot(plain_paths, before.id, clock.advance(minutes=1))
    (plain_paths.store / VICTIM / "00000000.gob").unlink()
    done = cli("restore", "--store", str(plain_paths.store), "--at", old_style, "--collection", "webapp_memories",
               "--force")
    assert done.returncode == 0, done.stdout_text + done.stderr_text
    assert loaded(chromemh, plain_paths.store) == expected


def test_the_window_snapshot_restores_in_full_from_a_replica_on_a_new_machine(plain_paths, clock, cli, chromemh,
                                                                              tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    expected = loaded(chromemh, plain_paths.store)
    rel = f"{VICTIM}/00000000.gob"
    before = take_snapshot(plain_paths, clock=clock)
    (plain_paths.store / rel).unlink()
    clock.advance(seconds=1)
    window = take_snapshot(plain_paths, clock=clock, changed={rel}, baseline=before.baseline)
    url = f"file://{tmp_path / 'backup-disk'}?encrypt=0"
    (tmp_path / "backup-disk").mkdir()
    assert cli("replicate", "--store", str(plain_paths.store), "--to", url).returncode == 0
    new_store = tmp_path / "new" / "vectorstore"
    done = cli("restore", "--from", url, "--at", window.id, "--store", str(new_store),
               env={"GUARDIAN_STATE_DIR": str(tmp_path / "new-state")})
    assert done.returncode == 0, done.stdout_text + done.stderr_text
    assert loaded(chromemh, new_store) == expected


def test_a_document_with_no_good_copy_in_its_snapshot_is_written_from_the_next_one(plain_paths, clock, chromemh):
    folder = plain_paths.store / VICTIM
    fresh = folder / "feedf00d.gob"
    take_snapshot(plain_paths, clock=clock)
    full = doc_bytes("fresh")
    fresh.write_bytes(full[:9])                  # cut in the middle of its first write: no good copy yet
    clock.advance(minutes=1)
    cut = take_snapshot(plain_paths, clock=clock)
    assert row(plain_paths, cut.id, f"{VICTIM}/{fresh.name}").hash is None
    fresh.write_bytes(full)
    clock.advance(minutes=1)
    written = take_snapshot(plain_paths, clock=clock)
    fresh.write_bytes(full[:9])                  # the store damaged again
    result = restore_store(plain_paths, None, snapshot_id=cut.id, confirm=None)
    assert result.plan.substituted == {f"{VICTIM}/{fresh.name}": f"snapshot {written.id}"}
    assert result.loadable and fresh.read_bytes() == full
    assert chromem_load(chromemh, plain_paths.store)["ok"]
