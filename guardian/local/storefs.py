"""Safe file operations inside the store: folder fds that never follow a symlink, regular files only.

The store is not guardian's: anyone may put a FIFO, a device node or a symlink where a file or a
folder belongs, or swap a folder for a symlink while guardian works. Two rules follow:

- **Open only regular files.** ``open_regular`` looks (lstat) before it opens, opens with
  ``O_NOFOLLOW|O_NONBLOCK`` (a FIFO cannot block the open, a symlink cannot redirect it) and checks
  the opened fd again with ``fstat`` (the entry may have been swapped between the look and the open).
  Reads are bounded (``read_regular(limit=)``): a huge or sparse file never fills memory.
- **Write relative to a folder fd.** ``open_dir_nofollow(root, rel)`` walks ``rel`` one component at a
  time with ``O_DIRECTORY|O_NOFOLLOW``; every later write, rename, mkdir or unlink is an ``*at`` call
  on that fd (``dir_fd=``), so swapping a folder of the path for a symlink afterwards cannot move the
  write outside the store: the fd still names the folder that was opened.

Every function here that others must use: ``open_dir_nofollow``, ``DirFds``, ``open_regular``,
``read_regular``, ``sha256_regular``, ``stat_at``, ``write_temp_at``, ``replace_at``, ``atomic_write_at``,
``mkdir_at``, ``unlink_temp_at``, ``is_guardian_temp``, ``clean_guardian_temps``, and for walks
``list_folder_stats`` (a folder's names and chosen lstat fields of every entry, in flat columns).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import operator
import os
import stat as statmod
from array import array
from collections.abc import Iterator
from functools import partial
from itertools import chain

from guardian.local.fsutil import TEMP_PREFIX, write_all

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CHUNK = 1 << 20
# Only these bits of a mode are ever given to what guardian writes into the store: chromem creates its
# files with os.Create (0666 less the umask) and its folders 0755-style; setuid, setgid, sticky and an
# executable bit never come back from a snapshot or a manifest.
FILE_PERMISSION_BITS = 0o666
DIR_PERMISSION_BITS = 0o777


class NotRegularFile(OSError):
    """The entry is not a regular file (FIFO, socket, device, folder, symlink): guardian never opens it."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({what})", path)
        self.what = what


class UnsafeFolder(OSError):
    """A folder on the way is a symlink or not a folder: guardian never writes through it."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(errno.ENOTDIR, f"not a real folder ({what})", path)
        self.what = what

    def __reduce__(self):   # raised in a restore's worker process, re-raised in the restoring one
        return UnsafeFolder, (self.filename, self.what)


def kind_of(mode: int) -> str:
    """A short name for a file type (for problems and errors)."""
    for test, name in ((statmod.S_ISREG, "regular file"), (statmod.S_ISDIR, "folder"),
                       (statmod.S_ISLNK, "symlink"), (statmod.S_ISFIFO, "FIFO"), (statmod.S_ISSOCK, "socket"),
                       (statmod.S_ISCHR, "character device"), (statmod.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "unknown file type"


def safe_mode(mode: int | None, default: int = 0o600, folder: bool = False) -> int:
    """Permission bits only (never setuid/setgid/sticky, a file never executable); ``default`` when
    none are left."""
    bits = (mode or 0) & (DIR_PERMISSION_BITS if folder else FILE_PERMISSION_BITS)
    return bits or default


# --------------------------------------------------------------------------- folders


def open_dir_nofollow(root: str | os.PathLike, rel: str = "") -> int:
    """An fd of the folder ``root/rel``; ``root`` is the user's path (opened as a folder, symlinks in
    it allowed: it is the user's choice), each component of ``rel`` is opened without following a
    symlink. Raises UnsafeFolder when a component is a symlink or not a folder."""
    parts = _parts(rel)  # '..' is refused before anything is opened
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for part in parts:
        fd = _step(fd, part, rel)  # closes the fd it is given, whatever happens: never close it twice
    return fd


def _parts(rel: str) -> list[str]:
    parts = [p for p in str(rel).split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeFolder(rel, "'..' in the path")
    return parts


def _step(fd: int, name: str, rel: str) -> int:
    """Open ``name`` inside ``fd`` as a folder (never through a symlink); closes ``fd``."""
    try:
        child = os.open(name, DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            info = _lstat_or_none(name, fd)
            raise UnsafeFolder(rel, kind_of(info.st_mode) if info else "missing") from None
        raise
    finally:
        os.close(fd)
    return child


def _lstat_or_none(name: str, dir_fd: int | None) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None


class DirFds:
    """Folder fds of one store, opened once per folder (without following symlinks) and kept open
    for the whole operation; ``close()`` (or ``with``) closes them all."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.fspath(root)
        self.fds: dict[str, int] = {}

    @classmethod
    def from_fd(cls, root_fd: int, root: str | os.PathLike) -> "DirFds":
        """Over a root folder already open (taken over: ``close()`` closes it), e.g. one just made
        with ``mkdir_at``, so not even the root is looked up by path again."""
        dirs = cls(root)
        dirs.fds[""] = root_fd
        return dirs

    def makedirs(self, rel_dir: str) -> int:
        """The fd of ``rel_dir``, creating each missing folder (0700) through its parent's fd."""
        parts = _parts(rel_dir)
        for depth in range(1, len(parts) + 1):
            parent, name = "/".join(parts[:depth - 1]), parts[depth - 1]
            if "/".join(parts[:depth]) not in self.fds:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=self.get(parent))
        return self.get("/".join(parts))

    def __enter__(self) -> "DirFds":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, rel_dir: str) -> int:
        """The fd of folder ``rel_dir`` ("" is the root), opened relative to its parent's fd."""
        rel_dir = "/".join(_parts(rel_dir))
        if rel_dir in self.fds:
            return self.fds[rel_dir]
        if not rel_dir:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            parent, _, name = rel_dir.rpartition("/")
            fd = _step(os.dup(self.get(parent)), name, rel_dir)
        self.fds[rel_dir] = fd
        return fd

    def parent_of(self, rel: str) -> tuple[int, str]:
        """(fd of the folder holding ``rel``, the entry's name in it)."""
        parent, _, name = "/".join(_parts(rel)).rpartition("/")
        return self.get(parent), name

    def forget(self, rel_dir: str) -> None:
        """Close the fds of ``rel_dir`` and below (it was moved away or replaced)."""
        rel_dir = "/".join(_parts(rel_dir))
        for key in [k for k in self.fds if k == rel_dir or k.startswith(rel_dir + "/")]:
            os.close(self.fds.pop(key))

    def close(self) -> None:
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


