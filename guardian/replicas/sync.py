"""One replication run for one replica URL, as the CLI and the sidecar do it: open, lock, push, record.

A per-replica lock in the state dir keeps two pushes (the sidecar's and `guardian replicate`) from
running at once on this machine: a push's garbage collection must never race another push's
uploads. The outcome (success or the one-line error) goes to the replica's state file.
"""

from __future__ import annotations

from guardian.errors import LockError, ReplicaError
from guardian.local.lock import store_lock
from guardian.local.paths import StatePaths
from guardian.replicas.ledger import Ledger, ledger_file
from guardian.replicas.mend import CheckPolicy
from guardian.replicas.owner import local_owner_id
from guardian.replicas.plan import Retention
from guardian.replicas.push import PushResult, push
from guardian.replicas.replica import Replica, spec_from_config
from guardian.replicas.state import lock_file, note_failure, note_success, state_file
from guardian.snapshots.repository import Repository


class ReplicaBusy(ReplicaError):
    """Another push to this replica holds its lock (not a failure of the replica)."""


def replicate(config, paths: StatePaths, url: str, *, key_file: str | None = None, progress=None,
              lock_timeout: float = 600.0, collect_garbage: bool = False, cancelled=None,
              take_over: bool = False, check_everything: bool = False) -> PushResult:
    """Push the store's repository to ``url``; ReplicaError (recorded in the state file) on failure.
    ``take_over``: make this store the replica's owner even if another store owns it;
    ``check_everything``: read back every object the replica's snapshots rely on (not only those due)."""
    display = spec_from_config(url, config).display
    status = state_file(paths.root, display)
    replica = None
    try:
        with store_lock(lock_file(paths.root, display), timeout=lock_timeout):
            replica = Replica.open(url, config, key_file=key_file, create=True,
                                   owner=local_owner_id(paths.root), take_over=take_over)
            result = push(replica, Repository(paths.snapshots), Retention.from_config(config), progress,
                          collect_garbage=collect_garbage, cancelled=cancelled,
                          ledger=Ledger.load(ledger_file(paths.root, display)),
                          policy=CheckPolicy.from_config(config, everything=check_everything))
    except LockError:
        raise ReplicaBusy(f"another guardian is pushing to {display}", "wait for it (guardian status)") from None
    except ReplicaError as exc:
        note_failure(status, display, exc.one_line(), replica.bytes_sent if replica else 0)
        raise
    note_success(status, display, result)
    return result
