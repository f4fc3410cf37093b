"""Pre-flight: scan the store, plan a repair, apply it under the store lock, scan again.

Runs before every launch (``guardian run`` / ``exec``) and for ``guardian check --repair``.
An unchanged healthy store costs one cached scan (a stat per file) and nothing else; the lock,
the snapshots and the documents are only touched when something needs repairing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

from guardian.local.catalog import Catalog
from guardian.config import Config
from guardian.errors import ExitCode
from guardian.local.lock import store_lock
from guardian.local import storefs
from guardian.repair.plan import (DOCUMENT_KINDS, ENTRY_KINDS, METADATA_KINDS, QUARANTINE_KINDS, RepairPlan,
                                  plan_repair, remaining_findings)
from guardian.local.paths import StatePaths
from guardian.store.scan import StoreScan, scan_store
from guardian.words import count

MAX_ROUNDS = 3  # a repair can reveal the next problem (a special metadata file, then its absence)
ACTIONABLE = METADATA_KINDS | DOCUMENT_KINDS | QUARANTINE_KINDS | ENTRY_KINDS | {"other_format_file",
                                                                              "guardian_leftover"}


@dataclass
class PreflightResult:
    store: str
    dry_run: bool
    scan_before: StoreScan
    scan: StoreScan                       # the final scan (== scan_before on a dry run or no-op)
    plans: list[RepairPlan] = field(default_factory=list)
    applied: list = field(default_factory=list)  # repair.apply.Applied
    cleaned: list[str] = field(default_factory=list)  # guardian's own leftover temp files removed
    seconds: float = 0.0

    # ---- what callers read -------------------------------------------------------------
    @property
    def loadable_before(self) -> bool:
        return self.scan_before.loadable

    @property
    def loadable_after(self) -> bool:
        return self.scan.loadable

    @property
    def ok(self) -> bool:  # the supervisor's pre-flight contract
        return self.loadable_after

    @property
    def repaired(self) -> bool:
        return any(a.ok for a in self.applied)

    @property
    def actions(self) -> list[dict]:
        """Applied actions (a dry run: the planned ones), as report dicts."""
        if self.dry_run:
            return [a.to_dict() for plan in self.plans for a in plan.actions]
        return [a.to_dict() for a in self.applied]

    @property
    def last_plan(self) -> RepairPlan:
        return self.plans[-1] if self.plans else RepairPlan()

    @property
    def lost_documents(self) -> list[dict]:
        lost = []
        for applied in self.applied if not self.dry_run else []:
            action = applied.action
            if applied.ok and action.kind == "quarantine" and action.reason.startswith("damaged document"):
                lost.append({"path": action.path, "id": action.lost_id})
        if self.dry_run:
            lost = [d for plan in self.plans for d in plan.lost_documents()]
        return lost

    @property
    def unresolved(self) -> list[dict]:
        """What keeps (or kept) data out of chromem's reach: names not recovered, fatal problems left."""
        found = [f for plan in self.plans for f in plan.unresolved]
        if not self.dry_run:
            found += remaining_findings(self.scan)[0]
        unique = {(f.path, f.kind): f.to_dict() for f in found}
        return list(unique.values())

    @property
    def hazards(self) -> list[dict]:
        if self.dry_run:
            return [f.to_dict() for f in self.last_plan.hazards]
        silent = [f for f in self.last_plan.hazards if f.kind == "checksum_mismatch"]
        return [f.to_dict() for f in remaining_findings(self.scan)[1] + silent]

    @property
    def notes(self) -> list[str]:
        return list(dict.fromkeys(n for plan in self.plans for n in plan.notes))

    @property
    def failed(self) -> list[dict]:
        return [a.to_dict() for a in self.applied if not a.ok]

    @property
    def exit_code(self) -> ExitCode:
        if not self.scan.loadable:
            return ExitCode.UNLOADABLE
        if self.lost_documents or self.unresolved or self.failed or not self.scan.healthy:
            return ExitCode.WARNINGS
        return ExitCode.OK

    @property
    def detail(self) -> str:
        return summary_line(self)

    def to_dict(self) -> dict:
        return {
            "store": self.store, "dry_run": self.dry_run, "loadable_before": self.loadable_before,
            "loadable_after": self.loadable_after, "error_before": self.scan_before.error,
            "error_after": self.scan.error, "actions": self.actions, "lost_documents": self.lost_documents,
            "unresolved": self.unresolved, "hazards": self.hazards, "notes": self.notes, "failed": self.failed,
            "rounds": len(self.plans), "seconds": round(self.seconds, 3), "exit_code": self.exit_code,
            "cleaned_leftovers": self.cleaned, "scan": self.scan.to_dict(),
        }


# --------------------------------------------------------------------------- running


def _checksum_failures(scan: StoreScan):
    """gz documents whose CRC fails (decoding needed: imported only for deep checks)."""
    from guardian.repair.sources import checksum_failures

    return checksum_failures(scan)


def needs_repair(scan: StoreScan) -> bool:
    return any(p.kind in ACTIONABLE for p in scan.problems)