# --------------------------------------------------------------------------- listing folders


try:  # optional C accelerator (guardian/local/_listing.c): same results, the GIL released meanwhile
    from guardian.local import _listing as _accelerated
except ImportError:  # pragma: no cover - depends on the build
    _accelerated = None

# The letters list_folder_stats takes, and the os.stat_result field each one is.
STAT_FIELDS = {"s": "st_size", "m": "st_mtime_ns", "c": "st_ctime_ns", "i": "st_ino", "M": "st_mode",
               "d": "st_dev", "n": "st_nlink"}
# lstat threads for one big folder (the accelerator only; folders under 4096 entries use one). On 2
# shared cores, 100k entries (bench/bench_listing.py): at load 5, scandir + lstat 555 ms, the Python
# path 562 ms, C with 1 thread 257 ms, with 2 threads 206 ms; at load 6.6, 393 / 474 / 238 / 235 ms
# (two threads help when a core is free and cost nothing when none is).
LISTING_THREADS = 2


def list_folder_stats(dir_fd: int, fields: str) -> tuple[list[str], array]:
    """The names of folder ``dir_fd``'s entries (as ``os.listdir(dir_fd)``: directory order, no "." or
    "..") and, per entry, the lstat ``fields`` (letters of STAT_FIELDS) in one flat ``array('q')``
    (``len(fields)`` numbers per entry, in that order). Every lstat is relative to ``dir_fd`` and never
    follows a symlink: open the folder with ``open_dir_nofollow``/``DIR_FLAGS`` and nothing on the
    path can redirect the walk.

    A walk of 100k entries is mostly this call: with the C accelerator it runs in C with the GIL
    released (no stat_result object per entry; other threads run meanwhile). Without it the same
    calls run from Python. Both raise alike: OSError for the first entry (in directory order) whose
    lstat fails (FileNotFoundError: removed after it was listed), OverflowError when a number does
    not fit 64 bits signed; the caller then reads the folder its slower, per-entry way.
    """
    if _accelerated is None:
        return list_folder_stats_python(dir_fd, fields)
    names, raw = _accelerated.list_folder(dir_fd, fields, LISTING_THREADS)
    numbers = array("q")
    numbers.frombytes(raw)
    return names, numbers


