"""The per-store writer lock (flock) that serialises snapshot, restore and repair."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from guardian.errors import LockError, StateDirError
from guardian.local.fsutil import ensure_dir


@contextlib.contextmanager
def store_lock(lock_file: str | os.PathLike, timeout: float = 30.0, sleep=time.sleep, clock=time.monotonic):
    """Hold an exclusive flock on ``lock_file``; wait up to ``timeout`` seconds for it."""
    lock_file = Path(lock_file)
    try:
        ensure_dir(lock_file.parent)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # the state dir is read-only, not ours, or full: name it, never a traceback
        raise StateDirError(f"cannot take the lock {lock_file}: {exc.strerror or exc}") from None
    try:
        deadline = clock() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    raise LockError(f"could not take the lock {lock_file} within {timeout:g}s") from None
                sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield fd
    finally:
        os.close(fd)  # closing releases the flock
