"""The incident replayed under a real `guardian run`: a collection's metadata file deleted while it
watches, continuous capture snapshots that moment, live repair puts the file back. Afterwards every
snapshot taken must restore, in place and into a new folder, to a store the real chromem loads whole."""

from __future__ import annotations

import pytest

from guardian.snapshots.manifest import FLAG_ABSENT
from guardian.snapshots.repository import Repository
from tests.conftest import chromem_load, run_cli
from tests.runtime.live_helpers import Guardian
from tests.waiting import wait_until

DEADLINE = 90.0
VICTIM = "40917930"   # webapp_memories in the fixture store: 40 documents


def collections_loaded(chromemh, store) -> dict | str:
    verdict = chromem_load(chromemh, store)
    return {name: c["count"] for name, c in verdict["collections"].items()} if verdict["ok"] else verdict["error"]


def good_metadata(rows: dict, rel: str, digest: str) -> bool:
    entry = rows.get(rel)
    return entry is not None and entry.hash == digest and not entry.damaged


@pytest.mark.slow(40)
def test_every_snapshot_of_a_replayed_incident_restores_in_full(plain_store, tmp_path, chromemh):
    expected = collections_loaded(chromemh, plain_store)
    metadata = plain_store / VICTIM / "00000000.gob"
    rel = f"{VICTIM}/00000000.gob"
    good = metadata.read_bytes()
    # live repair waits 5 s for the store to settle, continuous capture 0.2 s after the last change: the
    # deletion is snapshotted before its repair (the window in which the incident was captured)
    g = Guardian(plain_store, tmp_path, extra_env={"GUARDIAN_SETTLE_SECONDS": "5", "GUARDIAN_CAPTURE_QUIET_SECONDS":
                                                   "0.2", "GUARDIAN_CAPTURE_MAX_WAIT_SECONDS": "1"}).wait_ready()
    try:
        assert wait_until(lambda: rel in g.newest_rows(), timeout=DEADLINE)
        digest = g.newest_rows()[rel].hash
        metadata.unlink()
        assert wait_until(lambda: metadata.is_file() and metadata.read_bytes() == good, timeout=DEADLINE), \
            "live repair did not put the metadata back"
        assert wait_until(lambda: good_metadata(g.newest_rows(), rel, digest), timeout=DEADLINE), \
            "the repaired metadata was not captured"
    finally:
        g.stop()
    repo = Repository(g.paths.snapshots)
    ids = repo.list_ids()
    window = [i for i in ids if not good_metadata({e.path: e for e in repo.read_manifest(i).files}, rel, digest)]
    in_full = 0
    for number, snapshot_id in enumerate(ids):
        target = tmp_path / f"restored-{number}"
        done = run_cli("restore", "--store", str(plain_store), "--at", snapshot_id, "--target", str(target),
                       env=g.env)
        from_target = collections_loaded(chromemh, target) if done.returncode == 0 else done.stdout_text
        metadata.unlink(missing_ok=True)   # the incident again, then a restore in place
        done = run_cli("restore", "--store", str(plain_store), "--at", snapshot_id, "--force", env=g.env)
        in_place = collections_loaded(chromemh, plain_store)
        in_full += from_target == expected and in_place == expected and done.returncode == 0
    print(f"incident replay: {in_full} of {len(ids)} snapshots restore in full "
          f"({len(window)} taken between the deletion and its repair)")
    assert window, "no snapshot was taken between the deletion and its repair"
    for snapshot_id in window:   # each holds the metadata's last good copy, flagged
        kept = {e.path: e for e in repo.read_manifest(snapshot_id).files}.get(rel)
        assert kept is not None and kept.flags & FLAG_ABSENT and kept.hash == digest
    assert in_full == len(ids)