def stat_names(dir_fd: int, names: list[str], fields: str) -> array:
    """The lstat ``fields`` of each of ``names`` in folder ``dir_fd``, as list_folder_stats gives them."""
    if _accelerated is None:
        return stat_names_python(dir_fd, names, fields)
    numbers = array("q")
    numbers.frombytes(_accelerated.stat_names(dir_fd, names, fields, LISTING_THREADS))
    return numbers


def list_folder_stats_python(dir_fd: int, fields: str) -> tuple[list[str], array]:
    """list_folder_stats without the accelerator (and the reference its tests compare it with)."""
    names = os.listdir(dir_fd)
    return names, stat_names_python(dir_fd, names, fields)


def stat_names_python(dir_fd: int, names: list[str], fields: str) -> array:
    """stat_names without the accelerator: one lstat per name, its fields taken in C by attrgetter."""
    try:
        if not 1 <= len(fields) <= 16:
            raise KeyError(fields)
        getter = operator.attrgetter(*(STAT_FIELDS[field] for field in fields))
    except (KeyError, TypeError):
        raise ValueError(f"unknown stat fields {fields!r}") from None
    stats = map(partial(os.stat, dir_fd=dir_fd, follow_symlinks=False), names)
    if len(fields) == 1:
        return array("q", map(getter, stats))
    return array("q", chain.from_iterable(map(getter, stats)))


# --------------------------------------------------------------------------- reading regular files


def stat_at(name: str, dir_fd: int | None = None) -> os.stat_result:
    """lstat of ``name`` (relative to ``dir_fd`` when given)."""
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def open_regular(path: str | os.PathLike, dir_fd: int | None = None, follow: bool = False) -> int:
    """A read-only fd of a regular file, never blocking and never anything else.

    ``follow``: a symlink to a regular file is followed (as chromem's os.Open does; used only to
    predict what chromem reads). Without it a symlink is refused. A FIFO, socket or device is refused
    before it is opened (lstat/stat), and the opened fd is checked again (fstat) in case the entry was
    swapped in between; O_NONBLOCK makes even that race unable to hang the open.
    """
    path = os.fspath(path)
    info = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow)
    if not statmod.S_ISREG(info.st_mode):
        raise NotRegularFile(path, kind_of(info.st_mode))
    flags = READ_FLAGS & ~os.O_NOFOLLOW if follow else READ_FLAGS
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise NotRegularFile(path, "symlink") from None
        raise
    try:
        opened = os.fstat(fd)
        if not statmod.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise NotRegularFile(path, f"{kind_of(opened.st_mode)} (swapped while opening)")
    except BaseException:
        os.close(fd)
        raise
    return fd


