"""`guardian export`: every document as JSON Lines, equal to what chromem loads (contents.json)."""

from __future__ import annotations

import json
import os

import numpy as np


def expected_documents(contents, collection=None):
    return {(c["name"], d["id"]): d for c in contents["collections"] for d in c["documents"]
            if collection in (None, c["name"])}


def check_lines(lines, want):
    got = {}
    for line in lines:
        record = json.loads(line)
        assert set(record) == {"collection", "id", "content", "metadata", "embedding"}
        got[(record["collection"], record["id"])] = record
    assert set(got) == set(want)
    for key, doc in want.items():
        record = got[key]
        assert record["content"] == doc["content"] and record["metadata"] == doc["metadata"]
        assert np.array_equal(np.array(record["embedding"], dtype=np.float32),
                              np.array(doc["embedding"], dtype=np.float32))


def test_export_everything_equals_contents_json(cli, any_store, contents):
    proc = cli("export", "--store", str(any_store))
    assert proc.returncode == 0
    check_lines(proc.stdout_text.splitlines(), expected_documents(contents))


def test_export_one_collection_to_a_file(cli, plain_store, contents, tmp_path):
    out = tmp_path / "checkpoints.jsonl"
    proc = cli("export", "--store", str(plain_store), "--collection", "checkpoints", "--output", str(out))
    assert proc.returncode == 0 and proc.stdout == b""
    assert os.stat(out).st_mode & 0o777 == 0o600
    check_lines(out.read_text().splitlines(), expected_documents(contents, "checkpoints"))


def test_unknown_collection_is_a_usage_error_listing_the_known_ones(cli, plain_store):
    proc = cli("export", "--store", str(plain_store), "--collection", "nope")
    assert proc.returncode == 2 and "webapp_memories" in proc.stderr_text


def test_unreadable_documents_are_skipped_with_a_warning(cli, plain_store, contents):
    (plain_store / "40917930" / "5628d2e7.gob").write_bytes(b"")
    proc = cli("export", "--store", str(plain_store), "--collection", "webapp_memories")
    assert proc.returncode == 0 and "skipped" in proc.stderr_text
    assert len(proc.stdout_text.splitlines()) == 39


def test_export_into_a_fifo_writes_into_it_and_never_replaces_it(cli, plain_store, tmp_path):
    """An existing non-regular output (a FIFO here; /dev/null, /dev/stdout alike) is written into as
    it is: renaming a temp file over it would, for /dev/null as root, break the whole machine."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    proc = cli("export", "--store", str(plain_store), "-o", str(fifo), timeout=120)
    assert proc.returncode == 0, proc.stderr_text
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)          # still the FIFO, not a regular file
    reader.join(timeout=60)
    lines = got[0].decode().splitlines() if got else []
    assert len(lines) == 90 and all(json.loads(line)["id"] for line in lines)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".guardian-tmp")]


def test_export_to_a_folder_is_one_line(cli, plain_store, tmp_path):
    proc = cli("export", "--store", str(plain_store), "-o", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr_text.startswith(f"error: --output {tmp_path} is a folder")


def test_export_onto_a_full_disk_is_a_failure_that_leaves_no_partial_file(cli, plain_store, tmpfs):
    disk = tmpfs("small", "16k")
    proc = cli("export", "--store", str(plain_store), "-o", str(disk / "out.jsonl"))
    assert proc.returncode == 5, proc.stderr_text        # ExitCode.FAILED, not an internal error (70)
    assert proc.stderr_text.startswith(f"error: cannot write --output {disk / 'out.jsonl'}: No space left")
    assert "no partial file was left" in proc.stderr_text and os.listdir(disk) == []


def test_export_into_a_missing_folder_is_a_usage_error(cli, plain_store, tmp_path):
    proc = cli("export", "--store", str(plain_store), "-o", str(tmp_path / "nowhere" / "out.jsonl"))
    assert proc.returncode == 2 and proc.stderr_text.count("\n") == 1
    assert "No such file or directory" in proc.stderr_text and "create its folder" in proc.stderr_text
