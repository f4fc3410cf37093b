"""What the store looked like at the last snapshot, so that a snapshot of an unchanged store costs a
stat walk and nothing more (no decoding of 100k manifest rows, no per-file comparison in Python).

For every folder of the store it keeps, in directory order, the names of its regular files joined
into one string and two arrays: inode and ctime (ns). The ctime covers every change a snapshot
cares about (content, size, mode, mtime set back by ``utime``, a rename onto the name), the inode a
different file put in place. A folder is *clean* when every file in it was recorded by the snapshot
exactly as the walk saw it (same size, mtime, inode and mode, no flags) and none was modified within
``racy_ns`` of the walk (timestamps have a coarse tick; such a file could change again unseen).

The cache names the snapshot body it describes by the sha256 of that body's bytes; if every folder
is clean and looks the same now, the new snapshot's file list is that body, as it is. Anything else
(a folder added, removed, changed, reordered; a damaged or missing cache) means the full path: this
file only ever makes a snapshot cheaper, never different. It lives in guardian's cache folder.
"""

from __future__ import annotations

import json
import operator
import os
import stat as statmod
import struct
import sys
from array import array
from dataclasses import dataclass
from typing import NamedTuple

from guardian.local.fsutil import atomic_write, ensure_dir

MAGIC = b"GUARDIAN-STATCACHE-1\n"
INODE = operator.attrgetter("st_ino")
CTIME = operator.attrgetter("st_ctime_ns")
# The lstat fields a snapshot's walk takes per file (storefs.STAT_FIELDS letters), in this order.
SNAPSHOT_FIELDS = "smiMc"


class FileStat(NamedTuple):
    """One file's lstat as a snapshot uses it (the os.stat_result attributes it reads)."""

    st_size: int
    st_mtime_ns: int
    st_ino: int
    st_mode: int
    st_ctime_ns: int


class StatColumns:
    """A folder's lstats as ``storefs.list_folder_stats(fd, SNAPSHOT_FIELDS)`` gives them: one flat
    ``array('q')``, five numbers per entry. Iterating gives FileStat objects (only a snapshot that
    reads or compares files per file needs them); an unchanged store is checked on the columns alone."""

    __slots__ = ("numbers",)
    WIDTH = len(SNAPSHOT_FIELDS)

    def __init__(self, numbers: array) -> None:
        self.numbers = numbers

    def __len__(self) -> int:
        return len(self.numbers) // self.WIDTH

    def __iter__(self):
        n, k = self.numbers, self.WIDTH
        return map(FileStat._make, zip(n[0::k], n[1::k], n[2::k], n[3::k], n[4::k]))

    def column(self, letter: str) -> array:
        return self.numbers[SNAPSHOT_FIELDS.index(letter)::self.WIDTH]

    def plain_files_up_to(self, max_size: int) -> bool:
        """Every entry a regular file of at most ``max_size`` bytes (checked in C)."""
        return all(map(statmod.S_ISREG, self.column("M"))) and max(self.column("s"), default=0) <= max_size


def columns(stats) -> tuple[array, array]:
    """The inode and ctime columns of a folder's lstats (C-speed, no per-file Python code). From
    StatColumns the inodes' bytes are taken as they are: a listed inode is never negative."""
    if isinstance(stats, StatColumns):
        return array("Q", stats.column("i").tobytes()), stats.column("c")
    return array("Q", map(INODE, stats)), array("q", map(CTIME, stats))


@dataclass
class FolderState:
    names: str             # "\x00".join(names) in directory order
    inodes: array
    ctimes: array
    clean: bool

    def same_as(self, names: list[str], stats: list) -> bool:
        if len(stats) != len(self.inodes) or "\x00".join(names) != self.names:
            return False
        inodes, ctimes = columns(stats)
        return inodes == self.inodes and ctimes == self.ctimes