def preflight(config: Config, paths: StatePaths, names: Iterable[str] = (), dry_run: bool = False,
              use_cache: bool = True, lock_timeout: float = 30.0, deep: bool = False,
              keep_listings: bool = False) -> PreflightResult:
    """Scan; if anything is repairable, plan and (unless ``dry_run``) apply under the lock; re-scan.

    ``deep`` also inflates every gz document to find checksum failures chromem loads silently
    (``check --repair`` does; the launch pre-flight does not, to stay a stat walk).
    ``keep_listings``: the final scan (``result.scan``) keeps its folder listings for the caller to
    take (``StoreScan.take_listings``): `guardian run` builds its index on them.
    """
    started = time.monotonic()
    paths.ensure()
    cache_dir = paths.cache if use_cache else None
    store = config.store_path
    first = scan_and_record(store, config, paths, cache_dir, keep_listings)
    result = PreflightResult(str(paths.store), dry_run, first, first)
    context = RepairContext(config, paths, list(names), cache_dir, deep, keep_listings)
    if needs_repair(first) or (deep and _checksum_failures(first)):
        if dry_run:
            result.plans.append(context.plan(first))
        else:
            with store_lock(paths.lock_file, timeout=lock_timeout):
                repair_rounds(context, result)
            first.listings = None   # the store changed since: only the final scan's listings stand
    result.seconds = time.monotonic() - started
    return result


def scan_and_record(store, config: Config, paths: StatePaths, cache_dir, keep_listings: bool = False) -> StoreScan:
    scan = scan_store(store, config.compress_flag, cache_dir=cache_dir, keep_listings=keep_listings)
    try:
        Catalog(paths.catalog_file).add([c.name for c in scan.collections if c.name], "scan")
    except OSError:
        pass  # the catalog only helps later repairs; never block a pre-flight on it
    return scan


@dataclass
class RepairContext:
    config: Config
    paths: StatePaths
    names: list[str]
    cache_dir: object
    deep: bool = False
    keep_listings: bool = False

    def plan(self, scan: StoreScan) -> RepairPlan:
        catalog = Catalog(self.paths.catalog_file).names()
        # sources, apply, quarantine and the repository (with the decoder): ~0.45-0.7 s of imports at
        # load 5, paid only when there is something to repair - `guardian check` on a sound store never does
        from guardian.repair.sources import collect_inputs

        failing = _checksum_failures(scan) if self.deep else []
        sources, candidates = collect_inputs(scan, self.paths.snapshots, catalog, self.config.collection_names,
                                             self.names, failing)
        return plan_repair(scan, sources, candidates)

    def needs_repair(self, scan: StoreScan) -> bool:
        return needs_repair(scan) or (self.deep and bool(_checksum_failures(scan)))

    def applier(self, compress: bool):
        from guardian.local.quarantine import Quarantine
        from guardian.repair.apply import PlanApplier
        from guardian.snapshots.repository import Repository

        return PlanApplier(self.paths.store, Quarantine(self.paths), Repository(self.paths.snapshots), compress)

    def rescan(self) -> StoreScan:
        return scan_and_record(self.config.store_path, self.config, self.paths, self.cache_dir, self.keep_listings)


def repair_rounds(context: RepairContext, result: PreflightResult) -> None:
    """Plan/apply until nothing is left to do (each round's scan is taken under the lock)."""
    result.cleaned = storefs.clean_guardian_temps(context.paths.store)   # guardian's own leftovers
    scan = context.rescan()
    for _ in range(MAX_ROUNDS):
        if not context.needs_repair(scan):
            break
        plan = context.plan(scan)
        result.plans.append(plan)
        if plan.empty:
            break
        result.applied.extend(context.applier(scan.compress).apply(plan))
        scan = context.rescan()
    result.scan = scan


# --------------------------------------------------------------------------- reporting


def summary_line(result: PreflightResult) -> str:
    verb = "would apply" if result.dry_run else "applied"
    actions = count(len(result.actions), "repair action")
    state = "loadable" if result.loadable_after else "STILL UNLOADABLE"
    before = "loadable" if result.loadable_before else "unloadable"
    text = f"store was {before}; {verb} {actions}; now {state}"
    if result.dry_run:
        text = f"store is {before}; {verb} {actions}"
    if result.lost_documents:
        text += f"; {count(len(result.lost_documents), 'document')} lost"
    return text


def alert_events(result: PreflightResult) -> list[tuple[str, dict]]:
    """The sidecar's alerts for one pre-flight: corruption_found, repair_done, repair_impossible."""
    events: list[tuple[str, dict]] = []
    if not result.loadable_before or result.plans:
        events.append(("corruption_found", {"error": result.scan_before.error, "cause": result.scan_before.cause,
                                            "problems": len([p for p in result.scan_before.problems
                                                             if p.kind in ACTIONABLE])}))
    if result.dry_run:
        return events
    if result.repaired:
        events.append(("repair_done", {"actions": len(result.applied), "loadable": result.loadable_after,
                                       "lost_documents": result.lost_documents}))
    if not result.loadable_after or result.unresolved:
        events.append(("repair_impossible", {"error": result.scan.error, "cause": result.scan.cause,
                                             "unresolved": result.unresolved}))
    return events