class TooLarge(OSError):
    """A file is larger than the bound guardian reads into memory."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(errno.EFBIG, f"larger than {limit} bytes", path)
        self.limit = limit


def read_regular(path: str | os.PathLike, limit: int | None = None, dir_fd: int | None = None,
                 follow: bool = False, prefix: bool = False) -> bytes:
    """The bytes of a regular file, at most ``limit`` of them: past it, TooLarge — or, with
    ``prefix``, the first ``limit`` bytes (enough to judge a file a decoder reads from the front)."""
    fd = open_regular(path, dir_fd, follow)
    try:
        size = os.fstat(fd).st_size
        if limit is None:
            return read_to_end(fd, size)
        data = read_to_end(fd, size, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        if not prefix:
            raise TooLarge(os.fspath(path), limit)
        return data[:limit]
    return data


def read_to_end(fd: int, size_hint: int, limit: int | None = None) -> bytes:
    """The bytes of ``fd`` to its end, at most ``limit`` of them, in reads sized by the file's size
    (``size_hint``, from fstat). Asking for ``limit`` bytes at once would allocate a buffer that large
    per file (64 MiB for a chromem file: ~50 µs each, seconds over a 100k store). A short read is the
    end of a regular file; a file that grew while read is read on (up to the limit), so it is seen."""
    chunks = []
    total = 0
    want = max(size_hint, 0) + 1   # one byte more than the size: a grown file shows at once
    if limit is not None:
        want = min(want, limit)
    while limit is None or total < limit:
        ask = want if limit is None else min(want, limit - total)
        chunk = os.read(fd, ask)
        chunks.append(chunk)
        total += len(chunk)
        if len(chunk) < ask:
            break
        want = max(want, CHUNK)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def sha256_regular(path: str | os.PathLike, dir_fd: int | None = None) -> str:
    """sha256 of a regular file (streamed: memory stays at one chunk whatever the size)."""
    digest = hashlib.sha256()
    fd = open_regular(path, dir_fd)
    try:
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def exists_at(name: str, dir_fd: int | None = None) -> bool:
    """Whether anything (even a dangling symlink) is at ``name``."""
    return _lstat_or_none(name, dir_fd) is not None


# --------------------------------------------------------------------------- writing


def copy_regular(src: str | os.PathLike, src_dir_fd: int | None, dst: str | os.PathLike,
                 dst_dir_fd: int | None = None, mode: int = 0o600) -> str:
    """Stream a regular file to a new file ``dst`` (never over an existing one), fsync it, and
    return the sha256 of what was read; memory stays at one chunk."""
    source = open_regular(src, src_dir_fd)
    digest = hashlib.sha256()
    try:
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=dst_dir_fd)
        try:
            while chunk := os.read(source, CHUNK):
                digest.update(chunk)
                write_all(out, chunk)
            os.fchmod(out, safe_mode(mode))
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        os.close(source)
    return digest.hexdigest()


def temp_name_for(name: str) -> str:
    """A fresh guardian temp name for ``name`` (never ends in .gob/.gob.gz: chromem ignores it)."""
    return f"{TEMP_PREFIX}{name}.{os.urandom(4).hex()}"


def is_guardian_temp(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


def write_temp_at(dir_fd: int, name: str, data: bytes | memoryview, mode: int = 0o600,
                  mtime_ns: int | None = None, sync: bool = True) -> str:
    """Write ``data`` durably to a new temp file next to ``name`` in ``dir_fd``; returns the temp name.
    The mode is reduced to permission bits (``safe_mode``). ``sync=False``: no fsync, for a caller
    that makes many files durable at once (``fsutil.sync_filesystem``) before renaming any."""
    temp = temp_name_for(name)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        try:
            write_all(fd, data)
            os.fchmod(fd, safe_mode(mode))
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        unlink_temp_at(dir_fd, temp)
        raise
    return temp


def replace_at(src_dir_fd: int, src: str, dst: str, dst_dir_fd: int | None = None) -> None:
    """Rename ``src`` over ``dst``, both relative to folder fds (the same one by default)."""
    os.replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=src_dir_fd if dst_dir_fd is None else dst_dir_fd)


def atomic_write_at(dir_fd: int, name: str, data: bytes, mode: int = 0o600, sync_dir: bool = True) -> None:
    """Temp file in the same folder fd, fsync, rename over ``name``, fsync the folder."""
    temp = write_temp_at(dir_fd, name, data, mode)
    try:
        replace_at(dir_fd, temp, name)
    except BaseException:
        unlink_temp_at(dir_fd, temp)
        raise
    if sync_dir:
        os.fsync(dir_fd)


PLACED, ALREADY_THERE, TAKEN = "placed", "already there", "taken"


def place_new_at(dir_fd: int, name: str, data: bytes, mode: int = 0o600, sync: bool = True) -> str:
    """Put ``data`` at ``name`` only where nothing is: never over what is there, even if a writer makes
    it a moment before. Returns PLACED, ALREADY_THERE (a regular file with these very bytes was there)
    or TAKEN (something else is there: left as it is). ``sync=False``: the caller fsyncs the folder.
    Many files: :func:`write_temp_at` each (``sync=False``), one ``fsutil.sync_filesystem``, then
    :func:`link_new_at` each."""
    if exists_at(name, dir_fd):
        return what_is_there(dir_fd, name, data)
    placed = link_new_at(dir_fd, write_temp_at(dir_fd, name, data, mode), name)
    if sync:
        os.fsync(dir_fd)
    return placed


def link_new_at(dir_fd: int, temp: str, name: str) -> str:
    """Give the (durable) temp file ``temp`` the name ``name`` unless that name exists, and drop the temp
    name: a hard link fails where the name exists, so the check and the placing are one system call.
    PLACED, ALREADY_THERE or TAKEN as :func:`place_new_at`."""
    try:
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            return what_is_there(dir_fd, name, read_regular(temp, dir_fd=dir_fd))
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            if exists_at(name, dir_fd):   # no hard links on this filesystem: the check, then a rename
                return what_is_there(dir_fd, name, read_regular(temp, dir_fd=dir_fd))
            replace_at(dir_fd, temp, name)
        return PLACED
    finally:
        unlink_temp_at(dir_fd, temp)


def what_is_there(dir_fd: int, name: str, data: bytes) -> str:
    """ALREADY_THERE when ``name`` is a regular file holding exactly ``data``, else TAKEN."""
    try:
        same = read_regular(name, limit=len(data), dir_fd=dir_fd) == data
    except OSError:   # a folder, a symlink, a FIFO, larger: not these bytes
        same = False
    return ALREADY_THERE if same else TAKEN


def mkdir_at(dir_fd: int, name: str, mode: int = 0o755, sync: bool = True) -> bool:
    """Create folder ``name`` in ``dir_fd`` with permission bits ``mode``; False if it existed.
    ``sync=False``: the caller makes the new entry durable later (with its other writes)."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        return False
    child = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    try:
        os.fchmod(child, safe_mode(mode, 0o755, folder=True))
    finally:
        os.close(child)
    if sync:
        os.fsync(dir_fd)
    return True


