"""The restore pipeline: source -> plan -> destination, carried out by an executor.

``Restore(source, destination, request).plan()`` is a dry run (reads only, takes no lock: it works
on a read-only state dir); ``.run(executor, confirm, progress)`` restores. Executors:

- ``InProcess``: this process, under the store lock (the snapshot is chosen under it too, so a
  prune never removes it meanwhile); the sidecar passes its child, stopped around the work
  (``restoring.users``: other processes using the store refuse a restore unless it is forced).
- ``ThroughSidecar``: the sidecar guarding the store does it (it must: it owns the child and the
  store lock). The plan is made here first, so ``--force`` and the question mean the same as
  without a sidecar, and the sidecar is sent the very snapshot that was planned and confirmed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

from guardian.errors import RestoreError
from guardian.restoring.destinations import StoreInPlace, TargetFolder
from guardian.restoring.outcome import WIRE_ACTIONS, RestoreOutcome
from guardian.restoring.request import RestoreRequest
from guardian.restoring.selection import Selection
from guardian.restoring.sources import ChosenSnapshot, LocalSource, OpenedSource, ReplicaSource
from guardian.restoring.users import SupervisedChild, label, others_in_the_way, refuse_unless_forced
from guardian.snapshots.restore_plan import RestorePlan
from guardian.store.judge import prepare as prepare_judge
from guardian.store.scan import no_cyclic_gc

Source = LocalSource | ReplicaSource
Destination = StoreInPlace | TargetFolder
Confirm = Callable[[RestorePlan], bool]


@dataclass
class Restore:
    source: Source
    destination: Destination
    request: RestoreRequest = field(default_factory=RestoreRequest)

    @classmethod
    def of_store(cls, paths, request: RestoreRequest | None = None) -> "Restore":
        """This store's own snapshots back into the store itself (the usual restore)."""
        return cls(LocalSource(paths), StoreInPlace(paths), request or RestoreRequest())

    def plan(self) -> RestoreOutcome:
        """What the restore would do; nothing is written anywhere (not even the store folder)."""
        with self.source.open(self.request, dry_run=True) as opened:
            chosen, selection, plan = self.choose_and_plan(opened)
            outcome = self.outcome(chosen, selection, plan, dry_run=True, notes=opened.notes)
            scan = self.destination.users()
            outcome.users = [label(u, None) for u in scan.users] if scan is not None else []
            return outcome

    def run(self, executor=None, confirm: Confirm | None = None, progress=None) -> RestoreOutcome:
        with self.source.open(self.request) as opened:
            return (executor or InProcess()).carry_out(self, opened, confirm, progress)

    def choose_and_plan(self, opened: OpenedSource) -> tuple[ChosenSnapshot, Selection, RestorePlan]:
        chosen = opened.choose(self.request)
        selection = Selection.of(chosen, self.request)
        return chosen, selection, self.destination.plan(chosen, selection)

    def outcome(self, chosen: ChosenSnapshot, selection: Selection, plan: RestorePlan, dry_run: bool,
                notes: dict) -> RestoreOutcome:
        return RestoreOutcome(chosen.snapshot_id, chosen.manifest.time, self.destination.name, dry_run,
                              collection=selection.collection, scope=selection.scope, ids=selection.ids,
                              target=self.destination.target, plan=plan,
                              names={c.dir: c.name for c in chosen.manifest.collections},
                              skipped=chosen.skipped, notes=dict(notes))


def ask(confirm: Confirm | None, plan: RestorePlan) -> None:
    """The user's go-ahead before anything in the store is replaced or moved aside."""
    if plan.disturbs_store and confirm is not None and not confirm(plan):
        raise RestoreError("restore cancelled; the store was not changed", "pass --force to skip the question")


@dataclass
class InProcess:
    """This process restores, under the store lock. ``child``: the sidecar's supervised child, stopped
    around a restore of the store in place and started again (unless the request opts out); every
    other process using the store refuses the restore unless the request forces it (``users``)."""

    lock_timeout: float = 30.0
    check_load: bool = True
    child: SupervisedChild | None = None

    def carry_out(self, restore: Restore, opened: OpenedSource, confirm: Confirm | None, progress) -> RestoreOutcome:
        destination, request = restore.destination, restore.request
        stopping = self.child is not None and request.restart_child
        scan = destination.users()
        others = others_in_the_way(scan, self.child, stopping) if scan is not None else []
        refuse_unless_forced(others, self.child, request.force)
        prepare_judge()   # the decoder's import, not while holding the lock
        with self.child.stopped() if stopping else contextlib.nullcontext():
            created = destination.prepare()
            # 100k entries, actions and staged blobs, none in a cycle: 7% of a restore's CPU without the gc
            with destination.lock(self.lock_timeout), no_cyclic_gc():
                chosen, selection, plan = restore.choose_and_plan(opened)
                outcome = restore.outcome(chosen, selection, plan, dry_run=False,
                                          notes={**opened.notes, **({"child_restarted": True} if stopping else {})})
                outcome.created_store = created
                outcome.users = [label(u, self.child) for u in others]
                ask(confirm, plan)
                applied = destination.apply(chosen, selection, plan, progress, request.allow_damaged)
            outcome.quarantined, outcome.refused_damaged = applied.quarantined, applied.refused_damaged
            outcome.left_alone, outcome.restore_id = applied.left_alone, applied.restore_id
            if self.check_load:
                outcome.loadable, outcome.load_error = destination.check(chosen, applied)
        return outcome


@dataclass
class ThroughSidecar:
    """``send(request_wire) -> answer``: the control socket's ``restore`` (the command supplies it;
    the domain does not talk to sockets)."""

    send: Callable[[dict], dict]

    def carry_out(self, restore: Restore, opened: OpenedSource, confirm: Confirm | None, progress) -> RestoreOutcome:
        chosen, _selection, plan = restore.choose_and_plan(opened)
        ask(confirm, plan)
        answer = self.send(restore.request.exactly(chosen.snapshot_id).to_wire())
        outcome = RestoreOutcome.from_dict(answer["restore"])
        if outcome.wire.get("actions") is None and outcome.snapshot_id == chosen.snapshot_id \
                and outcome.counts() == plan.counts():
            outcome.plan, outcome.names = plan, {c.dir: c.name for c in chosen.manifest.collections}
        outcome.notes = {**opened.notes, **outcome.notes, "through_sidecar": True,
                         "child_paused": answer.get("child_paused")}
        return outcome


def restore_for_sidecar(paths, wire: dict, child: SupervisedChild | None = None) -> dict:
    """The sidecar's side of ``ThroughSidecar``: the same pipeline on its own repository and store,
    in its process (its child stopped around it); the answer carries the outcome (its actions only up
    to ``WIRE_ACTIONS``)."""
    request = RestoreRequest.from_wire(wire)
    outcome = Restore.of_store(paths, request).run(InProcess(child=child))
    return outcome.to_dict(action_limit=WIRE_ACTIONS)
