"""The per-store locks, keyed on the store itself (its device and inode), never on the state dir.

Two guardians pointed at one store with different state dirs must still exclude each other (a
repair once removed a concurrent restore's staged files that way), so the lock files live in one
per-user folder outside every state dir and outside the store, named after the store's identity:

- ``<dev>-<inode>.store.lock``   serialises writers: snapshot, restore, repair, quarantine restore
  (callers wait for it a while: eight MCP sessions starting at once queue up, they do not fail);
- ``<dev>-<inode>.sidecar.lock`` one ``guardian run`` per store; it records the holder's pid so the
  second one is refused with the first one's pid and how to stop it.

The folder: ``$GUARDIAN_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/guardian/locks``, else
``/tmp/guardian-<uid>/locks`` (0700, refused when another user owns it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat as statmod
import tempfile
import time
from pathlib import Path

from guardian.errors import LockError, StateDirError
from guardian.local.fsutil import ensure_dir


def lock_dir() -> Path:
    """The per-user folder holding every store lock (see the module docstring)."""
    override = os.environ.get("GUARDIAN_LOCK_DIR")
    if override:
        return Path(override).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "guardian" / "locks"
    return Path(tempfile.gettempdir()) / f"guardian-{os.getuid()}" / "locks"


def store_identity(store: str | os.PathLike) -> str:
    """``<dev>-<inode>`` of the store folder (symlinks followed: the real store); a path hash if absent."""
    try:
        info = os.stat(store)
    except OSError:
        return "path-" + hashlib.sha256(os.fsencode(os.path.realpath(store))).hexdigest()[:16]
    return f"{info.st_dev:x}-{info.st_ino:x}"


def writer_lock_file(store: str | os.PathLike) -> Path:
    return lock_dir() / f"{store_identity(store)}.store.lock"


def sidecar_lock_file(store: str | os.PathLike) -> Path:
    return lock_dir() / f"{store_identity(store)}.sidecar.lock"


def child_record_file(store: str | os.PathLike) -> Path:
    return lock_dir() / f"{store_identity(store)}.child.json"


def _open_lock(lock_file: Path) -> int:
    try:
        folder = ensure_dir(lock_file.parent)
        info = os.lstat(folder)
    except OSError as exc:  # read-only, not ours, or full: name it, never a traceback
        raise StateDirError(f"cannot make the lock folder {lock_file.parent}: {exc.strerror or exc}") from None
    if info.st_uid != os.getuid() or not statmod.S_ISDIR(info.st_mode):
        raise LockError(f"the lock folder {folder} belongs to another user",
                        "set GUARDIAN_LOCK_DIR (or XDG_RUNTIME_DIR) to a folder of your own")
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateDirError(f"cannot take the lock {lock_file}: {exc.strerror or exc}") from None


def _record_holder(fd: int, extra: dict | None = None) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps({"pid": os.getpid(), **(extra or {})}) + "\n").encode(), 0)


def read_holder(lock_file: str | os.PathLike) -> dict:
    """What the current holder recorded (``pid`` …); {} when nothing readable is there."""
    try:
        text = Path(lock_file).read_text()
    except OSError:
        return {}
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        return data if isinstance(data, dict) else {}
    first = text.strip().split("\n")[0]
    return {"pid": int(first)} if first.isdigit() else {}


@contextlib.contextmanager
def store_lock(lock_file: str | os.PathLike, timeout: float = 30.0, sleep=time.sleep, clock=time.monotonic):
    """Hold an exclusive flock on ``lock_file``; wait up to ``timeout`` seconds for it."""
    lock_file = Path(lock_file)
    fd = _open_lock(lock_file)
    try:
        deadline = clock() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    holder = read_holder(lock_file).get("pid")
                    raise LockError(f"could not take the store lock {lock_file} within {timeout:g}s"
                                    + (f" (held by pid {holder})" if holder else "")) from None
                sleep(0.05)
        _record_holder(fd)
        yield fd
    finally:
        os.close(fd)  # closing releases the flock


@contextlib.contextmanager
def sidecar_lock(store: str | os.PathLike, state_dir: str | os.PathLike = ""):
    """One sidecar per store, whatever its state dir: a non-blocking flock held for the sidecar's life."""
    lock_file = sidecar_lock_file(store)
    fd = _open_lock(lock_file)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(lock_file)
            pid = holder.get("pid")
            where = f" (state dir {holder['state_dir']})" if holder.get("state_dir") else ""
            raise LockError(f"another guardian sidecar already guards {store}: pid {pid or 'unknown'}{where}",
                            f"stop it first (kill {pid or '<pid>'}, or `systemctl --user stop guardian`), "
                            "or use that one: `guardian status`") from None
        _record_holder(fd, {"state_dir": str(state_dir), "store": str(store)})
        yield fd
    finally:
        os.close(fd)
