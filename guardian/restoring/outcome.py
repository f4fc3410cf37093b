"""What a restore did (or, for a dry run, would do): one record for every source, destination and
executor, with the same JSON whichever process carried it out.

A 100k-document store has 100k actions: they are summarised per collection (``per_collection``)
for people, listed in full for ``--json`` and ``-v``. An outcome the sidecar sends back over the
control socket carries its actions only up to ``WIRE_ACTIONS`` (the socket answers one line of at
most 1 MiB); the command then shows the plan it made itself for the same snapshot when the counts
agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from guardian.snapshots.restore_plan import KINDS, RestorePlan

WIRE_ACTIONS = 5000
SUMMARY_KEYS = frozenset({
    "snapshot", "snapshot_time", "destination", "target", "collection", "scope", "ids", "dry_run", "counts", "files",
    "bytes", "per_collection", "quarantine_entries", "loadable", "load_error", "skipped_damaged", "refused_damaged",
    "left_alone", "created_store", "users", "restore_id", "actions", "actions_omitted",
    "quarantine_entries_total"})
CHANGING = ("write", "replace", "move_aside")


@dataclass
class RestoreOutcome:
    snapshot_id: str
    snapshot_time: datetime
    destination: str                 # "store" | "target"
    dry_run: bool
    collection: str | None = None
    scope: str | None = None
    ids: list[str] = field(default_factory=list)
    target: Path | None = None
    plan: RestorePlan | None = None  # in the process that planned it
    names: dict[str, str | None] = field(default_factory=dict)   # collection folder -> name
    quarantined: list[str] = field(default_factory=list)
    refused_damaged: list[dict] = field(default_factory=list)  # snapshot copies chromem would refuse: not written
    left_alone: list[dict] = field(default_factory=list)       # files a live writer touched or holds: not written
    skipped: list[str] = field(default_factory=list)           # newer snapshots passed over: damaged manifests
    loadable: bool | None = None
    load_error: str = ""
    created_store: bool = False
    users: list[dict] = field(default_factory=list)            # processes using the store that must restart
    restore_id: str = ""                                       # `restore --undo ID` undoes it
    notes: dict = field(default_factory=dict)   # the source's and executor's additions (replica, fetch, sidecar)
    wire: dict | None = None        # the summary an outcome was rebuilt from (no plan here)

    # ---- the summary -------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return self.plan.counts() if self.plan is not None else dict(self.wire["counts"])

    def actions(self) -> list[dict] | None:
        """Every action but ``keep``; None when the sidecar's answer left them out."""
        if self.plan is not None:
            return [a.to_dict() for a in self.plan.actions if a.kind != "keep"]
        return self.wire.get("actions")

    def written(self) -> tuple[int, int]:
        """(files, bytes) written or replaced."""
        if self.plan is None:
            return self.wire["files"], self.wire["bytes"]
        entries = [a.entry for a in self.plan.actions if a.kind in ("write", "replace") and a.entry is not None]
        return len(entries), sum(e.size for e in entries)

    def per_collection(self) -> list[dict]:
        """One row per top folder with something in the plan: its collection name and the count of
        each kind of action (files at the store root are the row with folder "")."""
        if self.plan is None:
            return list(self.wire["per_collection"])
        rows: dict[str, dict] = {}
        for action in self.plan.actions:
            folder = action.path.partition("/")[0] if "/" in action.path or action.is_dir else ""
            row = rows.get(folder)
            if row is None:
                row = rows[folder] = {"folder": folder, "name": self.names.get(folder), **dict.fromkeys(KINDS, 0)}
            row[action.kind] += 1
        return [rows[k] for k in sorted(rows, key=lambda f: (rows[f]["name"] or "\uffff", f))]

    @property
    def quarantined_total(self) -> int:
        """How many quarantine entries the restore made (an answer over the socket lists only the first)."""
        if self.wire is not None and self.wire.get("quarantine_entries_total") is not None:
            return int(self.wire["quarantine_entries_total"])
        return len(self.quarantined)

    @property
    def changes(self) -> bool:
        counts = self.counts()
        return any(counts[kind] for kind in CHANGING)

    # ---- JSON --------------------------------------------------------------------------------
    def to_dict(self, action_limit: int | None = None) -> dict:
        files, size = self.written()
        actions = self.actions()
        data = {"snapshot": self.snapshot_id,
                "snapshot_time": self.snapshot_time.isoformat().replace("+00:00", "Z"),
                "destination": self.destination, "target": str(self.target) if self.target else None,
                "collection": self.collection, "scope": self.scope, "ids": self.ids, "dry_run": self.dry_run,
                "counts": self.counts(), "files": files, "bytes": size, "per_collection": self.per_collection(),
                "quarantine_entries": self.quarantined, "loadable": self.loadable, "load_error": self.load_error,
                "skipped_damaged": self.skipped, "refused_damaged": self.refused_damaged,
                "left_alone": self.left_alone, "created_store": self.created_store, "users": self.users,
                "restore_id": self.restore_id or None}
        if actions is None or (action_limit is not None and len(actions) > action_limit):
            data["actions"], data["actions_omitted"] = None, True
        else:
            data["actions"] = actions
        data["quarantine_entries_total"] = self.quarantined_total
        if action_limit is not None and len(self.quarantined) > action_limit:
            data["quarantine_entries"] = self.quarantined[:action_limit]   # the rest: `guardian quarantine list`
        return {**data, **self.notes}

    @classmethod
    def from_dict(cls, data: dict) -> "RestoreOutcome":
        """An outcome as another process (the sidecar) reported it."""
        return cls(data["snapshot"], datetime.fromisoformat(data["snapshot_time"].replace("Z", "+00:00")),
                   data["destination"], data["dry_run"], collection=data.get("collection"), scope=data.get("scope"),
                   ids=list(data.get("ids") or []), target=Path(data["target"]) if data.get("target") else None,
                   quarantined=list(data.get("quarantine_entries") or []),
                   refused_damaged=list(data.get("refused_damaged") or []),
                   left_alone=list(data.get("left_alone") or []), skipped=list(data.get("skipped_damaged") or []),
                   loadable=data.get("loadable"), load_error=data.get("load_error") or "",
                   created_store=bool(data.get("created_store")), users=list(data.get("users") or []),
                   restore_id=data.get("restore_id") or "",
                   notes={k: v for k, v in data.items() if k not in SUMMARY_KEYS}, wire=data)
