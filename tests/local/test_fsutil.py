"""guardian.local.fsutil on real filesystems: atomic durable writes, folders, moves that never delete
before the copy is safe (across filesystems too: a tmpfs), and the batched sync calls."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest

from guardian.local import fsutil
from guardian.local.fsutil import TEMP_PREFIX


def names(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_atomic_write_replaces_the_target_private_and_leaves_no_temp(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    old_umask = os.umask(0)
    try:
        fsutil.atomic_write(target, b"new")
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new" and names(tmp_path) == ["state.json"]
    assert stat.S_IMODE(target.stat().st_mode) == fsutil.PRIVATE_FILE
    fsutil.atomic_write_text(target, "tekst \u00e9", mode=0o644)
    assert target.read_text(encoding="utf-8") == "tekst \u00e9" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_write_that_does_not_fit_keeps_the_old_file_and_removes_its_temp(tmpfs):
    disk = tmpfs("small", "64k")
    target = disk / "catalog.json"
    fsutil.atomic_write(target, b"the old, good bytes")
    with pytest.raises(OSError) as exc:
        fsutil.atomic_write(target, os.urandom(1 << 20))
    assert exc.value.errno == 28  # ENOSPC
    assert target.read_bytes() == b"the old, good bytes" and names(disk) == ["catalog.json"]


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "status.json"
    link.symlink_to(victim)
    fsutil.atomic_write(link, b"status")
    assert not link.is_symlink() and link.read_bytes() == b"status" and victim.read_text() == "untouched"


def test_temp_names_are_unique_hidden_and_in_the_targets_folder(tmp_path):
    first, second = fsutil.temp_path_for(tmp_path / "x.gob"), fsutil.temp_path_for(tmp_path / "x.gob")
    assert first != second and first.parent == tmp_path and first.name.startswith(TEMP_PREFIX + "x.gob.")


def test_ensure_dir_creates_every_missing_parent_private_and_keeps_existing_ones(tmp_path):
    (tmp_path / "a").mkdir(mode=0o755)
    os.chmod(tmp_path / "a", 0o755)
    made = fsutil.ensure_dir(tmp_path / "a" / "b" / "c")
    assert made.is_dir() and stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700 == stat.S_IMODE(made.stat().st_mode)
    assert fsutil.ensure_dir(made) == made


def test_write_all_writes_everything_through_a_pipe_that_takes_little_at_a_time():
    read_end, write_end = os.pipe()
    data = os.urandom(1 << 20)  # far more than a pipe holds: os.write returns short counts
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        fsutil.write_all(write_end, data)
    finally:
        os.close(write_end)
    reader.join(60)
    os.close(read_end)
    assert bytes(got) == data


def test_durable_move_on_one_filesystem_is_a_rename(tmp_path):
    src = tmp_path / "src.gob"
    src.write_bytes(b"doc")
    inode = src.stat().st_ino
    dst = tmp_path / "quarantine" / "deep" / "src.gob"
    fsutil.durable_move(src, dst)
    assert not src.exists() and dst.read_bytes() == b"doc" and dst.stat().st_ino == inode


def test_durable_move_across_filesystems_copies_first_then_removes_the_source(tmp_path, tmpfs):
    other = tmpfs("other", "4m")
    folder = tmp_path / "collection"
    folder.mkdir()
    (folder / "doc.gob").write_bytes(b"document")
    (folder / "link.gob").symlink_to("doc.gob")
    fsutil.durable_move(folder, other / "moved")
    assert not folder.exists()
    assert (other / "moved" / "doc.gob").read_bytes() == b"document"
    assert os.readlink(other / "moved" / "link.gob") == "doc.gob"  # a symlink stays a symlink
    single = tmp_path / "one.gob"
    single.write_bytes(b"one")
    fsutil.durable_move(single, other / "one.gob")
    assert not single.exists() and (other / "one.gob").read_bytes() == b"one"


def test_a_move_across_filesystems_that_does_not_fit_keeps_the_source(tmp_path, tmpfs):
    small = tmpfs("small", "64k")
    big = tmp_path / "big.gob"
    data = os.urandom(1 << 20)
    big.write_bytes(data)
    with pytest.raises(OSError):
        fsutil.durable_move(big, small / "big.gob")
    assert big.read_bytes() == data  # never deleted before the copy was safe


def test_sha256_file_and_the_batched_syncs(tmp_path):
    path = tmp_path / "blob"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    assert fsutil.sha256_file(path) == hashlib.sha256(data).hexdigest()
    fd = os.open(path, os.O_RDWR)
    try:
        assert fsutil.sync_filesystem(fd) in (True, False)
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        fsutil.sync_filesystem(10_000)           # not an open fd: the failure is raised, not hidden


def test_a_folder_move_that_does_not_fit_leaves_no_partial_copy(tmp_path, tmpfs):
    """The disk fills half-way through a folder: the source stays whole, the destination holds
    neither the folder nor a partial copy of it (a partial ``dst`` would look like a finished move)."""
    small = tmpfs("small", "256k")
    folder = tmp_path / "collection"
    folder.mkdir()
    files = {f"{i:08x}.gob": os.urandom(100_000) for i in range(5)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(OSError):
        fsutil.durable_move(folder, small / "moved")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert list(small.iterdir()) == []
