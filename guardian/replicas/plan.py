"""What a push must do, as pure functions of the local and remote listings (no I/O, easy to test).

* :func:`choose_snapshots` applies retention to the union of local and remote snapshots: a snapshot
  the policy would forget is neither uploaded (it would be deleted again) nor kept on the replica.
* :func:`objects_to_delete` is what no kept record needs; callers pass every kept record's objects,
  and must not call it at all when a kept record cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from guardian.replicas.layout import Entry, id_time
from guardian.snapshots.retention import plan_retention

BASE_REUSE_LIMIT = 0.25  # rewrite the base list once a delta would exceed this fraction of it


@dataclass(frozen=True)
class Retention:
    keep_last: int = 24
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0

    @classmethod
    def from_config(cls, config) -> "Retention":
        return cls(config.keep_last, config.keep_hourly, config.keep_daily, config.keep_weekly)


@dataclass
class SnapshotChoice:
    upload: list[str] = field(default_factory=list)   # local snapshots the replica lacks, oldest first
    forget: list[str] = field(default_factory=list)   # remote snapshots retention drops, oldest first
    keep: list[str] = field(default_factory=list)     # every snapshot the replica keeps afterwards

    @property
    def nothing_to_do(self) -> bool:
        return not self.upload and not self.forget


def choose_snapshots(local_ids: list[str], remote_ids: list[str], retention: Retention) -> SnapshotChoice:
    local, remote = set(local_ids), set(remote_ids)
    every = sorted(local | remote)
    keep, forget = plan_retention([(i, id_time(i)) for i in every], retention.keep_last, retention.keep_hourly,
                                  retention.keep_daily, retention.keep_weekly)
    return SnapshotChoice(upload=sorted(i for i in keep if i in local and i not in remote),
                          forget=sorted(i for i in forget if i in remote),
                          keep=sorted(keep))


def objects_to_delete(present: set[str], needed: set[str]) -> list[str]:
    return sorted(present - needed)


def list_delta(entries: list[Entry], base: list[Entry]) -> tuple[list[Entry], list[str]]:
    """(added or changed entries, removed paths) that turn ``base`` into ``entries``."""
    base_by_rel = {e.rel: e for e in base}
    rels = {e.rel for e in entries}
    added = [e for e in entries if base_by_rel.get(e.rel) != e]
    removed = sorted(rel for rel in base_by_rel if rel not in rels)
    return added, removed


def reuse_base(base_size: int, added: int, removed: int) -> bool:
    return base_size > 0 and added + removed <= BASE_REUSE_LIMIT * base_size


def replica_lag(local_ids: list[str], remote_ids: list[str], now: datetime) -> float:
    """Seconds since the oldest local snapshot newer than the replica's newest one was taken
    (0 when the replica holds the newest local snapshot)."""
    newest_remote = max(remote_ids, default="")
    behind = [i for i in local_ids if i > newest_remote]
    if not behind:
        return 0.0
    return max(0.0, (now - id_time(min(behind))).total_seconds())


@dataclass
class CheckPlan:
    """Which objects a push looks at before relying on them again (see guardian.replicas.mend)."""

    missing: list[str] = field(default_factory=list)   # not in the listing: pushed again
    changed: list[str] = field(default_factory=list)   # listed otherwise than when last known good: read back
    due: list[str] = field(default_factory=list)       # not read back for a while (or never): read back


def plan_checks(relied, listing: dict[str, tuple[int, str]], known: dict[str, tuple[int, str, float]],
                now: float, max_age: float, budget: int | None) -> CheckPlan:
    """``relied``: the keys the kept snapshots need; ``listing``: key -> (size, tag) now; ``known``:
    key -> (size, tag, when last known good). Objects due are taken oldest first (never checked
    first) until ``budget`` bytes (None: no limit; at least one object, so a large one is reached)."""
    plan = CheckPlan()
    candidates = []
    for key in sorted(relied):
        if key not in listing:
            plan.missing.append(key)
        elif key in known and tuple(known[key][:2]) != tuple(listing[key]):
            plan.changed.append(key)
        elif key not in known or now - known[key][2] >= max_age:
            candidates.append((known[key][2] if key in known else 0.0, key))
    spent = 0
    for _, key in sorted(candidates):
        size = listing[key][0]
        if budget is not None and plan.due and spent + size > budget:
            break
        plan.due.append(key)
        spent += size
    return plan
