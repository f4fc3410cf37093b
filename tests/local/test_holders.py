"""Who holds a store file open, asked of the operating system (real processes, real descriptors)."""

from __future__ import annotations

import os
import sys

import pytest

from guardian.local.holders import holders_of, holders_under
from tests.waiting import wait_for

HOLDER = """
import os, sys, time
path, mode = sys.argv[1], sys.argv[2]
flags = {"w": os.O_WRONLY | os.O_TRUNC, "r": os.O_RDONLY}[mode]
fd = os.open(path, flags)
print("ready", flush=True)
sys.stdin.readline()   # hold until told (or until the test's end closes stdin)
"""


@pytest.fixture
def holding(ready_process):
    return lambda path, mode: ready_process([sys.executable, "-c", HOLDER, str(path), mode, "marker-arg"])


def test_a_writer_that_truncated_and_paused_is_found_with_its_command_line(tmp_path, holding):
    store = tmp_path / "store"
    (store / "abcd1234").mkdir(parents=True)
    doc = store / "abcd1234" / "0badc0de.gob"
    doc.write_bytes(b"old bytes")
    proc = holding(doc, "w")
    scan = holders_under(store)
    assert scan.complete
    st = doc.stat()
    writers = scan.writers_of(st.st_dev, st.st_ino)
    assert [w.pid for w in writers] == [proc.pid]
    assert "marker-arg" in writers[0].command
    assert scan.maybe_written(st.st_dev, st.st_ino)
    assert doc.stat().st_size == 0


def test_a_reader_is_a_holder_but_not_a_writer(tmp_path, holding):
    doc = tmp_path / "doc.gob"
    doc.write_bytes(b"bytes")
    proc = holding(doc, "r")
    st = doc.stat()
    scan = holders_of([(st.st_dev, st.st_ino)])
    assert [h.pid for h in scan.of(st.st_dev, st.st_ino)] == [proc.pid]
    assert scan.writers_of(st.st_dev, st.st_ino) == []
    assert not scan.maybe_written(st.st_dev, st.st_ino)


def test_a_file_renamed_away_and_unlinked_is_still_recognised_by_its_inode(tmp_path, holding):
    doc = tmp_path / "doc.gob"
    doc.write_bytes(b"bytes")
    st = doc.stat()
    proc = holding(doc, "w")
    os.replace(doc, tmp_path / "elsewhere")
    os.unlink(tmp_path / "elsewhere")
    scan = holders_of([(st.st_dev, st.st_ino)])
    assert [h.pid for h in scan.writers_of(st.st_dev, st.st_ino)] == [proc.pid]
    assert scan.writers_of(st.st_dev, st.st_ino)[0].path.endswith("(deleted)")


def test_once_closed_nobody_holds_it(tmp_path, holding):
    doc = tmp_path / "store" / "doc.gob"
    doc.parent.mkdir()
    doc.write_bytes(b"bytes")
    proc = holding(doc, "w")
    st = doc.stat()
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    wait_for(lambda: not holders_under(tmp_path / "store").of(st.st_dev, st.st_ino), what="the holder gone")


def test_files_outside_the_root_are_not_reported(tmp_path, holding):
    (tmp_path / "store").mkdir()
    (tmp_path / "store-other").mkdir()
    outside = tmp_path / "store-other" / "doc.gob"   # a sibling whose name starts like the root
    outside.write_bytes(b"x")
    holding(outside, "w")
    assert holders_under(tmp_path / "store").holders == []


# ---- "is it open for writing?" (the kernel's lease, the scan where there is none) -------------------


def test_open_for_writing_follows_a_writer_from_its_truncate_to_its_close(tmp_path, holding):
    from guardian.local.holders import open_for_writing

    doc = tmp_path / "doc.gob"
    doc.write_bytes(b"old bytes")
    assert open_for_writing(doc) is False
    proc = holding(doc, "w")                       # truncated, paused: the file is 0 bytes and held
    assert open_for_writing(doc) is True
    assert open_for_writing(doc, dir_fd=None, root=tmp_path) is True
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    assert open_for_writing(doc) is False


def test_a_reader_a_symlink_and_a_gone_path_are_not_being_written(tmp_path, holding):
    from guardian.local.holders import open_for_writing, written_among

    doc = tmp_path / "doc.gob"
    doc.write_bytes(b"bytes")
    holding(doc, "r")
    (tmp_path / "link.gob").symlink_to(doc)
    assert open_for_writing(doc) is False
    assert open_for_writing(tmp_path / "link.gob") is False
    assert open_for_writing(tmp_path / "gone.gob") is False
    assert written_among(tmp_path, ["doc.gob", "link.gob", "gone.gob"]) == set()


def test_a_kept_descriptor_answers_for_its_file_wherever_it_went(tmp_path, holding):
    """guardian keeps a replaced file by a link elsewhere: the writer's descriptor still counts."""
    from guardian.local.holders import fd_written, written_among

    doc = tmp_path / "store" / "doc.gob"
    doc.parent.mkdir()
    doc.write_bytes(b"bytes")
    proc = holding(doc, "w")
    assert written_among(tmp_path / "store", ["doc.gob"]) == {"doc.gob"}
    os.link(doc, tmp_path / "kept")
    os.replace(tmp_path / "kept", tmp_path / "kept-elsewhere")
    os.unlink(doc)                                # gone from the store; the writer still writes it
    fd = os.open(tmp_path / "kept-elsewhere", os.O_RDONLY)
    try:
        assert fd_written(fd) is True
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
        assert fd_written(fd) is False
    finally:
        os.close(fd)


def test_where_the_kernel_grants_no_lease_the_scan_answers(tmp_path, holding, monkeypatch):
    from guardian.local import holders

    doc = tmp_path / "doc.gob"
    doc.write_bytes(b"bytes")
    monkeypatch.setattr(holders, "F_SETLEASE", None)     # as on macOS, NFS, or a file of another owner
    assert holders.open_for_writing(doc) is False
    holding(doc, "w")
    assert holders.open_for_writing(doc) is True
