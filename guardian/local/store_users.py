"""Which processes use a store: the ones a restore must name, because they would not see it.

A contextd keeps the whole store in memory and writes its own changes back file by file: it never
reads a restore until it restarts, and its next write puts its own (older) view back. But it holds a
store file open only while writing one, so "who holds files open" (``holders``) finds it only by
luck. A process counts as using the store when (Linux, this user's processes, from ``/proc``):

- it holds a file or folder at or under the store open (``holders.holders_under``);
- its command line names the store, or a path inside it (``--store PATH``, ``chromemh writer PATH``);
- it is a contextd (its program is named ``contextd``) whose store is this one: the path in its
  environment (``CONTEXTD_VECTORSTORE_CHROMEM_PATH``), else contextd's default
  (``$HOME/.config/contextd/vectorstore``, with the HOME it runs with). A contextd with a config file
  (``~/.config/contextd/config.yaml``, which may name another path) and neither of those is listed
  as *may use* the store (``certain`` False).

guardian's own processes are not listed (the sidecar, ``guardian mcp``'s relay); a supervised child
is (the caller knows its process group and says so). Limits: processes of other users are not
seen; a program that reads the store but is not named contextd, names no store path and holds no
file at the moment is not found; macOS has no ``/proc``: there ``lsof`` finds the holders and ``ps``
the command lines (no environments: a contextd not naming the store is a *may*).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from guardian.local.holders import PROC, holders_under

CONTEXTD_PATH_ENV = "CONTEXTD_VECTORSTORE_CHROMEM_PATH"
CONTEXTD_DEFAULT = ".config/contextd/vectorstore"
CONTEXTD_CONFIG = ".config/contextd/config.yaml"


@dataclass(frozen=True)
class StoreUser:
    pid: int
    command: str
    why: str
    certain: bool = True
    group: int = 0            # its process group (a supervised child leads its own)

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command}): {self.why}"

    def to_dict(self) -> dict:
        return {"pid": self.pid, "command": self.command, "why": self.why, "certain": self.certain}


@dataclass
class StoreUsers:
    users: list[StoreUser] = field(default_factory=list)
    complete: bool = True     # False: some process of this user could not be inspected

    def outside(self, group: int | None) -> list[StoreUser]:
        """Every user not in process group ``group`` (a supervised child's, stopped around a restore)."""
        return [u for u in self.users if group is None or u.group != group]


def _is_guardian(argv: list[str]) -> bool:
    names = [os.path.basename(a) for a in argv[:3]]
    return "guardian" in names or any(a == "-m" and b == "guardian" for a, b in zip(argv, argv[1:]))


def _is_contextd(argv: list[str], comm: str) -> bool:
    return bool(argv) and os.path.basename(argv[0]).startswith("contextd") or comm.startswith("contextd")


def _within(path: str, store: str) -> bool:
    return path == store or path.startswith(store.rstrip("/") + "/")


def _names_store(argv: list[str], store: str, home: str | None, cwd: str | None = None) -> bool:
    """Whether an argument is the store or a path in it (``~`` with the process's HOME, a relative
    path against its working folder)."""
    for arg in argv[1:]:
        value = arg.rpartition("=")[2] if arg.startswith("-") else arg
        if not value or value.startswith("-"):
            continue
        if value.startswith("~") and home:
            value = home + value[1:]
        elif not value.startswith("/") and cwd and "/" in value:
            value = os.path.join(cwd, value)
        if value.startswith("/") and _within(os.path.realpath(value), store):
            return True
    return False


def _contextd_store(environ: dict[str, str]) -> tuple[str | None, bool]:
    """(the store path a contextd with this environment uses, whether that is certain)."""
    home = environ.get("HOME", "")
    path = environ.get(CONTEXTD_PATH_ENV)
    if path:
        if path.startswith("~"):
            path = (home + path[1:]) if home else os.path.expanduser(path)
        return os.path.realpath(path), True
    if not home:
        return None, False
    certain = not os.path.exists(os.path.join(home, CONTEXTD_CONFIG))
    return os.path.realpath(os.path.join(home, CONTEXTD_DEFAULT)), certain


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _ancestry() -> set[int]:
    """This process and its parents (a shell whose command line names the store is not a writer)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        stat = _read(PROC / str(pid) / "stat")
        try:
            pid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (ValueError, IndexError):
            break
    return pids


def _group_of(pid_dir: Path) -> int:
    stat = _read(pid_dir / "stat")
    try:
        return int(stat[stat.rindex(b")") + 2:].split()[2])
    except (ValueError, IndexError):
        return 0


def store_users(store: str | os.PathLike) -> StoreUsers:
    """Every process of this user that uses the store (see the module docstring)."""
    real = os.path.realpath(store)
    holders = holders_under(real)
    found = StoreUsers(complete=holders.complete)
    held: dict[int, list] = {}
    for holder in holders.holders:
        held.setdefault(holder.pid, []).append(holder)
    if not PROC.joinpath("self").is_dir():
        return _without_proc(real, held, found)
    mine, uid = _ancestry(), os.getuid()   # this process and those that started it: not writers of the store
    for entry in os.scandir(PROC):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        pid, pid_dir = int(entry.name), Path(entry.path)
        try:
            if uid != 0 and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError:
            continue
        argv = [a.decode("utf-8", "replace") for a in _read(pid_dir / "cmdline").rstrip(b"\0").split(b"\0") if a]
        if not argv or _is_guardian(argv):
            continue   # a kernel thread, a zombie, or guardian itself
        comm = _read(pid_dir / "comm").decode("utf-8", "replace").strip()
        why, certain = _why(pid, argv, comm, pid_dir, real, held)
        if why:
            found.users.append(StoreUser(pid, " ".join(argv), why, certain, _group_of(pid_dir)))
    return found


def _why(pid: int, argv: list[str], comm: str, pid_dir: Path, store: str, held: dict) -> tuple[str, bool]:
    if pid in held:
        writing = [h for h in held[pid] if h.writable]
        if writing:
            return f"holds {len(writing)} store file(s) open for writing ({_short(writing[0].path, store)})", True
        return f"holds {len(held[pid])} store file(s) or folder(s) open ({_short(held[pid][0].path, store)})", True
    environ = dict(part.split("=", 1) for part in _read(pid_dir / "environ").decode("utf-8", "replace").split("\0")
                   if "=" in part)
    try:
        cwd = os.readlink(pid_dir / "cwd")
    except OSError:
        cwd = None
    if _names_store(argv, store, environ.get("HOME"), cwd):
        return "names the store on its command line", True
    if _is_contextd(argv, comm):
        path, certain = _contextd_store(environ)
        if path == store:
            source = "its environment" if CONTEXTD_PATH_ENV in environ else "contextd's default path"
            return (f"a contextd using this store ({source})" if certain else
                    f"a contextd that may use this store (contextd's default path, unless its {CONTEXTD_CONFIG} "
                    "names another)"), certain
        if not environ:
            return "a contextd whose store guardian cannot tell (its environment is unreadable)", False
    return "", True


def _short(path: str, store: str) -> str:
    return path[len(store.rstrip("/")) + 1:] or "the store folder" if _within(path, store) else path


def _without_proc(store: str, held: dict, found: StoreUsers) -> StoreUsers:
    """macOS: ``lsof``'s holders, and ``ps``'s command lines (contextd, or the store named)."""
    for pid, holders in held.items():
        found.users.append(StoreUser(pid, holders[0].command, "holds store files open", True))
    if sys.platform != "darwin":
        found.complete = False
        return found
    try:
        out = subprocess.run(["ps", "-x", "-o", "pid=,pgid=,command="], capture_output=True, timeout=10,
                             check=False).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        found.complete = False
        return found
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[0].isdigit() or int(parts[0]) in held or int(parts[0]) == os.getpid():
            continue
        argv = parts[2].split()
        if _is_guardian(argv):
            continue
        if _names_store(argv, store, os.environ.get("HOME")):
            found.users.append(StoreUser(int(parts[0]), parts[2], "names the store on its command line", True,
                                         int(parts[1]) if parts[1].isdigit() else 0))
        elif _is_contextd(argv, ""):
            found.users.append(StoreUser(int(parts[0]), parts[2], "a contextd that may use this store", False,
                                         int(parts[1]) if parts[1].isdigit() else 0))
    return found
