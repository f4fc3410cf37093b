"""storefs.list_folder_stats / stat_names: the C accelerator (guardian/local/_listing.c) and the
pure-Python path give the same names, the same numbers and the same exceptions, on real folders
holding files, sub-folders, symlinks (good, dangling, looping), FIFOs, sockets, hidden and
non-UTF-8 names, files removed after they were listed, and numbers that do not fit 64 bits."""

from __future__ import annotations

import os
import random
import socket
import stat
import threading
from array import array

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from guardian.local import storefs
from guardian.store.scan import FolderListing

accelerated = storefs._accelerated
needs_c = pytest.mark.skipif(accelerated is None, reason="the C accelerator is not built")
FIELD_SETS = ("smiM", "smiMc", "i", "cMdnsim", "s")


def outcome(fn, *args):
    """What a call gives: its value, or its exception as (type, errno, filename)."""
    try:
        return "ok", fn(*args)
    except (OSError, OverflowError, ValueError) as exc:
        return type(exc), getattr(exc, "errno", None), getattr(exc, "filename", None)


def c_listing(fd: int, fields: str, threads: int = 2):
    names, raw = accelerated.list_folder(fd, fields, threads)
    return names, array("q", raw)


def c_stat_names(fd: int, names, fields: str, threads: int = 2):
    return array("q", accelerated.stat_names(fd, names, fields, threads))


def make_entry(folder: str, kind: str, name: bytes, rng: random.Random) -> None:
    path = os.path.join(os.fsencode(folder), name)
    if kind == "file":
        with open(path, "wb") as handle:
            handle.write(rng.randbytes(rng.randrange(0, 300)))
        os.utime(path, ns=(rng.randrange(1 << 40), rng.randrange(-(1 << 40), 1 << 62)))
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "folder":
        os.mkdir(path)
        open(os.path.join(path, b"inner"), "wb").close()
    elif kind == "symlink":
        os.symlink(b"inner-target", path)
    elif kind == "dangling":
        os.symlink(b"/nowhere/at/all", path)
    elif kind == "loop":
        os.symlink(name, path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        here = os.getcwd()
        try:
            os.chdir(folder)   # a socket path is short: bind by name inside the folder
            sock.bind(name)
        finally:
            os.chdir(here)
            sock.close()


KINDS = ("file", "empty", "folder", "symlink", "dangling", "loop", "fifo", "socket")
name_bytes = st.one_of(
    st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1, max_size=12)
    .map(lambda s: s.encode("utf-8")),
    st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b),   # non-UTF-8 too
    st.sampled_from([b".hidden", b"..x", b"...", b".gob", b"00000000.gob", b"\xff\xfe.gob.gz", b"a\nb"]),
).filter(lambda b: b not in (b".", b".."))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.dictionaries(name_bytes, st.sampled_from(KINDS), max_size=25), seed=st.integers(0, 1 << 30))
def test_the_accelerator_lists_any_folder_as_the_python_path_does(tmp_path_factory, entries, seed):
    if accelerated is None:
        pytest.skip("the C accelerator is not built")
    folder = str(tmp_path_factory.mktemp("listing"))
    rng = random.Random(seed)
    for name, kind in entries.items():
        make_entry(folder, "file" if kind == "socket" and len(name) > 90 else kind, name, rng)
    fd = os.open(folder, storefs.DIR_FLAGS)
    try:
        for fields in FIELD_SETS:
            expected = outcome(storefs.list_folder_stats_python, fd, fields)
            assert outcome(c_listing, fd, fields, 1) == expected
            assert outcome(c_listing, fd, fields, 2) == expected
            names = expected[1][0]
            assert outcome(c_stat_names, fd, names, fields) == outcome(storefs.stat_names_python, fd, names, fields)
        names, numbers = storefs.list_folder_stats(fd, "M")
        assert sorted(map(os.fsencode, names)) == sorted(entries)     # every name, "." and ".." never
        assert len(numbers) == len(names)
        assert all(stat.S_ISLNK(mode) for name, mode in zip(names, numbers)
                   if entries[os.fsencode(name)] in ("symlink", "dangling", "loop"))   # never followed
    finally:
        os.close(fd)


@needs_c
def test_a_big_folder_is_stat_ed_by_two_threads_with_the_same_result(tmp_path):
    """Past the size where two threads stat it, the order, the numbers and the first error stay."""
    rng = random.Random(7)
    for i in range(6000):
        make_entry(str(tmp_path), rng.choice(("file", "empty", "symlink", "fifo")), b"%08x.gob" % i, rng)
    fd = os.open(tmp_path, storefs.DIR_FLAGS)
    try:
        expected = storefs.list_folder_stats_python(fd, "smiMc")
        assert c_listing(fd, "smiMc", 2) == c_listing(fd, "smiMc", 1) == expected
        names = expected[0]
        # files gone after the listing, one in each thread's half: the first (directory order) is raised
        gone = [names[4000], names[100]]
        for name in gone:
            os.unlink(name, dir_fd=fd)
        for threads in (1, 2):
            assert outcome(c_stat_names, fd, names, "smiM", threads) == \
                (FileNotFoundError, 2, names[100]) == outcome(storefs.stat_names_python, fd, names, "smiM")
    finally:
        os.close(fd)