@dataclass
class StatCache:
    body_sha: str                       # sha256 of the compressed file list it describes
    folders: dict[str, FolderState]     # folder prefix ("" or "dir/") -> state
    dirs: list                          # the listing's folders and modes
    skipped: list

    def unchanged(self, listing) -> bool:
        """True if ``listing`` (a take.StoreListing) shows every folder clean and exactly as recorded."""
        if listing.dirs != self.dirs or listing.skipped != self.skipped or len(listing.folders) != len(self.folders):
            return False
        for prefix, names, stats in listing.folders:
            state = self.folders.get(prefix)
            if state is None or not state.clean or not state.same_as(names, stats):
                return False
        return True

    # ---- file format: MAGIC | u32 header length | JSON header | names | inodes | ctimes --------------
    def encode(self) -> bytes:
        order = list(self.folders.items())
        header = {"body_sha": self.body_sha, "byteorder": sys.byteorder, "dirs": [list(d) for d in self.dirs],
                  "skipped": [list(s) for s in self.skipped],
                  "folders": [[prefix, s.clean, len(s.inodes), len(s.names.encode())] for prefix, s in order]}
        head = json.dumps(header).encode()
        parts = [MAGIC, struct.pack(">I", len(head)), head]
        parts += [s.names.encode() for _, s in order]
        parts += [s.inodes.tobytes() for _, s in order]
        parts += [s.ctimes.tobytes() for _, s in order]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> "StatCache":
        if not data.startswith(MAGIC):
            raise ValueError("not a stat cache")
        (length,) = struct.unpack(">I", data[len(MAGIC):len(MAGIC) + 4])
        at = len(MAGIC) + 4
        header = json.loads(data[at:at + length])
        if header.get("byteorder") != sys.byteorder:
            raise ValueError("stat cache written on another machine")
        at += length
        specs = header["folders"]
        names = []
        for _, _, _, name_bytes in specs:
            names.append(data[at:at + name_bytes].decode())
            at += name_bytes
        inodes = []
        for _, _, count, _ in specs:
            inodes.append(_column("Q", data, at, count))
            at += 8 * count
        folders = {}
        for (prefix, clean, count, _), joined, ino in zip(specs, names, inodes):
            folders[prefix] = FolderState(joined, ino, _column("q", data, at, count), bool(clean))
            at += 8 * count
        if at != len(data):
            raise ValueError("stat cache has the wrong length")
        return cls(header["body_sha"], folders, [tuple(d) for d in header["dirs"]],
                   [tuple(s) for s in header["skipped"]])


def _column(typecode: str, data: bytes, at: int, count: int) -> array:
    column = array(typecode)
    if column.itemsize != 8:  # pragma: no cover - 8-byte "Q"/"q" on every supported platform
        raise ValueError("unexpected array item size")
    column.frombytes(data[at:at + 8 * count])
    if len(column) != count:
        raise ValueError("stat cache is truncated")
    return column


def build(listing, rows_by_path: dict, started_ns: int, racy_ns: int, body_sha: str) -> StatCache:
    """The cache for a snapshot just committed: ``rows_by_path`` are its rows (path -> row)."""
    folders = {}
    recent = started_ns - racy_ns
    for prefix, names, stats in listing.folders:
        inodes, ctimes = columns(stats)
        clean = not (len(ctimes) and max(ctimes) >= recent)
        if clean:
            for name, info in zip(names, stats):
                row = rows_by_path.get(prefix + name)
                if (row is None or row[6] or row[1] != info.st_size or row[3] != info.st_mtime_ns
                        or row[4] != info.st_ino or row[2] != statmod.S_IMODE(info.st_mode)):
                    clean = False
                    break
        folders[prefix] = FolderState("\x00".join(names), inodes, ctimes, clean)
    return StatCache(body_sha, folders, list(listing.dirs), list(listing.skipped))


def load(path) -> StatCache | None:
    """The cache at ``path``, or None when missing or unreadable (then a snapshot takes the full path)."""
    try:
        with open(path, "rb") as handle:
            return StatCache.decode(handle.read())
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return None


def save(path, cache: StatCache) -> None:
    ensure_dir(os.path.dirname(path))
    atomic_write(path, cache.encode())
