"""Live repair: while contextd runs, repair exactly the settled paths judged damaged, nothing else.

The runtime judges a path only after it settled (``guardian.runtime.settle``) and records how it
looked (``judge.Damage.key``: inode, size, mtime, ctime, type). Here, under the store lock, the
repair is planned as the pre-flight plans it (newest good snapshot copy, rebuilt metadata, or
quarantine), but only the actions on those paths are applied, and each one is checked against
the recorded state right before it lands (``JudgedGuard``): a file a writer touched since it was
judged is left alone - that write is newer than any snapshot copy - and judged again later. Every
file it replaces is kept until no process writes it (``repair.held``): a writer that held it open
(paused between its truncate and its write) gets its update put back when it closes the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guardian.local.lock import store_lock
from guardian.local.quarantine import Quarantine
from guardian.repair.apply import Applied, FileChanged, PlanApplier
from guardian.repair.held import HeldWrites
from guardian.repair.plan import RepairAction, RepairPlan
from guardian.repair.preflight import RepairContext, needs_repair
from guardian.repair.sources import load_versions
from guardian.snapshots.repository import Repository
from guardian.store.judge import Damage, lstat_key, role_of


class JudgedGuard:
    """Raises FileChanged unless ``rel`` still looks exactly as when it was judged damaged."""

    def __init__(self, root, judged: dict[str, tuple | None]) -> None:
        self.root = root
        self.judged = judged

    def __call__(self, rel: str) -> None:
        if rel not in self.judged:
            raise FileChanged(f"{rel} was not judged; the live repair leaves it to the next pre-flight")
        if lstat_key(self.root / rel) != self.judged[rel]:
            raise FileChanged(f"{rel} changed after it was judged damaged (a writer is at work); left alone")


@dataclass
class LiveRepairResult:
    damages: list[Damage]
    applied: list[Applied] = field(default_factory=list)
    plan: RepairPlan = field(default_factory=RepairPlan)
    scan: object = None   # the store's scan after the repair

    @property
    def repaired(self) -> list[Applied]:
        return [a for a in self.applied if a.ok]

    @property
    def changed_meanwhile(self) -> list[str]:
        return [a.action.path for a in self.applied if not a.ok and a.detail.startswith("skipped")]

    @property
    def failed(self) -> list[Applied]:
        return [a for a in self.applied if not a.ok and not a.detail.startswith("skipped")]

    @property
    def unresolved(self) -> list[str]:
        """Judged paths the plan had nothing for (e.g. a lost name no candidate matches)."""
        planned = {a.action.path for a in self.applied}
        return [d.path for d in self.damages if d.path not in planned]

    @property
    def loadable(self) -> bool | None:
        return None if self.scan is None else bool(self.scan.loadable)

    def to_dict(self) -> dict:
        return {"damages": [d.to_dict() for d in self.damages], "actions": [a.to_dict() for a in self.applied],
                "changed_meanwhile": self.changed_meanwhile, "unresolved": self.unresolved,
                "loadable": self.loadable, "error": getattr(self.scan, "error", None)}


def repair_judged(config, paths, damages: list[Damage], lock_timeout: float = 30.0,
                  keeper: HeldWrites | None = None) -> LiveRepairResult:
    """Repair the judged ``damages`` (and nothing else) under the store lock; see the module docstring."""
    result = LiveRepairResult(list(damages))
    judged = {d.path: d.key for d in damages}
    context = RepairContext(config, paths, [], paths.cache)
    with store_lock(paths.lock_file, timeout=lock_timeout):
        scan = context.rescan()
        if needs_repair(scan):
            result.plan = context.plan(scan)
            quarantine, repo = _applier_parts(paths)
            applier = PlanApplier(paths.store, quarantine, repo, scan.compress, guard=JudgedGuard(paths.store, judged),
                                  keeper=keeper or HeldWrites(paths, quarantine=quarantine))
            for action in result.plan.actions:
                if action.path in judged:
                    result.applied.append(applier.apply_one(action))
            result.applied += restore_moved_out(paths, applier, judged, damages)
        result.scan = context.rescan() if result.applied else scan
    return result


def restore_moved_out(paths, applier: PlanApplier, judged: dict, damages: list[Damage]) -> list[Applied]:
    """A document replaced by something that is not a regular file: once that thing is in quarantine
    (a missing document loads fine, so the plan stops there), put the newest good copy back."""
    gone = [d.path for d in damages if d.kind == "special_file" and role_of(d.path) == "document"
            and lstat_key(paths.store / d.path) is None]
    if not gone:
        return []
    versions = load_versions(Repository(paths.snapshots), {rel: "document" for rel in gone})
    applied = []
    for rel in gone:
        good = next((v for v in versions.get(rel, []) if v.valid), None)
        if good is None:
            continue
        judged[rel] = None  # it is to be absent right before the write lands
        action = RepairAction("restore_document", rel, reason="special_file", blob=good.blob,
                              snapshot_id=good.snapshot_id, source=f"snapshot {good.snapshot_id}")
        applied.append(applier.apply_one(action))
    return applied


def _applier_parts(paths):
    return Quarantine(paths), Repository(paths.snapshots)
