"""`guardian check` through the real CLI: verdicts, exit codes, JSON shape, cache, bad input."""

from __future__ import annotations

import json
import shutil

from tests import damage


def test_healthy_store_exits_0_with_a_table(cli, plain_store):
    proc = cli("check", "--store", str(plain_store))
    assert proc.returncode == 0
    for name in ("webapp_memories", "checkpoints", "contextd_default", "alice_webapp_codebase"):
        assert name in proc.stdout_text
    assert "chromem will load this store; no problems found" in proc.stdout_text


def test_warnings_exit_1_and_refusal_exits_3(cli, plain_store):
    damage.duplicate_name(plain_store, False)
    warned = cli("check", "--store", str(plain_store))
    assert warned.returncode == 1 and "duplicate_name" in warned.stdout_text
    shutil.rmtree(plain_store / "1dup1dup")
    damage.empty_document(plain_store, False)
    refused = cli("check", "--store", str(plain_store))
    assert refused.returncode == 3
    assert "WOULD REFUSE" in refused.stdout_text and "40917930/5628d2e7.gob" in refused.stdout_text


def test_json_names_collections_and_problems_with_hints(cli, gz_store, verdicts):
    damage.missing_metadata(gz_store, True)
    proc = cli("check", "--store", str(gz_store), "--json")
    assert proc.returncode == 3
    data = json.loads(proc.stdout_text)
    assert data["loadable"] is False and data["compress"] is True
    assert data["error"] == verdicts["gz/missing_metadata"]["chromem_error"]
    assert data["cause"] == "40917930/00000000.gob.gz"
    assert {"name", "dir", "status", "documents"} <= set(data["collections"][0])
    problem = next(p for p in data["problems"] if p["kind"] == "metadata_missing")
    assert problem["path"] == "40917930/00000000.gob.gz" and problem["hint"] and problem["detail"]


def test_second_check_uses_the_verified_cache_in_the_state_dir(cli, plain_store, state_dir):
    assert cli("check", "--store", str(plain_store)).returncode == 0
    caches = list(state_dir.rglob("check/index.json"))
    assert len(caches) == 1
    assert not any(p.is_relative_to(plain_store) for p in state_dir.rglob("*"))
    assert not list(plain_store.rglob("*.json"))  # nothing of guardian's inside the store
    assert cli("check", "--store", str(plain_store)).returncode == 0


def test_not_a_folder_is_a_one_line_usage_error(cli, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    proc = cli("check", "--store", str(path))
    assert proc.returncode == 2
    assert len(proc.stderr_text.strip().splitlines()) == 1 and "not a folder" in proc.stderr_text


def test_repair_leaves_a_file_being_written_alone_and_says_so(cli, plain_store, tmp_path):
    """A contextd mid-write (truncated, not written yet): `check --repair` must not put the snapshot
    copy over it - that write would be lost - and says the file is being written, not that a repair failed."""
    from tests.paused_writer import PausedWriter, updated_document

    assert cli("snapshot", "--store", str(plain_store)).returncode == 0
    doc = sorted(plain_store.glob("40917930/[!0]*.gob"))[0]
    update = updated_document(doc.read_bytes(), "the write in progress")
    writer = PausedWriter(doc, tmp_path)
    try:
        proc = cli("check", "--repair", "--store", str(plain_store))
        assert proc.returncode == 3 and doc.read_bytes() == b""
        assert f"BEING WRITTEN 40917930/{doc.name}" in proc.stdout_text and "FAILED" not in proc.stdout_text
        writer.write(update)
    finally:
        writer.stop()
    assert doc.read_bytes() == update
    assert cli("check", "--store", str(plain_store)).returncode == 0
