"""restore --at <snapshot id>, restore --target DIR, quarantine restore --replace, the dry-run
wording of a lost document, and install resolving the child command: real CLI, real files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from guardian.errors import ExitCode
from tests import damage
from tests.conftest import chromem_load

# many real CLI processes per test: a deadline for a hang, not a speed goal (CI is a loaded 2-core box)
pytestmark = pytest.mark.timeout(900)


def age(store: Path, seconds: float = 3600) -> None:
    """Settle every file (guardian judges only files that stopped changing)."""
    past = time.time() - seconds
    for path in store.rglob("*"):
        os.utime(path, (past, past), follow_symlinks=False)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def two_snapshots(cli, store: Path) -> list[str]:
    first = json.loads(cli("snapshot", "--store", str(store), "--json", check=True).stdout_text)["id"]
    (store / "40917930" / "extra.gob").write_bytes((store / "40917930").joinpath(
        sorted(p.name for p in (store / "40917930").iterdir() if p.name != "00000000.gob")[0]).read_bytes())
    second = json.loads(cli("snapshot", "--store", str(store), "--json", check=True).stdout_text)["id"]
    return [first, second]


def test_restore_at_a_snapshot_id_from_the_listing(cli, plain_store):
    first, second = two_snapshots(cli, plain_store)
    listed = cli("snapshots", "--store", str(plain_store), check=True).stdout_text
    assert first in listed and second in listed              # the ids the listing prints ...
    proc = cli("restore", "--at", first, "--force", "--json", "--store", str(plain_store))
    assert proc.returncode == 0, proc.stderr_text              # ... are what --at takes
    assert json.loads(proc.stdout_text)["snapshot"] == first
    assert not (plain_store / "40917930" / "extra.gob").exists()   # moved to quarantine, not deleted
    unknown = cli("restore", "--at", first[:-1] + "0" if first[-1] != "0" else first[:-1] + "1",
                  "--dry-run", "--store", str(plain_store))
    assert unknown.returncode == 2 and "there is no snapshot" in unknown.stderr_text
    assert "guardian snapshots" in unknown.stderr_text


def test_restore_into_a_target_leaves_the_store_alone(cli, plain_store, tmp_path, chromemh):
    first, _ = two_snapshots(cli, plain_store)
    before = tree(plain_store)
    target = tmp_path / "restored"
    proc = cli("restore", "--at", first, "--target", str(target), "--store", str(plain_store))
    assert proc.returncode == 0, proc.stderr_text
    assert "the store was not touched" in proc.stdout_text and f"chromem will load {target}: yes" in proc.stdout_text
    assert tree(plain_store) == before                        # the store is exactly as it was
    expected = {k: v for k, v in before.items() if k != "40917930/extra.gob"}
    assert tree(target) == expected                           # the snapshot, byte for byte
    assert chromem_load(chromemh, target)["ok"]               # the real loader agrees
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".guardian")]  # no staging left


def test_restore_target_one_collection_and_refusals(cli, plain_store, tmp_path):
    cli("snapshot", "--store", str(plain_store), check=True)
    one = tmp_path / "one"
    proc = cli("restore", "--at", "latest", "--collection", "checkpoints", "--target", str(one), "--json",
               "--store", str(plain_store))
    assert proc.returncode == 0, proc.stderr_text
    assert [p.name for p in one.iterdir()] == ["6c7f5464"] and json.loads(proc.stdout_text)["loadable"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    for target, words in ((busy, "not empty"), (plain_store / "sub", "overlaps the store")):
        refused = cli("restore", "--at", "latest", "--target", str(target), "--store", str(plain_store))
        assert refused.returncode == 2 and words in refused.stderr_text   # refused, not failed
        assert len(refused.stderr_text.strip().splitlines()) == 1
    assert (busy / "mine.txt").read_text() == "keep me" and not (plain_store / "sub").exists()
    dry = cli("restore", "--at", "latest", "--target", str(tmp_path / "dry"), "--dry-run", "--store", str(plain_store))
    assert dry.returncode == 0 and "would write" in dry.stdout_text and not (tmp_path / "dry").exists()


def test_quarantine_restore_replace_moves_the_current_one_first(cli, plain_store, state_dir):
    from guardian.local.paths import StatePaths
    from guardian.local.quarantine import Quarantine

    doc = sorted(p for p in (plain_store / "40917930").iterdir() if p.name != "00000000.gob")[0]
    rel = str(doc.relative_to(plain_store))
    original = doc.read_bytes()
    entry = Quarantine(StatePaths.for_store(plain_store, state_dir)).put(plain_store, rel, "test")
    doc.write_bytes((plain_store / "40917930").joinpath(
        sorted(p.name for p in (plain_store / "40917930").iterdir() if p.name != "00000000.gob")[0]).read_bytes())
    newer = doc.read_bytes()
    soon = time.time() + 3600   # "just written" however slow the CLI starts (an mtime ahead of now counts as fresh)
    os.utime(doc, (soon, soon))
    busy = cli("quarantine", "restore", entry.id, "--replace", "--store", str(plain_store))
    assert busy.returncode != 0 and "may be being written" in busy.stderr_text   # just written: left alone
    assert doc.read_bytes() == newer
    age(plain_store)
    refused = cli("quarantine", "restore", entry.id, "--store", str(plain_store))
    assert refused.returncode != 0 and "--replace" in refused.stderr_text   # the hint names a real option
    done = cli("quarantine", "restore", entry.id, "--replace", "--store", str(plain_store))
    assert done.returncode == 0, done.stderr_text
    assert doc.read_bytes() == original
    listed = json.loads(cli("quarantine", "list", "--json", "--store", str(plain_store)).stdout_text)
    [kept] = [e for e in listed if e["id"] != entry.id]
    assert kept["original_path"] == rel and kept["state"] == "quarantined"
    assert Path(kept["folder"], "payload", rel).read_bytes() == newer   # nothing lost: it is in quarantine


def test_dry_run_says_a_lost_document_would_be_quarantined(cli, plain_store):
    damage.truncated_document(plain_store, False)
    age(plain_store)
    dry = cli("check", "--repair", "--dry-run", "--store", str(plain_store))
    assert "LOST DOCUMENT" in dry.stdout_text, dry.stdout_text
    assert "would be moved to quarantine" in dry.stdout_text and "is in quarantine" not in dry.stdout_text
    done = cli("check", "--repair", "--store", str(plain_store))
    assert "is in quarantine" in done.stdout_text


def test_install_resolves_the_child_now_and_the_unit_carries_path(cli, tmp_path, plain_store):
    bindir = tmp_path / "go" / "bin"
    bindir.mkdir(parents=True)
    tool = bindir / "contextd-test-tool"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": "", "PATH": f"{bindir}:{os.environ['PATH']}",
           "GUARDIAN_STATE_DIR": "", "XDG_STATE_HOME": ""}   # the default state dir (the test's is in /tmp)
    proc = cli("install", "--systemd", "--dry-run", "--store", str(plain_store), "--", "contextd-test-tool", "--mcp",
               env=env)
    assert proc.returncode == 0, proc.stderr_text
    assert f"resolved now to {tool}" in proc.stderr_text
    exec_start = next(line for line in proc.stdout_text.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(f"-- {tool} --mcp")
    assert f"Environment=\"PATH={bindir}:" in proc.stdout_text or f"Environment=PATH={bindir}:" in proc.stdout_text
    missing = cli("install", "--systemd", "--dry-run", "--store", str(plain_store), "--", "no-such-tool-xyz",
                  env=env)
    assert missing.returncode == ExitCode.NOT_RUNNABLE and "not on this shell's PATH" in missing.stderr_text


def test_verify_deep_says_what_it_restored_and_loaded(cli, plain_store):
    cli("snapshot", "--store", str(plain_store), check=True)
    plain = cli("verify", "--store", str(plain_store))
    deep = cli("verify", "--deep", "--store", str(plain_store))
    assert plain.returncode == deep.returncode == 0, deep.stderr_text
    assert plain.stdout_text != deep.stdout_text
    assert "1 restored and checked" in deep.stdout_text
    line = next(x for x in deep.stdout_text.splitlines() if "restored 95 files" in x)
    assert "chromem would load it: 5 collections, 90 documents" in line
    data = json.loads(cli("verify", "--deep", "--json", "--store", str(plain_store)).stdout_text)
    [report] = data["deep"].values()
    assert report["restored_files"] == 95 and report["documents"] == 90 and report["loadable"] is True


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "full"])
def test_restore_into_an_unwritable_target_is_one_line(cli, plain_store, tmpfs, read_only):
    disk = tmpfs("disk", "1m" if read_only else "64k", read_only=read_only)
    cli("snapshot", "--store", str(plain_store), check=True)
    proc = cli("restore", "--at", "latest", "--target", str(disk / "restored"), "--store", str(plain_store))
    lines = proc.stderr_text.strip().splitlines()
    # a read-only disk is a target to change (2); a full one, a write that failed (5)
    assert proc.returncode == (2 if read_only else 5) and len(lines) == 1, proc.stderr_text
    assert lines[0].startswith(f"error: cannot write into {disk}") and "was not created" in lines[0]
    assert os.listdir(disk) == []          # no target, no staging folder left
