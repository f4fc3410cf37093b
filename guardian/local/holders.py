"""Which processes hold files of the store open, and whether for writing.

chromem-go updates a document by ``os.Create`` (open with O_TRUNC) and then writing through the
same descriptor: between the truncate and the write the file is 0 bytes, and that window can last
as long as the writer is paused (a stopped, swapped or debugged contextd). The clock cannot tell a
paused writer from damage nobody will ever mend; the operating system can. On Linux every
process's descriptors are links under ``/proc/PID/fd`` and their open flags are in
``/proc/PID/fdinfo/FD``; a descriptor's target is matched by (device, inode), not by its path, so
a file renamed or unlinked while held is still recognised as the same file.

What cannot be seen is reported, never guessed: a process of this user whose descriptors could not
be read (it exited mid-scan is not that: it holds nothing), or a platform without ``/proc``, makes
``HolderScan.complete`` false, and a caller then takes the safe side (treat the file as held).
Processes of other users are skipped: they cannot read our ``/proc`` entries, and a store under a
user's home is that user's.  macOS has no ``/proc``: ``lsof`` (shipped with the system) answers
there; where it is missing the scan is incomplete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
_ACCESS_MODE = 0o3   # O_ACCMODE
LSOF_TIMEOUT = 10.0


@dataclass(frozen=True)
class Holder:
    """One open descriptor of one process on a file of interest."""

    pid: int
    command: str          # the command line, space-joined (the executable name where it is unreadable)
    path: str             # the path the kernel reports for the descriptor (may end in " (deleted)")
    fd: int
    writable: bool        # opened O_WRONLY or O_RDWR
    device: int
    inode: int


@dataclass
class HolderScan:
    """The descriptors found on the files asked about; ``complete`` is False when some process of
    this user could not be inspected (then "nobody holds it" is not known)."""

    holders: list[Holder] = field(default_factory=list)
    complete: bool = True
    unreadable_pids: list[int] = field(default_factory=list)

    def of(self, device: int, inode: int) -> list[Holder]:
        return [h for h in self.holders if (h.device, h.inode) == (device, inode)]

    def writers_of(self, device: int, inode: int) -> list[Holder]:
        return [h for h in self.of(device, inode) if h.writable]

    def maybe_written(self, device: int, inode: int) -> bool:
        """True when a process holds the file for writing, or when that cannot be ruled out."""
        return bool(self.writers_of(device, inode)) or not self.complete

    def processes(self) -> dict[int, str]:
        """pid -> command line of every holder (one entry a process)."""
        return {h.pid: h.command for h in self.holders}


def _command_line(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        raw = b""
    if raw:
        return " ".join(part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0"))
    try:
        return (pid_dir / "comm").read_text().strip()
    except OSError:
        return "?"


def _fd_writable(pid_dir: Path, fd: str) -> bool | None:
    try:
        with open(pid_dir / "fdinfo" / fd, "rb") as info:
            for line in info:
                if line.startswith(b"flags:"):
                    return int(line.split()[1], 8) & _ACCESS_MODE != 0
    except (OSError, ValueError, IndexError):
        return None
    return None


def _scan_proc(prefix: str | None, inodes: set[tuple[int, int]] | None) -> HolderScan:
    scan = HolderScan()
    me = os.getpid()
    uid = os.getuid()
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        pid_dir = Path(entry.path)
        try:
            owner = entry.stat(follow_symlinks=False).st_uid
        except OSError:
            continue   # gone
        if uid != 0 and owner != uid:
            continue   # another user's process: not ours to see, and not the store's writer
        try:
            fds = os.listdir(pid_dir / "fd")
        except FileNotFoundError:
            continue   # exited meanwhile: holds nothing
        except OSError:
            if pid_dir.exists():
                scan.complete = False
                scan.unreadable_pids.append(pid)
            continue
        found: list[tuple[str, str, os.stat_result]] = []
        for fd in fds:
            link = pid_dir / "fd" / fd
            try:
                target = os.readlink(link)
            except OSError:
                continue   # closed meanwhile
            if not target.startswith("/"):
                continue   # pipe:, socket:, anon_inode:
            if inodes is None and not (target + "/").startswith(prefix):
                continue
            try:
                st = os.stat(link)   # the descriptor's own file, whatever its path is now
            except OSError:
                continue
            if inodes is not None and (st.st_dev, st.st_ino) not in inodes:
                continue
            found.append((fd, target, st))
        if not found:
            continue
        command = _command_line(pid_dir)
        for fd, target, st in found:
            writable = _fd_writable(pid_dir, fd)
            if writable is None:
                continue   # closed meanwhile
            scan.holders.append(Holder(pid, command, target, int(fd), writable, st.st_dev, st.st_ino))
    return scan


def _scan_lsof(root: Path) -> HolderScan:
    lsof = shutil.which("lsof") or ("/usr/sbin/lsof" if os.path.exists("/usr/sbin/lsof") else None)
    if lsof is None:
        return HolderScan(complete=False)
    try:
        out = subprocess.run([lsof, "-n", "-P", "-w", "-F", "pcfan", "+D", str(root)], capture_output=True,
                             timeout=LSOF_TIMEOUT, check=False).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return HolderScan(complete=False)
    scan = HolderScan()
    pid, command, fd, access = 0, "?", -1, ""
    for line in out.splitlines():
        tag, value = line[:1], line[1:]
        if tag == "p":
            pid, command = int(value), "?"
        elif tag == "c":
            command = value
        elif tag == "f":
            fd = int(value) if value.isdigit() else -1
        elif tag == "a":
            access = value
        elif tag == "n" and fd >= 0:
            try:
                st = os.stat(value)
            except OSError:
                continue
            scan.holders.append(Holder(pid, command, value, fd, access in ("w", "u"), st.st_dev, st.st_ino))
    return scan


def holders_under(root: str | os.PathLike) -> HolderScan:
    """Every descriptor held by another process on a path under ``root`` (the store)."""
    real = os.path.realpath(root)
    if PROC.joinpath("self", "fd").is_dir():
        return _scan_proc(real.rstrip("/") + "/", None)
    if sys.platform == "darwin":
        return _scan_lsof(Path(real))
    return HolderScan(complete=False)


def holders_of(files: list[tuple[int, int]], root: str | os.PathLike | None = None) -> HolderScan:
    """Every descriptor held by another process on one of ``files`` (device, inode pairs), wherever
    the file is now (renamed, unlinked). ``root`` is only needed where there is no /proc."""
    if PROC.joinpath("self", "fd").is_dir():
        return _scan_proc(None, set(files))
    if sys.platform == "darwin" and root is not None:
        scan = _scan_lsof(Path(os.path.realpath(root)))
        wanted = set(files)
        scan.holders = [h for h in scan.holders if (h.device, h.inode) in wanted]
        return scan
    return HolderScan(complete=False)
