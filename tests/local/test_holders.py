"""Who holds a store file open, asked of the operating system (real processes, real descriptors)."""

from __future__ import annotations

import os
import subprocess
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
def holding(tmp_path):
    started = []

    def start(path, mode):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode, "marker-arg"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stdin.close()
        proc.wait(timeout=30)


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
