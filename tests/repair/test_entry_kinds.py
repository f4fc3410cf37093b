"""Every kind of directory entry where chromem expects a file or a folder, judged by the real loader.

For each (position, kind): the entry is put in a store whose snapshot holds the real thing; guardian's
verdict must match chromem's (``chromemh load``; a FIFO where chromem reads a file makes the real
loader block forever, so there guardian must say "refuses"); ``check --repair`` must then give chromem
back every document the snapshot held, move the odd entry to quarantine (never delete it), and never
touch anything outside the store.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from guardian.local.quarantine import Quarantine
from guardian.snapshots.take import take_snapshot
from guardian.store.scan import scan_store
from tests.conftest import STORE_PLAIN, chromem_load, copy_store
from tests.repair.helpers_repair import repair, state_paths

COLLECTION = "40917930"            # webapp_memories, 40 documents
DOCUMENT = "01e48869.gob"
FILE_KINDS = ["folder", "symlink_file", "symlink_folder", "dangling", "loop", "fifo", "socket", "chardev",
              "blockdev"]
FOLDER_KINDS = ["regular", "symlink_folder", "symlink_file", "dangling", "loop", "fifo", "socket", "chardev"]
CASES = ([("document", k) for k in FILE_KINDS] + [("metadata", k) for k in FILE_KINDS]
         + [("collection", k) for k in FOLDER_KINDS])


def make_entry(path: Path, kind: str, elsewhere: Path, original: Path) -> None:
    """Put an entry of ``kind`` at ``path``; ``original`` (outside the store) holds the real thing."""
    if kind == "regular":
        path.write_bytes(b"not a folder")
    elif kind == "folder":
        path.mkdir()
    elif kind in ("symlink_file", "symlink_folder"):
        if kind == "symlink_folder" and not original.is_dir():
            original = elsewhere / "a-folder"
            original.mkdir()
        elif kind == "symlink_file" and original.is_dir():
            original = elsewhere / "a-file"
            original.write_bytes(b"some file")
        path.symlink_to(original)
    elif kind == "dangling":
        path.symlink_to(elsewhere / "nothing-here")
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        cwd = os.getcwd()
        os.chdir(path.parent)   # AF_UNIX paths are short: bind the bare name
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(path.name)
        finally:
            os.chdir(cwd)
    elif kind in ("chardev", "blockdev"):
        if os.geteuid() != 0:
            pytest.skip("device nodes need root (mknod)")
        mode = stat.S_IFCHR if kind == "chardev" else stat.S_IFBLK
        os.mknod(path, mode | 0o600, os.makedev(1, 3) if kind == "chardev" else os.makedev(7, 0))


def entry_path(store: Path, position: str) -> Path:
    return {"document": store / COLLECTION / DOCUMENT, "metadata": store / COLLECTION / "00000000.gob",
            "collection": store / COLLECTION}[position]


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.lstat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("position,kind", CASES, ids=[f"{p}-{k}" for p, k in CASES])
def test_entry_kind_is_judged_as_chromem_does_and_repaired_from_the_snapshot(tmp_path, chromemh, position, kind):
    store = copy_store(STORE_PLAIN, tmp_path / "store")
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wanted = chromem_load(chromemh, store)["collections"]
    take_snapshot(state_paths(store, state))
    path = entry_path(store, position)
    original = elsewhere / "original"
    os.rename(path, original)
    make_entry(path, kind, elsewhere, original)
    outside_before = listing(elsewhere)

    scan = scan_store(store, False)
    hangs = kind == "fifo" and position != "collection"
    if hangs:
        assert not scan.loadable       # chromem's open blocks forever: contextd would never start
    else:
        verdict = chromem_load(chromemh, store)
        assert scan.loadable == verdict["ok"], (scan.error, verdict["error"])
        if verdict["ok"]:
            loaded = {name: info["count"] for name, info in verdict["collections"].items()}
            assert scan.loaded_collections() == loaded
            if loaded != {n: c["count"] for n, c in wanted.items()}:
                assert not scan.healthy, "chromem loads less than the snapshot held and check said nothing"

    result = repair(store, state, deep=True)

    after = chromem_load(chromemh, store)
    assert after["ok"], after["error"]
    assert {n: c["count"] for n, c in after["collections"].items()} == {n: c["count"] for n, c in wanted.items()}
    assert listing(elsewhere) == outside_before, "the repair changed something outside the store"
    moved = [e for e in Quarantine(state_paths(store, state)).list() if e.original_path == str(path.relative_to(store))]
    assert moved and all(os.path.lexists(e.payload_path) for e in moved), "the odd entry was not kept"
    assert result.loadable_after
