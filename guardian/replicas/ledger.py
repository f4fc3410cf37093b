"""What this machine knows of the objects a replica's kept snapshots rely on (in the state dir).

For each object: the size and tag (guardian.replicas.target: S3's ETag, a file's mtime, ctime and
inode) a listing showed when guardian last wrote it or read it back intact, and when that was. A
push compares one listing with this (guardian.replicas.mend): an object whose size or tag changed
since is read back before anything relies on it again; one unchanged for ``replica_check_days`` is
read back anyway (damage that changes no listing field, such as a disk's bit rot).

One JSON file per replica beside its state file, written atomically after each push. Losing it
costs only reads: every object is then read back once, as on a machine that never pushed there.
"""

from __future__ import annotations

import json
from pathlib import Path

from guardian.local.fsutil import atomic_write_text, ensure_dir
from guardian.replicas.state import replica_id


def ledger_file(state_root: Path, display: str) -> Path:
    return state_root / "replicas" / f"{replica_id(display)}.objects.json"


class Ledger:
    """key -> (size, tag, checked): the listing's view of an object when it was last known good."""

    def __init__(self, path: Path | None, objects: dict[str, tuple[int, str, float]] | None = None) -> None:
        self.path = path
        self.objects: dict[str, tuple[int, str, float]] = dict(objects or {})
        self.changed = False     # saved only then: the sidecar pushes after every snapshot

    @classmethod
    def load(cls, path: Path) -> "Ledger":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["objects"]
            objects = {str(k): (int(v[0]), str(v[1]), float(v[2])) for k, v in rows.items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            objects = {}
        return cls(path, objects)

    def note(self, key: str, size: int, tag: str, when: float) -> None:
        self.objects[key] = (size, tag, when)
        self.changed = True

    def keep_only(self, keys) -> None:
        kept = {k: v for k, v in self.objects.items() if k in keys}
        if len(kept) != len(self.objects):
            self.objects, self.changed = kept, True

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        ensure_dir(self.path.parent)
        rows = {k: list(v) for k, v in sorted(self.objects.items())}
        atomic_write_text(self.path, json.dumps({"version": 1, "objects": rows}, separators=(",", ":")) + "\n")
        self.changed = False
