"""Where guardian keeps its own files: the state dir, never inside the store root.

Layout (one folder per store, keyed by the store's real path)::

    $XDG_STATE_HOME/guardian/stores/<sha256(realpath)[:16]>/
        store.json        which store this folder belongs to
        snapshots/        content-addressed repository (blobs/, manifests/)
        quarantine/       everything guardian moved out of the store, with reasons
        cache/            verified-file cache, index cache
        catalog.json      every collection name ever seen in this store
        status.json       the sidecar's last status

The locks are not here: they are keyed on the store's device and inode (``guardian.local.lock``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from guardian.errors import StateDirError, StoreError
from guardian.local.fsutil import atomic_write_text, ensure_dir

DEFAULT_STORE = "~/.config/contextd/vectorstore"


def state_root(override: str | os.PathLike | None = None) -> Path:
    """The root of guardian's state: flag/env override, else $XDG_STATE_HOME/guardian."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("GUARDIAN_STATE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(xdg) / "guardian"


def store_key(store: str | os.PathLike) -> str:
    return hashlib.sha256(os.fsencode(os.path.realpath(store))).hexdigest()[:16]


@dataclass(frozen=True)
class StatePaths:
    """All paths guardian uses for one store."""

    store: Path
    root: Path

    @classmethod
    def for_store(cls, store: str | os.PathLike, state_dir: str | os.PathLike | None = None) -> "StatePaths":
        store_path = Path(os.path.realpath(os.path.expanduser(str(store))))
        root = state_root(state_dir) / "stores" / store_key(store_path)
        paths = cls(store=store_path, root=root)
        paths.refuse_inside_store()
        return paths

    def refuse_inside_store(self) -> None:
        store = str(self.store).rstrip(os.sep) + os.sep
        if str(self.root).startswith(store) or str(os.path.realpath(self.root)).startswith(store):
            raise StoreError(
                f"guardian's state dir {self.root} is inside the store {self.store}; chromem would load it",
                "set GUARDIAN_STATE_DIR (or --state-dir) to a folder outside the store",
            )

    @property
    def lock_file(self) -> Path:
        """The writer lock, keyed on the store itself (not on this state dir): see ``local.lock``."""
        # local.lock costs ~30 ms to import (tempfile, fcntl); every command loads this module, few lock
        from guardian.local.lock import writer_lock_file

        return writer_lock_file(self.store)

    @property
    def sidecar_lock_file(self) -> Path:
        from guardian.local.lock import sidecar_lock_file

        return sidecar_lock_file(self.store)

    @property
    def child_record_file(self) -> Path:
        """The sidecar's current child (pid + start time), next to the store's sidecar lock."""
        from guardian.local.lock import child_record_file

        return child_record_file(self.store)

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def catalog_file(self) -> Path:
        return self.root / "catalog.json"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def control_socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def console_secret(self) -> Path:
        """The console's secret (0600): who can read it may act through the sidecar's pages."""
        return self.root / "console.secret"

    def ensure(self) -> "StatePaths":
        """Create the state folder (0700) and record which store it belongs to; folders guardian
        owns that are open to others (a pre-existing --state-dir at 0755) are tightened to 0700.

        Raises StateDirError (naming the folder) when it cannot be created or written."""
        marker = self.root / "store.json"
        try:
            ensure_dir(self.root)
            tighten_state_dirs(self.root)
            if not marker.exists():
                atomic_write_text(marker, json.dumps({"store": str(self.store)}) + "\n")
        except OSError as exc:
            raise state_dir_error(exc, self.root) from None
        return self

    def ensure_if_possible(self) -> StateDirError | None:
        """For commands that only read: create the state folder if possible, else say why (no raise).

        A folder that exists already needs no write, so a read-only one (a read-only mount, a
        folder of someone else's) is asked about too: otherwise the command would learn it only
        from its first cache write, half-way through answering."""
        try:
            self.ensure()
        except StateDirError as exc:
            return exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            why = "read-only file system" if _read_only_mount(self.root) else "permission denied"
            return StateDirError(f"guardian's state dir cannot be written: {self.root}: {why}")
        return None

    def owns(self, path: str | os.PathLike | None) -> bool:
        """Is ``path`` inside this store's state folder (so an OSError on it is the state dir's)?"""
        if not path:
            return False
        root = os.path.abspath(self.root)
        return os.path.commonpath([root, os.path.abspath(os.fsdecode(path))]) == root


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def state_dir_error(exc: OSError, root: str | os.PathLike) -> StateDirError:
    """One line for an OSError in guardian's state dir: which path, and why."""
    where = os.fsdecode(exc.filename) if exc.filename else str(root)
    why = exc.strerror or str(exc)
    return StateDirError(f"guardian's state dir cannot be written: {where}: {why}")


def tighten_state_dirs(store_state: Path) -> list[str]:
    """Make guardian's state private: the per-store folder, ``stores/`` and the state dir itself go to
    0700 when group or others could enter them. The state dir is changed only when it holds nothing
    but guardian's ``stores`` (someone's own folder passed as --state-dir is not re-permissioned:
    a warning says so). Returns the warnings."""
    warnings: list[str] = []
    stores = store_state.parent
    for folder, ours in ((store_state, True), (stores, True), (stores.parent, _only_guardian(stores.parent))):
        try:
            mode = os.lstat(folder).st_mode & 0o777
            if not mode & 0o077:
                continue
            if ours and os.lstat(folder).st_uid == os.geteuid():
                os.chmod(folder, 0o700)
                continue
        except OSError:
            continue
        warnings.append(f"guardian's state dir {folder} is readable by others (mode {mode:o}); "
                        f"its snapshots hold every stored memory: run `chmod 700 {folder}`")
    if warnings:
        from guardian.logs import get_logger  # structlog, ~30 ms: only when there is something to warn about

        for text in warnings:
            get_logger("guardian.paths").warning("state_dir_open", detail=text)
    return warnings


def _only_guardian(folder: Path) -> bool:
    try:
        return set(os.listdir(folder)) <= {"stores"}
    except OSError:
        return False
