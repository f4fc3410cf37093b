"""Restoring under a running contextd: who would not see the restore, and what to do about them.

A contextd keeps the whole store in memory and writes its own changes back file by file; it never
sees a restore until it restarts, and meanwhile its writes undo parts of it (a folder the restore
moved aside is created again). So a restore of the store in place follows what Litestream tells its
users (stop the app, restore, start it): a child supervised by the sidecar is stopped around the
restore and started again (``SupervisedChild``; ``restart_child`` False opts out); any other process
using the store (``local.store_users``) refuses the restore unless ``force``, and is named, so that
the user stops it or restarts it afterwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

from guardian.errors import RestoreError
from guardian.local.store_users import StoreUser, StoreUsers


@dataclass
class SupervisedChild:
    """The sidecar's child: its process group (it leads one) and how to stop it around the work
    (a context manager that starts it again, pre-flight first, when the restore is done)."""

    group: int | None
    stopped: Callable[[], contextlib.AbstractContextManager]


def label(user: StoreUser, child: SupervisedChild | None) -> dict:
    data = user.to_dict()
    if child is not None and child.group and user.group == child.group:
        data["supervised_child"] = True
        data["why"] += " (the sidecar's supervised child: `guardian restart` restarts it)"
    return data


def others_in_the_way(scan: StoreUsers, child: SupervisedChild | None, stopping_child: bool) -> list[StoreUser]:
    """The users of the store a restore does not take care of itself (a stopped child is)."""
    return scan.outside(child.group if child is not None and stopping_child else None)


def refuse_unless_forced(users: list[StoreUser], child: SupervisedChild | None, force: bool) -> None:
    if not users or force:
        return
    named = "; ".join(f"pid {u.pid} ({u.command}): {label(u, child)['why']}" for u in users)
    raise RestoreError(f"{len(users)} other process(es) use this store and would not see the restore (a contextd "
                       f"keeps the store in memory and writes its own copy back): {named}",
                       "stop them, restore, then start them again (under `guardian run` the sidecar does that for "
                       "its child), or pass --force and restart them right after the restore")
