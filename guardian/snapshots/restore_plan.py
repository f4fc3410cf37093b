"""Plan a restore: a pure function from (snapshot, current store, scope) to actions. No I/O.

Actions, per path relative to the store root:

- ``write``       the snapshot has it, the store does not
- ``replace``     the store has something else there (it goes to quarantine first)
- ``move_aside``  the store has it, the snapshot does not (within the scope; goes to quarantine)
- ``keep``        identical already
- ``skip``        the snapshot has no content for it (unstable, or damaged with no good copy before)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guardian.snapshots.manifest import CollectionInfo, ManifestEntry

KINDS = ("move_aside", "replace", "write", "keep", "skip")


@dataclass(frozen=True)
class CurrentFile:
    """Something at a path in the store now. ``hash`` is None for a symlink or unreadable file."""

    path: str
    size: int
    hash: str | None
    is_dir: bool = False


@dataclass(frozen=True)
class RestoreAction:
    kind: str
    path: str
    entry: ManifestEntry | None = None
    is_dir: bool = False     # the thing moved aside / replaced is a folder
    reason: str = ""

    def to_dict(self) -> dict:
        data = {"action": self.kind, "path": self.path}
        if self.entry is not None:
            data["size"] = self.entry.size
        if self.is_dir:
            data["folder"] = True
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass
class RestorePlan:
    snapshot_id: str
    scope: str | None
    actions: list[RestoreAction] = field(default_factory=list)
    create_dirs: list[tuple[str, int]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[RestoreAction]:
        return [a for a in self.actions if a.kind == kind]

    def counts(self) -> dict[str, int]:
        return {kind: len(self.of_kind(kind)) for kind in KINDS}

    @property
    def disturbs_store(self) -> bool:
        """True when something now in the store would be replaced or moved aside."""
        return any(a.kind in ("replace", "move_aside") for a in self.actions)

    @property
    def changes(self) -> bool:
        return any(a.kind in ("replace", "move_aside", "write") for a in self.actions) or bool(self.create_dirs)

    def to_dict(self) -> dict:
        return {"snapshot": self.snapshot_id, "scope": self.scope, "counts": self.counts(),
                "create_dirs": [d for d, _ in self.create_dirs],
                "actions": [a.to_dict() for a in self.actions if a.kind != "keep"]}


def scope_for_collection(name: str, collections: list[CollectionInfo], folder_for_name) -> str | None:
    """The folder of collection ``name`` in the snapshot: the one whose metadata names it, else
    ``folder_for_name(name)`` (sha256(name)[:8]) if the snapshot has that folder; None if neither."""
    named = sorted(c.dir for c in collections if c.name == name)
    expected = folder_for_name(name)
    if expected in named:
        return expected
    if named:
        return named[0]
    if any(c.dir == expected for c in collections):
        return expected
    return None


def in_scope(path: str, scope: str | None) -> bool:
    return scope is None or path == scope or path.startswith(scope + "/")


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _under_any(path: str, folders: set[str]) -> bool:
    return any(p in folders for p in _parents(path)) or path in folders


def plan_restore(snapshot_id: str, files: list[ManifestEntry], snapshot_dirs: list[tuple[str, int]],
                 current: dict[str, CurrentFile], scope: str | None = None) -> RestorePlan:
    """What a restore of ``files`` (the snapshot) over ``current`` (the store now) must do."""
    wanted = {e.path: e for e in files if in_scope(e.path, scope)}
    wanted_dirs = {d: m for d, m in snapshot_dirs if in_scope(d, scope)}
    for folder in {path.rpartition("/")[0] for path in wanted}:   # a few folders hold 100k files
        while folder:
            wanted_dirs.setdefault(folder, 0o755)
            folder = folder.rpartition("/")[0]
    if scope is not None:
        wanted_dirs.setdefault(scope, 0o755)
    plan = RestorePlan(snapshot_id, scope)
    aside = _foreign_top_folders(current, wanted, wanted_dirs, scope)
    for folder in sorted(aside):
        plan.actions.append(RestoreAction("move_aside", folder, is_dir=True, reason="folder not in the snapshot"))
    blocking = _blocking_files(current, wanted_dirs)
    for path in blocking:
        plan.actions.append(RestoreAction("move_aside", path, reason="a file is where the snapshot has a folder"))
    for path in sorted(wanted):
        plan.actions.append(_action_for(wanted[path], current.get(path)))
    replaced_dirs = {p for p in wanted if p in current and current[p].is_dir}
    for path in sorted(current):
        item = current[path]
        if item.is_dir or path in wanted or path in blocking or not in_scope(path, scope):
            continue
        if _under_any(path, aside) or _under_any(path, replaced_dirs):
            continue
        plan.actions.append(RestoreAction("move_aside", path, reason="not in the snapshot"))
    plan.create_dirs = sorted((d, m) for d, m in wanted_dirs.items()
                              if not (d in current and current[d].is_dir))
    return plan


def _action_for(entry: ManifestEntry, now: CurrentFile | None) -> RestoreAction:
    if entry.hash is None:
        why = ("lost from a damaged replica, no intact copy on it" if entry.lost else
               "damaged when snapshotted and no good copy before" if entry.damaged else "unstable while snapshotted")
        return RestoreAction("skip", entry.path, entry, reason=f"{why}; no content kept")
    if now is None:
        return RestoreAction("write", entry.path, entry)
    if now.is_dir:
        return RestoreAction("replace", entry.path, entry, is_dir=True,
                             reason="a folder is where the snapshot has a file")
    if now.hash == entry.hash:
        return RestoreAction("keep", entry.path, entry)
    return RestoreAction("replace", entry.path, entry, reason="content differs")


def _foreign_top_folders(current, wanted, wanted_dirs, scope) -> set[str]:
    """Top-level folders in the store (whole-store scope only) that the snapshot does not have."""
    if scope is not None:
        return set()
    return {p for p, item in current.items() if item.is_dir and "/" not in p and p not in wanted_dirs}


def _blocking_files(current, wanted_dirs) -> list[str]:
    return sorted(p for p in wanted_dirs if p in current and not current[p].is_dir)
