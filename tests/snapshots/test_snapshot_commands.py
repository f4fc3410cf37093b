"""The snapshot commands through the real CLI (subprocesses)."""

import json

from guardian.snapshots.repository import Repository
from guardian.local.paths import StatePaths

from tests.snapshots.conftest import age_files, damage_blob, tree_bytes


def test_snapshot_list_restore_verify(any_store, cli, state_dir):
    age_files(any_store)
    store = str(any_store)
    original = tree_bytes(any_store)
    taken = cli("snapshot", "--store", store, "--json")
    assert taken.returncode == 0, taken.stderr_text
    info = json.loads(taken.stdout_text)
    assert info["files"] == len(original) and info["new_bytes"] > 0 and info["documents"] == 90
    human = cli("snapshot", "--store", store)
    assert human.returncode == 0 and "0 read" in human.stdout_text

    listed = json.loads(cli("snapshots", "--store", store, "--json").stdout_text)
    assert [row["id"] for row in listed][0] == info["id"] and len(listed) == 2
    assert listed[0]["documents"] == 90 and "checkpoints" in listed[0]["collections"]
    assert listed[1]["new_bytes"] < listed[0]["new_bytes"]
    table = cli("snapshots", "--store", store).stdout_text
    assert info["id"] in table and "DOCS" in table
    assert max(len(line) for line in table.splitlines()) <= 80  # fits an 80-column terminal

    doc = next(p for p in any_store.glob("*/*") if not p.name.startswith("00000000"))
    doc.write_bytes(b"broken")
    refused = cli("restore", "--store", store, "--at", "latest")
    assert refused.returncode == 2 and "--force" in refused.stderr_text   # refused: the request must change
    assert len(refused.stderr_text.strip().splitlines()) == 1 and doc.read_bytes() == b"broken"

    dry = json.loads(cli("restore", "--store", store, "--at", "latest", "--dry-run", "--json").stdout_text)
    assert dry["counts"]["replace"] == 1 and dry["dry_run"] and doc.read_bytes() == b"broken"

    done = cli("restore", "--store", store, "--at", "latest", "--force", "--json")
    assert done.returncode == 0, done.stderr_text
    result = json.loads(done.stdout_text)
    assert result["loadable"] is True and len(result["quarantine_entries"]) == 1
    assert tree_bytes(any_store) == original

    verified = cli("verify", "--store", store, "--deep", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout_text)["ok"] is True


def test_bad_time_and_too_early_are_one_line(plain_store, cli):
    store = str(plain_store)
    bad = cli("restore", "--store", store, "--at", "yesterday")
    assert bad.returncode == 2 and bad.stderr_text.count("\n") == 1 and "90m" in bad.stderr_text
    none = cli("restore", "--store", store, "--at", "latest")
    assert none.returncode == 2 and "guardian snapshot" in none.stderr_text
    cli("snapshot", "--store", store, check=True)
    early = cli("restore", "--store", store, "--at", "2001-01-01T00:00:00Z")
    assert early.returncode == 2 and "first one is from" in early.stderr_text


def test_verify_exit_code_names_damaged_snapshot(plain_store, cli, state_dir):
    store = str(plain_store)
    snap = json.loads(cli("snapshot", "--store", store, "--json", check=True).stdout_text)
    repo = Repository(StatePaths.for_store(plain_store, state_dir).snapshots)
    digest = repo.read_manifest(snap["id"]).files[0].hash
    damage_blob(repo, digest)
    out = cli("verify", "--store", store)
    assert out.returncode == 1 and snap["id"] in out.stdout_text and digest[:12] in out.stdout_text


def test_snapshot_prune_applies_retention(plain_store, cli):
    store = str(plain_store)
    for _ in range(3):
        cli("snapshot", "--store", store, check=True)
    no_continuous = {"GUARDIAN_KEEP_LAST": "2", "GUARDIAN_KEEP_HOURLY": "0", "GUARDIAN_KEEP_WITHIN_MINUTES": "0"}
    out = cli("snapshot", "--store", store, "--prune", "--json", env=no_continuous)
    assert len(json.loads(out.stdout_text)["prune"]["forgotten"]) == 2
    assert len(json.loads(cli("snapshots", "--store", store, "--json").stdout_text)) == 2


def test_snapshot_of_a_damaged_store_says_so_and_restore_brings_back_the_good_copy(plain_store, cli):
    from tests.snapshots.conftest import tree_bytes

    assert cli("snapshot", "--store", str(plain_store)).returncode == 0
    original = tree_bytes(plain_store)
    doc = next(plain_store.glob("*/1*.gob"))
    doc.write_bytes(b"")
    out = cli("snapshot", "--store", str(plain_store))
    assert out.returncode == 1
    assert f"DAMAGED (chromem would refuse it: empty; the previous good copy stays the one restored): " \
           f"{doc.parent.name}/{doc.name}" in out.stdout_text
    listed = json.loads(cli("snapshot", "--store", str(plain_store), "--json").stdout_text)
    assert listed["damaged"] == [{"path": f"{doc.parent.name}/{doc.name}", "reason": "empty"}]
    restored = cli("restore", "--store", str(plain_store), "--at", "latest", "--force")
    assert restored.returncode == 0, restored.stderr_text
    assert tree_bytes(plain_store) == original
