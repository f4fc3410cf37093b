"""What a restore is asked to bring back: which point in time, and which part of the store.

The same request crosses the control socket when the sidecar carries out a restore (``to_wire`` /
``from_wire``), so what a user confirmed here is exactly what the sidecar restores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from guardian.errors import UsageError


@dataclass(frozen=True)
class RestoreRequest:
    """``at``: the newest snapshot at or before it (None: the latest); ``snapshot_id``: exactly that
    one (wins over ``at``). ``collection`` narrows to one collection; ``ids`` to chosen memories (their
    documents, and their collection's metadata where the store lacks it), ``collection`` then only
    says in which collection to look."""

    at: datetime | None = None
    snapshot_id: str | None = None
    collection: str | None = None
    ids: tuple[str, ...] = ()
    allow_damaged: bool = False
    force: bool = False          # restore although other processes use the store (they must restart)
    restart_child: bool = True   # a sidecar stops its supervised child around the restore, then starts it

    def exactly(self, snapshot_id: str) -> "RestoreRequest":
        """The same request pinned to one snapshot (the one chosen and planned here)."""
        return replace(self, snapshot_id=snapshot_id)

    def to_wire(self) -> dict:
        return {"at": self.at.isoformat() if self.at else None, "snapshot_id": self.snapshot_id,
                "collection": self.collection, "ids": list(self.ids), "allow_damaged": self.allow_damaged,
                "force": self.force, "restart_child": self.restart_child}

    @classmethod
    def from_wire(cls, data: dict) -> "RestoreRequest":
        try:
            at = datetime.fromisoformat(data["at"]) if data.get("at") else None
        except (TypeError, ValueError):
            raise UsageError(f"the restore request's time {data.get('at')!r} is not an ISO 8601 time") from None
        ids = data.get("ids") or ()
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) and i for i in ids):
            raise UsageError("the restore request's ids must be a list of non-empty strings")
        for key in ("snapshot_id", "collection"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise UsageError(f"the restore request's {key} must be a string")
        return cls(at=at, snapshot_id=data.get("snapshot_id") or None, collection=data.get("collection"),
                   ids=tuple(ids), allow_damaged=bool(data.get("allow_damaged")), force=bool(data.get("force")),
                   restart_child=data.get("restart_child") is not False)
