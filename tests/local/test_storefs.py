"""guardian.local.storefs on real files: folder fds that never follow a symlink, regular files only,
bounded reads, writes that a folder swapped for a symlink cannot redirect, guardian's own temps only."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
import tracemalloc

import pytest

from guardian.local import storefs
from guardian.local.fsutil import TEMP_PREFIX
from guardian.local.storefs import NotRegularFile, TooLarge, UnsafeFolder


@pytest.fixture
def tree(tmp_path):
    """root/ with a collection folder 'c' holding one file, and an 'outside' folder beside root."""
    root = tmp_path / "root"
    (root / "c").mkdir(parents=True)
    (root / "c" / "doc.gob").write_bytes(b"document bytes")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not the store's")
    return root, outside


def listing(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---- folders -------------------------------------------------------------------------------------

def test_open_dir_nofollow_refuses_a_symlinked_component_a_file_and_dotdot(tree):
    root, outside = tree
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafeFolder) as exc:
        storefs.open_dir_nofollow(root, "link")
    assert exc.value.what == "symlink"
    with pytest.raises(UnsafeFolder) as exc:
        storefs.open_dir_nofollow(root, "c/doc.gob")
    assert exc.value.what == "regular file"
    with pytest.raises(UnsafeFolder):
        storefs.open_dir_nofollow(root, "c/../..")
    with pytest.raises(FileNotFoundError):
        storefs.open_dir_nofollow(root, "missing")


def test_the_root_itself_may_be_a_symlink_it_is_the_users_choice(tree, tmp_path):
    root, _ = tree
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    fd = storefs.open_dir_nofollow(alias, "c")
    try:
        assert os.listdir(fd) == ["doc.gob"]
    finally:
        os.close(fd)


def test_a_write_through_a_folder_fd_stays_in_the_folder_that_was_opened_after_a_symlink_swap(tree):
    root, outside = tree
    fd = storefs.open_dir_nofollow(root, "c")
    try:
        os.rename(root / "c", root / "c.moved")          # someone swaps the folder for a symlink
        (root / "c").symlink_to(outside)
        storefs.atomic_write_at(fd, "doc.gob", b"repaired")
    finally:
        os.close(fd)
    assert listing(root / "c.moved") == {"doc.gob": b"repaired"}
    assert listing(outside) == {"secret": b"not the store's"}  # nothing written outside the store


def test_dirfds_opens_each_folder_once_refuses_symlinks_and_forgets_a_subtree(tree):
    root, outside = tree
    (root / "c" / "sub").mkdir()
    (root / "link").symlink_to(outside)
    with storefs.DirFds(root) as dirs:
        first = dirs.get("c/sub")
        assert dirs.get("c/sub") == first and set(dirs.fds) == {"", "c", "c/sub"}
        assert dirs.parent_of("c/doc.gob") == (dirs.get("c"), "doc.gob")
        with pytest.raises(UnsafeFolder):
            dirs.get("link")
        dirs.forget("c")
        assert set(dirs.fds) == {""}
        with pytest.raises(OSError):
            os.fstat(first)                                 # closed
        held = list(dirs.fds.values())
    for fd in held:
        with pytest.raises(OSError):
            os.fstat(fd)                                    # `with` closed the rest


# ---- reading -------------------------------------------------------------------------------------

def test_open_regular_refuses_a_fifo_without_blocking_and_every_other_kind(tree):
    root, outside = tree
    folder = root / "c"
    os.mkfifo(folder / "fifo.gob")
    (folder / "link.gob").symlink_to(outside / "secret")
    (folder / "dangling.gob").symlink_to(outside / "nothing")
    (folder / "dir.gob").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.gob"))
    try:
        kinds = {}
        for name in ("fifo.gob", "link.gob", "dangling.gob", "dir.gob", "sock.gob"):
            with pytest.raises(NotRegularFile) as exc:
                storefs.read_regular(folder / name)
            kinds[name] = exc.value.what
    finally:
        server.close()
    assert kinds == {"fifo.gob": "FIFO", "link.gob": "symlink", "dangling.gob": "symlink", "dir.gob": "folder",
                     "sock.gob": "socket"}
    with pytest.raises(NotRegularFile):
        storefs.sha256_regular(folder / "fifo.gob")


def test_follow_reads_through_a_symlink_to_a_regular_file_as_chromem_does(tree):
    root, outside = tree
    (root / "c" / "link.gob").symlink_to(outside / "secret")
    assert storefs.read_regular(root / "c" / "link.gob", follow=True) == b"not the store's"
    os.mkfifo(outside / "fifo")
    (root / "c" / "to-fifo.gob").symlink_to(outside / "fifo")
    with pytest.raises(NotRegularFile) as exc:
        storefs.read_regular(root / "c" / "to-fifo.gob", follow=True)
    assert exc.value.what == "FIFO"


def test_reads_are_bounded_even_for_a_huge_sparse_file(tmp_path):
    path = tmp_path / "sparse.gob"
    with open(path, "wb") as handle:
        handle.truncate(4 << 30)                       # 4 GiB of holes: no disk, and no memory either
    with pytest.raises(TooLarge) as exc:
        storefs.read_regular(path, limit=1 << 20)
    assert exc.value.limit == 1 << 20 and exc.value.errno == errno.EFBIG
    head = storefs.read_regular(path, limit=16, prefix=True)
    assert head == bytes(16)
    small = tmp_path / "small"
    small.write_bytes(b"12345")
    assert storefs.read_regular(small, limit=5) == b"12345"   # exactly the limit is fine


def test_a_bounded_read_is_sized_by_the_file_not_by_the_limit(tmp_path):
    """A 64 MiB limit must not mean a 64 MiB buffer per read (~50 µs per file, seconds at 100k)."""
    path = tmp_path / "doc.gob"
    path.write_bytes(b"x" * 3000)
    storefs.read_regular(path, limit=64 << 20)        # warm up imports/caches outside the trace
    tracemalloc.start()
    try:
        data = storefs.read_regular(path, limit=64 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data == b"x" * 3000
    assert peak < 1 << 20


def test_a_file_that_grows_while_read_is_read_on_up_to_the_limit(tmp_path):
    path = tmp_path / "doc.gob"
    path.write_bytes(b"a" * 100)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size                    # the size the read is planned from...
        with open(path, "ab") as writer:
            writer.write(b"b" * 5000)                  # ...then a writer appends before it reads
        assert storefs.read_to_end(fd, size) == b"a" * 100 + b"b" * 5000
        os.lseek(fd, 0, os.SEEK_SET)
        assert storefs.read_to_end(fd, size, limit=1001) == (b"a" * 100 + b"b" * 5000)[:1001]
        os.lseek(fd, 0, os.SEEK_SET)
        assert storefs.read_to_end(fd, 10 ** 6, limit=7) == b"a" * 7   # a stale larger size: limit holds
    finally:
        os.close(fd)
    with open(path, "ab") as writer:
        writer.write(b"c")
    with pytest.raises(TooLarge):                      # grown past the limit since: refused, not clipped
        storefs.read_regular(path, limit=5100)
    assert storefs.read_regular(path, limit=5101) == b"a" * 100 + b"b" * 5000 + b"c"
    empty = tmp_path / "empty.gob"
    empty.write_bytes(b"")
    assert storefs.read_regular(empty, limit=10) == b"" and storefs.read_regular(empty) == b""


def test_relative_reads_and_stats_go_through_the_folder_fd(tree):
    root, _ = tree
    fd = storefs.open_dir_nofollow(root, "c")
    try:
        assert storefs.read_regular("doc.gob", dir_fd=fd) == b"document bytes"
        assert storefs.sha256_regular("doc.gob", dir_fd=fd) == hashlib.sha256(b"document bytes").hexdigest()
        assert stat.S_ISREG(storefs.stat_at("doc.gob", fd).st_mode)
        os.symlink("nowhere", "dangling", dir_fd=fd)
        assert storefs.exists_at("dangling", fd) and not storefs.exists_at("absent", fd)
    finally:
        os.close(fd)


# ---- writing -------------------------------------------------------------------------------------

def test_copy_regular_streams_hashes_and_never_overwrites(tree, tmp_path):
    root, _ = tree
    data = os.urandom(3 * storefs.CHUNK + 17)
    (root / "c" / "big.gob").write_bytes(data)
    target = tmp_path / "copy"
    digest = storefs.copy_regular(root / "c" / "big.gob", None, target, mode=0o4755)
    assert digest == hashlib.sha256(data).hexdigest() and target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o644       # permission bits only, never executable
    with pytest.raises(FileExistsError):
        storefs.copy_regular(root / "c" / "big.gob", None, target)
    assert target.read_bytes() == data


def test_write_temp_then_replace_and_atomic_write_leave_no_temp(tree):
    root, _ = tree
    fd = storefs.open_dir_nofollow(root, "c")
    try:
        temp = storefs.write_temp_at(fd, "doc.gob", b"new", mode=0o6777, mtime_ns=1_000_000_000)
        assert storefs.is_guardian_temp(temp) and not temp.endswith((".gob", ".gob.gz"))
        info = storefs.stat_at(temp, fd)
        assert stat.S_IMODE(info.st_mode) == 0o666 and info.st_mtime_ns == 1_000_000_000
        assert (root / "c" / "doc.gob").read_bytes() == b"document bytes"  # not replaced yet
        storefs.replace_at(fd, temp, "doc.gob")
        storefs.atomic_write_at(fd, "other.gob", b"other")
    finally:
        os.close(fd)
    assert listing(root / "c") == {"doc.gob": b"new", "other.gob": b"other"}


def test_mkdir_at_keeps_permission_bits_only_and_says_when_it_existed(tree):
    root, _ = tree
    fd = storefs.open_dir_nofollow(root)
    try:
        assert storefs.mkdir_at(fd, "new", mode=0o3777) is True
        assert storefs.mkdir_at(fd, "new") is False
    finally:
        os.close(fd)
    assert stat.S_IMODE((root / "new").stat().st_mode) == 0o777


def test_only_guardians_own_temps_are_ever_unlinked(tree):
    root, _ = tree
    fd = storefs.open_dir_nofollow(root, "c")
    try:
        with pytest.raises(ValueError):
            storefs.unlink_temp_at(fd, "doc.gob")
        os.mkdir(TEMP_PREFIX + "dir", dir_fd=fd)
        assert storefs.unlink_temp_at(fd, TEMP_PREFIX + "dir") is False        # a folder: left alone
        assert storefs.unlink_temp_at(fd, TEMP_PREFIX + "absent") is False
    finally:
        os.close(fd)
    assert (root / "c" / "doc.gob").exists() and (root / "c" / (TEMP_PREFIX + "dir")).is_dir()


def test_clean_guardian_temps_removes_leftovers_at_depth_one_never_through_a_symlink(tree):
    root, outside = tree
    (root / f"{TEMP_PREFIX}root.1").write_bytes(b"x")
    (root / "c" / f"{TEMP_PREFIX}doc.gob.2").write_bytes(b"x")
    (root / "c" / "deep").mkdir()
    (root / "c" / "deep" / f"{TEMP_PREFIX}deeper").write_bytes(b"x")  # not where guardian writes
    (outside / f"{TEMP_PREFIX}outside").write_bytes(b"x")
    (root / "link").symlink_to(outside)
    stage = root / f"{storefs.STAGE_PREFIX}abcd"
    (stage / "c2" / "sub").mkdir(parents=True)
    (stage / "c2" / "sub" / "f.gob").write_bytes(b"staged")
    removed = storefs.clean_guardian_temps(root)
    assert sorted(removed) == sorted([f"{storefs.STAGE_PREFIX}abcd", f"{TEMP_PREFIX}root.1",
                                      f"c/{TEMP_PREFIX}doc.gob.2"])
    assert not stage.exists() and (root / "c" / "deep" / f"{TEMP_PREFIX}deeper").exists()
    assert (outside / f"{TEMP_PREFIX}outside").exists() and (root / "c" / "doc.gob").exists()
    assert storefs.guardian_temps(root) == []


def test_remove_stage_dir_refuses_anything_but_a_staging_folder(tree):
    root, _ = tree
    fd = storefs.open_dir_nofollow(root)
    try:
        for name in ("c", f"{TEMP_PREFIX}other", f"c/{storefs.STAGE_PREFIX}x"):
            with pytest.raises(ValueError):
                storefs.remove_stage_dir(fd, name)
    finally:
        os.close(fd)
    assert (root / "c" / "doc.gob").read_bytes() == b"document bytes"


def test_kind_of_and_safe_mode():
    assert storefs.kind_of(stat.S_IFIFO | 0o644) == "FIFO" and storefs.kind_of(stat.S_IFCHR) == "character device"
    assert storefs.safe_mode(0o104755) == 0o644 and storefs.safe_mode(0o111) == 0o600   # nothing left: default
    assert storefs.safe_mode(0o41777, folder=True) == 0o777 and storefs.safe_mode(None) == 0o600


def test_remove_stage_dir_walks_again_when_an_entry_appears_during_the_walk(tmp_path, monkeypatch):
    """A rename inside the staging folder still in flight when the walk listed it must not leave the
    staging folder behind (the walk is made again on ENOTEMPTY)."""
    name = storefs.STAGE_PREFIX + "target.abcd"
    (tmp_path / name / "col-moved").mkdir(parents=True)
    (tmp_path / name / "col-moved" / "a.gob").write_bytes(b"x")
    real_rmdir, late = os.rmdir, []

    def rmdir_after_a_late_entry(path, *, dir_fd=None):
        if path == name and not late:            # the entry lands between the walk and the last rmdir
            os.symlink("/nonexistent", tmp_path / name / "col")
            late.append(True)
        return real_rmdir(path, dir_fd=dir_fd)

    monkeypatch.setattr(storefs.os, "rmdir", rmdir_after_a_late_entry)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        storefs.remove_stage_dir(fd, name)
    finally:
        os.close(fd)
    assert late and not (tmp_path / name).exists()


def test_place_new_at_never_writes_over_what_is_there_even_if_it_appears_meanwhile(tmp_path, monkeypatch):
    folder = tmp_path / "f"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert storefs.place_new_at(fd, "a.gob", b"one", 0o644) == storefs.PLACED
        assert (folder / "a.gob").read_bytes() == b"one" and (folder / "a.gob").stat().st_mode & 0o777 == 0o644
        assert storefs.place_new_at(fd, "a.gob", b"one") == storefs.ALREADY_THERE
        assert storefs.place_new_at(fd, "a.gob", b"two") == storefs.TAKEN
        (folder / "d.gob").mkdir()
        assert storefs.place_new_at(fd, "d.gob", b"two") == storefs.TAKEN
        real_temp = storefs.write_temp_at

        def writer_gets_there_first(dir_fd, name, *args, **kwargs):   # a writer creates the file in between
            temp = real_temp(dir_fd, name, *args, **kwargs)
            (folder / name).write_bytes(b"the writer's")
            return temp

        monkeypatch.setattr(storefs, "write_temp_at", writer_gets_there_first)
        assert storefs.place_new_at(fd, "b.gob", b"ours") == storefs.TAKEN
        assert (folder / "b.gob").read_bytes() == b"the writer's"
    finally:
        os.close(fd)
    assert sorted(os.listdir(folder)) == ["a.gob", "b.gob", "d.gob"]   # no temp file left behind
