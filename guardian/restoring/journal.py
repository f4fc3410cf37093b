"""What each restore into the store did, so that it can be undone in one step (`restore --undo`).

A restore moves aside and replaces files (each one a quarantine entry) and writes files where there
were none. Its record, ``restores/<id>.json`` in the state dir (written atomically, also when the
restore stopped half way), names the snapshot, those quarantine entries, the files it wrote and the
folders it created whole; the bytes it wrote are the snapshot's (its manifest has their hashes) or,
where the snapshot held no good copy, the good copy found elsewhere (their hashes are kept in the
record), so nothing else needs keeping.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from guardian.errors import UsageError
from guardian.local.fsutil import atomic_write_text, ensure_dir
from guardian.local.quarantine import new_entry_id

FOLDER = "restores"


@dataclass
class RestoreRecord:
    id: str
    time: str
    store: str
    snapshot: str
    entries: list[str] = field(default_factory=list)   # quarantine entries: what it moved aside or replaced
    written: list[str] = field(default_factory=list)   # files it wrote where there were none
    created: list[str] = field(default_factory=list)   # top folders it created whole (their files not listed)
    substituted: dict[str, str] = field(default_factory=dict)   # path -> hash of the good copy written instead
    state: str = "done"                                 # done | stopped (half way) | undone
    undo_entries: list[str] = field(default_factory=list)   # what the undo moved aside (the restored versions)

    @classmethod
    def new(cls, store, snapshot: str) -> "RestoreRecord":
        moment = datetime.now(timezone.utc)
        return cls(new_entry_id(moment), moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), str(store), snapshot)


class Journal:
    def __init__(self, paths) -> None:
        self.folder = Path(paths.root) / FOLDER

    def save(self, record: RestoreRecord) -> None:
        ensure_dir(self.folder)
        atomic_write_text(self.folder / f"{record.id}.json", json.dumps(asdict(record)) + "\n")

    def get(self, restore_id: str | None) -> RestoreRecord:
        """That restore, or (None) the newest one not undone; UsageError when there is none."""
        if restore_id is None:
            ids = sorted((n[:-5] for n in self._names()), reverse=True)
            for candidate in ids:
                record = self._load(candidate)
                if record is not None and record.state != "undone":
                    return record
            raise UsageError("no restore of this store is recorded that could be undone",
                             "restores are recorded from this version on; see `guardian quarantine list`")
        if "/" in restore_id or restore_id.startswith(".") or (record := self._load(restore_id)) is None:
            raise UsageError(f"no restore {restore_id!r} is recorded for this store",
                             "the id is printed by `guardian restore`; leave it out to undo the last one")
        return record

    def records(self) -> list[RestoreRecord]:
        """Every readable record, oldest first."""
        found = (self._load(name[:-5]) for name in sorted(self._names()))
        return [record for record in found if record is not None]

    def _names(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.folder) if n.endswith(".json")]
        except FileNotFoundError:
            return []

    def _load(self, restore_id: str) -> RestoreRecord | None:
        try:
            data = json.loads((self.folder / f"{restore_id}.json").read_text(encoding="utf-8"))
            return RestoreRecord(**{k: data[k] for k in RestoreRecord.__dataclass_fields__ if k in data})
        except (OSError, ValueError, TypeError):
            return None
