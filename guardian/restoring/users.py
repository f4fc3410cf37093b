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
import os
from dataclasses import dataclass
from typing import Callable, Mapping

from guardian.contextd_config import DEFAULT, ENV, FILE, contextd_store
from guardian.errors import Refused
from guardian.local.store_users import StoreUser, StoreUsers, store_users
from guardian.words import count

SOURCES = {FILE: "its config file", ENV: "its environment", DEFAULT: "contextd's default path"}


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
    raise Refused(f"{count(len(users), 'other process', 'other processes')} {'uses' if len(users) == 1 else 'use'} "
                  "this store and would not see the restore (a contextd keeps the store in memory and writes its own "
                  f"copy back): {named}",
                  "stop them, restore, then start them again (under `guardian run` the sidecar does that for its "
                  "child), or pass --force and restart them right after the restore")


def users_of(store: str | os.PathLike) -> StoreUsers:
    """Every process using the store (``local.store_users``), a contextd by the store it decides on
    from its own configuration, environment and working folder (``guardian.contextd_config``)."""
    return store_users(store, contextd_store_of)


def contextd_store_of(environ: Mapping[str, str], cwd: str | None) -> tuple[str | None, str]:
    """The real path of the chromem store a contextd running with ``environ`` in ``cwd`` uses (None:
    it keeps none), and where the path comes from."""
    found = contextd_store(environ, cwd)
    if found.provider != "chromem":
        return None, ""
    source = SOURCES[found.path_source] + (f" {found.config_file}" if found.path_source == FILE else "")
    return os.path.realpath(found.path), source