@needs_c
def test_an_entry_removed_between_listing_and_lstat_raises_as_the_python_path_does(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "f").write_bytes(b"x")
    fd = os.open(tmp_path, storefs.DIR_FLAGS)
    try:
        cases = [["a", "gone", "b", "also-gone"], ["a", "f/under-a-file"], ["bad\0name"], ["a", "\udcff"], []]
        for names in cases:
            for fields in FIELD_SETS:
                python = outcome(storefs.stat_names_python, fd, names, fields)
                assert outcome(c_stat_names, fd, names, fields) == python
        assert outcome(c_stat_names, fd, ["a", "gone", "b", "also-gone"], "s")[:3] == (FileNotFoundError, 2, "gone")
        assert outcome(c_stat_names, fd, ["f/under-a-file"], "s")[:2] == (NotADirectoryError, 20)
    finally:
        os.close(fd)


@needs_c
def test_files_vanishing_while_a_folder_is_listed_fail_the_fast_listing_and_the_rows_see_the_rest(tmp_path):
    """Another process removing and creating files while the folder is listed: each listing is either
    whole (every name with its numbers) or FileNotFoundError for one of the removed names, as the Python
    path's lstat would raise; FolderListing then reads the folder again by rows, never fails."""
    for i in range(3000):
        (tmp_path / f"{i:08x}.gob").write_bytes(b"x")
    stop = threading.Event()

    def churn():
        rng = random.Random(3)
        while not stop.is_set():
            name = tmp_path / f"{rng.randrange(3000):08x}.gob"
            try:
                name.unlink()
            except FileNotFoundError:
                name.write_bytes(b"y")

    worker = threading.Thread(target=churn)
    worker.start()
    failures = whole = 0
    try:
        fd = os.open(tmp_path, storefs.DIR_FLAGS)
        try:
            for _ in range(40):
                try:
                    names, numbers = c_listing(fd, "smiM")
                except FileNotFoundError as exc:
                    assert exc.filename.endswith(".gob")
                    failures += 1
                else:
                    assert len(numbers) == 4 * len(names) and all(n.endswith(".gob") for n in names)
                    whole += 1
                listing = FolderListing.read(str(tmp_path), follow=False)
                assert all(row[0].endswith(".gob") for row in listing.rows)
        finally:
            os.close(fd)
    finally:
        stop.set()
        worker.join()
    assert failures + whole == 40


def test_a_number_past_64_bits_raises_overflow_on_both_paths(tmp_path):
    """An mtime past the year 2262 does not fit st_mtime_ns in 64 bits: both paths raise
    OverflowError (the caller reads that folder by rows, with Python's unbounded ints)."""
    late = tmp_path / "late"
    late.write_bytes(b"x")
    try:
        os.utime(late, (10_000_000_000, 10_000_000_000))
    except OverflowError:
        pytest.skip("the platform cannot set such a time")
    if os.stat(late).st_mtime_ns < 1 << 63:
        pytest.skip("the file system clamps timestamps")
    fd = os.open(tmp_path, storefs.DIR_FLAGS)
    try:
        assert outcome(storefs.list_folder_stats_python, fd, "sm")[0] is OverflowError
        assert outcome(storefs.list_folder_stats, fd, "sm")[0] is OverflowError
        assert storefs.list_folder_stats(fd, "si")[1][0] == 1   # fields that fit are read
        listing = FolderListing.read(str(tmp_path))
        assert listing.rows == [("late", False, False, 1, 10_000_000_000 * 10**9, os.stat(late).st_ino,
                                 os.stat(late).st_mode, "")]
    finally:
        os.close(fd)


def test_unknown_fields_and_a_file_fd_raise_alike(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    folder_fd = os.open(tmp_path, storefs.DIR_FLAGS)
    file_fd = os.open(tmp_path / "file", os.O_RDONLY)
    try:
        for fields in ("", "x", "s" * 17):
            assert outcome(storefs.list_folder_stats_python, folder_fd, fields)[0] is ValueError
        python = outcome(storefs.list_folder_stats_python, file_fd, "s")
        assert python == (NotADirectoryError, 20, file_fd)
        if accelerated is not None:
            assert outcome(c_listing, file_fd, "s") == python
            for fields in ("", "x", "s" * 17):
                assert outcome(c_listing, folder_fd, fields)[0] is ValueError
    finally:
        os.close(folder_fd)
        os.close(file_fd)


def test_the_listing_leaves_the_folder_fd_usable_and_at_its_start(tmp_path):
    (tmp_path / "one").write_bytes(b"1")
    fd = os.open(tmp_path, storefs.DIR_FLAGS)
    try:
        first = storefs.list_folder_stats(fd, "s")
        assert storefs.list_folder_stats(fd, "s") == first == (["one"], array("q", [1]))
        assert os.listdir(fd) == ["one"]
    finally:
        os.close(fd)


def test_folder_listings_are_the_same_with_and_without_the_accelerator(tmp_path, monkeypatch):
    """scan.FolderListing (check's and the index's walker) gives the same rows and the same digest
    (the verified cache's key) whichever path listed the folder."""
    rng = random.Random(11)
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    plain.mkdir()
    mixed.mkdir()
    for i in range(200):
        make_entry(str(plain), "file", b"%08x.gob" % i, rng)
        make_entry(str(mixed), rng.choice(KINDS[:7]), b"%08x.gob" % i, rng)
    with_c = [(FolderListing.read(str(f)).digest(), FolderListing.read(str(f)).rows) for f in (plain, mixed)]
    monkeypatch.setattr(storefs, "_accelerated", None)
    without = [(FolderListing.read(str(f)).digest(), FolderListing.read(str(f)).rows) for f in (plain, mixed)]
    assert with_c == without
    assert FolderListing.read(str(plain))._columns is not None   # the fast path, not the rows
