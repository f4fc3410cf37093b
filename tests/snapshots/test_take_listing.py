"""The snapshot walk (take.list_store) on storefs.list_folder_stats: the same listing with and without
the C accelerator, a file removed between the listing and its lstat leaves only that file out, a
folder swapped for a symlink is not walked, and guardian's temps are cleaned only when the walk saw one."""

from __future__ import annotations

import os
import random
import stat

from guardian.local import storefs
from guardian.local.fsutil import TEMP_PREFIX
from guardian.snapshots import take
from guardian.snapshots.statcache import StatColumns
from guardian.snapshots.take import list_store, take_snapshot

from tests.snapshots.conftest import age_files

FIELDS = ("st_size", "st_mtime_ns", "st_ino", "st_mode", "st_ctime_ns")


def facts(listing) -> tuple:
    files = {rel: tuple(getattr(info, f) for f in FIELDS) for rel, info in listing.files.items()}
    return files, listing.dirs, listing.skipped, listing.temps


def hostile_store(root) -> None:
    rng = random.Random(5)
    plain, mixed = root / "aaaaaaaa", root / "bbbbbbbb"
    for folder in (plain, mixed):
        folder.mkdir(parents=True)
    for i in range(300):
        (plain / f"{i:08x}.gob").write_bytes(rng.randbytes(rng.randrange(50)))
    (mixed / "00000000.gob").write_bytes(b"meta")
    (mixed / "sub").mkdir()
    (mixed / "sub" / "deep.gob").write_bytes(b"deep")
    (mixed / "link.gob").symlink_to(plain / "00000000.gob")
    os.mkfifo(mixed / "fifo.gob")
    (mixed / (TEMP_PREFIX + "x.gob.1234")).write_bytes(b"temp")
    (root / "stray").write_bytes(b"s")
    os.mkdir(os.fsencode(root) + b"/\xff\xfe-not-utf8")
    (root / ".hidden").mkdir()


def test_the_walk_is_the_same_with_and_without_the_accelerator(tmp_path, monkeypatch):
    hostile_store(tmp_path)
    with_c = list_store(tmp_path)
    assert isinstance(with_c.folders[-1][2], StatColumns) or storefs._accelerated is None
    monkeypatch.setattr(storefs, "_accelerated", None)
    without = list_store(tmp_path)
    assert facts(with_c) == facts(without)
    files, _, skipped, temps = facts(with_c)
    assert "bbbbbbbb/sub/deep.gob" in files and "aaaaaaaa/0000012b.gob" in files and temps
    assert ("bbbbbbbb/link.gob", "symlink (not followed)") in skipped
    assert ("bbbbbbbb/fifo.gob", "not a regular file") in skipped
    assert not any(TEMP_PREFIX in rel for rel in files)


def test_a_file_removed_between_listing_and_lstat_is_left_out_not_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "aaaaaaaa"
    folder.mkdir()
    for i in range(50):
        (folder / f"{i:08x}.gob").write_bytes(b"x")
    real = storefs.list_folder_stats

    def racing(fd, fields):
        names = os.listdir(fd)
        if "00000007.gob" in names:
            os.unlink("00000007.gob", dir_fd=fd)   # removed after getdents, before its lstat
        return names, storefs.stat_names(fd, names, fields)   # raises FileNotFoundError, as the real one would

    monkeypatch.setattr(storefs, "list_folder_stats", racing)
    listing = list_store(tmp_path)
    assert set(listing.files) == {f"aaaaaaaa/{i:08x}.gob" for i in range(50) if i != 7}
    assert listing.skipped == []
    monkeypatch.setattr(storefs, "list_folder_stats", real)
    assert facts(list_store(tmp_path)) == facts(listing)


def test_a_folder_swapped_for_a_symlink_after_its_parent_was_listed_is_not_walked(tmp_path, monkeypatch):
    (tmp_path / "store" / "aaaaaaaa").mkdir(parents=True)
    (tmp_path / "store" / "aaaaaaaa" / "00000000.gob").write_bytes(b"meta")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.gob").write_bytes(b"not the store's")
    real = take._folder_stats

    def swapping(fd):
        listed = real(fd)
        if "aaaaaaaa" in listed[0]:
            os.rename(tmp_path / "store" / "aaaaaaaa", tmp_path / "moved")
            os.symlink(tmp_path / "elsewhere", tmp_path / "store" / "aaaaaaaa")
        return listed

    monkeypatch.setattr(take, "_folder_stats", swapping)
    listing = list_store(tmp_path / "store")
    assert listing.files == {}
    assert [rel for rel, _ in listing.skipped] == ["aaaaaaaa/"]   # O_NOFOLLOW: ENOTDIR (or ELOOP)
    assert listing.skipped[0][1] in ("unreadable folder: Not a directory",
                                     "unreadable folder: Too many levels of symbolic links")


def test_temps_are_cleaned_when_the_walk_sees_one_and_the_walk_never_captures_them(plain_paths, monkeypatch):
    cleaned = []
    real = storefs.clean_guardian_temps
    monkeypatch.setattr(storefs, "clean_guardian_temps", lambda root: cleaned.append(real(root)))
    age_files(plain_paths.store)
    take_snapshot(plain_paths)
    assert cleaned == []   # nothing of guardian's in the store: no second walk for it
    folder = next(p for p in plain_paths.store.iterdir() if p.is_dir())
    temp = folder / (TEMP_PREFIX + "00000000.gob.abcd")
    temp.write_bytes(b"staged")
    result = take_snapshot(plain_paths)
    assert cleaned == [[f"{folder.name}/{temp.name}"]] and not temp.exists()
    assert not any(TEMP_PREFIX in path for path in take.list_store(plain_paths.store).files)
    assert result.files == len(take.list_store(plain_paths.store).files)


def test_an_unchanged_store_is_recognised_on_the_columns_alone(plain_paths, monkeypatch):
    """A no-change snapshot takes the previous file list as it is, and builds no per-file stat object
    for a collection folder's files (only the root's few entries are looked at one by one: it holds
    folders). (Racy window 0: the fixture's files were just written,
    their ctimes are seconds old at most.)"""
    monkeypatch.setattr(take, "RACY_WINDOW_NS", 0)
    first = take_snapshot(plain_paths)
    committed = []
    real_commit = take._commit_unchanged
    monkeypatch.setattr(take, "_commit_unchanged", lambda *a: committed.append(real_commit(*a)) or committed[-1])
    iterated = []
    real_iter = StatColumns.__iter__
    monkeypatch.setattr(StatColumns, "__iter__", lambda self: iterated.append(len(self)) or real_iter(self))
    second = take_snapshot(plain_paths)
    assert committed[-1] is not None and second.read_files == 0 and second.files == first.files
    if storefs._accelerated is not None:
        assert iterated == [len(os.listdir(plain_paths.store))]
    folder = next(p for p in plain_paths.store.iterdir() if p.is_dir())
    os.chmod(folder / "00000000.gob", 0o640)   # a ctime change: no longer the same store
    third = take_snapshot(plain_paths)
    assert committed[-1] is None and third.read_files == 0
    assert all(stat.S_ISREG(info.st_mode) for info in list_store(plain_paths.store).files.values())