def unlink_temp_at(dir_fd: int, name: str) -> bool:
    """Remove one of guardian's own temp files (refuses any other name: never a user's file)."""
    if not is_guardian_temp(name):
        raise ValueError(f"refusing to remove {name!r}: not a guardian temp file")
    try:
        info = stat_at(name, dir_fd)
        if statmod.S_ISDIR(info.st_mode):
            return False
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def guardian_temps(root: str | os.PathLike) -> list[str]:
    """Relative paths of guardian's temp files in the store root and its real folders (depth 1:
    where guardian writes), found without following a symlink."""
    found: list[str] = []
    for rel_dir, names in _folders_depth1(root):
        found.extend(f"{rel_dir}/{n}" if rel_dir else n for n in names if is_guardian_temp(n))
    return found


def _folders_depth1(root) -> Iterator[tuple[str, list[str]]]:
    try:
        with os.scandir(root) as it:
            top = list(it)
    except OSError:
        return
    yield "", [e.name for e in top if not e.is_dir(follow_symlinks=False)]
    for entry in top:
        if entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                yield entry.name, [e.name for e in os.scandir(entry.path) if not e.is_dir(follow_symlinks=False)]


def clean_guardian_temps(root: str | os.PathLike) -> list[str]:
    """Remove guardian's own temp files left by a killed write (root and collection folders); returns
    their relative paths. Removal goes through folder fds opened without following symlinks."""
    removed: list[str] = remove_stale_stages(root)
    with DirFds(root) as dirs:
        for rel in guardian_temps(root):
            with contextlib.suppress(OSError):
                fd, name = dirs.parent_of(rel)
                if unlink_temp_at(fd, name):
                    removed.append(rel)
        for fd in dirs.fds.values():
            with contextlib.suppress(OSError):
                os.fsync(fd)
    return removed


# A restore stages a folder the store lacks entirely inside <store>/STAGE_PREFIX<token>/<folder>/ and
# renames it into place: chromem skips a folder that holds only folders, so a killed restore's staging
# folder is harmless until removed (by the next guardian write, like any other leftover).
STAGE_PREFIX = TEMP_PREFIX + "restore."
STAGE_REMOVE_TRIES = 5   # walks of a staging folder before its removal gives up (see remove_stage_dir)


def remove_stage_dir(root_fd: int, name: str) -> None:
    """Remove one of guardian's staging folders (``.guardian-tmp-restore.*`` in the store root) and
    everything in it: only guardian ever writes there. Walks by folder fds, never following a symlink.

    An entry that appears while the folder is being emptied (a rename inside it that was still in
    flight when the walk listed it) makes the last rmdir fail with ENOTEMPTY: the walk is then made
    again, a few times, so that such a race does not leave the staging folder behind."""
    if not (name.startswith(STAGE_PREFIX) and "/" not in name):
        raise ValueError(f"refusing to remove {name!r}: not a guardian staging folder")
    for attempt in range(STAGE_REMOVE_TRIES):
        try:
            _empty_folder_at(root_fd, name)
            os.rmdir(name, dir_fd=root_fd)
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY or attempt == STAGE_REMOVE_TRIES - 1:
                raise



def _empty_folder_at(parent_fd: int, name: str) -> None:
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                _empty_folder_at(fd, entry.name)
                os.rmdir(entry.name, dir_fd=fd)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)


def remove_stale_stages(root: str | os.PathLike) -> list[str]:
    """Remove staging folders a killed restore left in the store root (guardian's own); their names."""
    removed = []
    try:
        names = [n for n in os.listdir(root) if n.startswith(STAGE_PREFIX)]
    except OSError:
        return removed
    if not names:
        return removed
    root_fd = open_dir_nofollow(root)
    try:
        for name in names:
            with contextlib.suppress(OSError):
                remove_stage_dir(root_fd, name)
                removed.append(name)
        os.fsync(root_fd)
    finally:
        os.close(root_fd)
    return removed
