"""Plan a restore: a pure function from (snapshot, current store, scope) to actions. No I/O.

Actions, per path relative to the store root:

- ``write``       the snapshot has it, the store does not
- ``replace``     the store has something else there (it goes to quarantine first)
- ``move_aside``  the store has it, the snapshot does not (within the scope; goes to quarantine)
- ``keep``        identical already
- ``skip``        the snapshot has no content for it (unstable, or damaged with no good copy before)

A snapshot may hold no good copy of a file chromem needs: most of all a collection's metadata,
lost in the second before its repair (a folder of documents without it makes chromem refuse the
whole store). The planner is then given (``PlanInputs``, gathered by ``restore_inputs``) the good
copies the repository holds elsewhere, and writes those instead (``substituted``). A collection
folder left with documents and no good metadata at all is left out of the restore (``left_out``):
the store loads, and its documents stay in the snapshot (``allow_damaged`` writes them anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guardian.snapshots.collection_files import is_metadata, lacking_metadata, top_folders
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


@dataclass(frozen=True)
class GoodCopy:
    """A good copy of a file the snapshot holds none of: another snapshot's, or a metadata file rebuilt
    from a name confirmed by the folder's hash. ``source`` says which, for people."""

    entry: ManifestEntry
    source: str


@dataclass
class PlanInputs:
    """What the planner needs besides the snapshot and the store (``restore_inputs`` gathers it).

    ``compress``: how chromem reads the snapshot's store; ``unusable``: rows whose stored copy is gone
    or chromem would refuse it (judged); ``copies``: per path, the good copy to write instead of the
    snapshot's own (none, or unusable); ``rebuilt``: the bytes of rebuilt metadata files by digest
    (stored as blobs only when a restore writes them); ``allow_damaged``: write a collection that has
    no good metadata anywhere all the same."""

    compress: bool = False
    unusable: frozenset[str] = frozenset()
    copies: dict[str, GoodCopy] = field(default_factory=dict)
    rebuilt: dict[str, bytes] = field(default_factory=dict)
    allow_damaged: bool = False


@dataclass
class RestorePlan:
    snapshot_id: str
    scope: str | None
    actions: list[RestoreAction] = field(default_factory=list)
    create_dirs: list[tuple[str, int]] = field(default_factory=list)
    substituted: dict[str, str] = field(default_factory=dict)   # path -> where its good copy comes from
    left_out: dict[str, int] = field(default_factory=dict)      # collection folder -> documents not written

    def rebuilt_blobs(self, inputs: PlanInputs) -> dict[str, bytes]:
        """The rebuilt files this plan writes (digest -> bytes): to be stored before the plan runs."""
        return {a.entry.hash: inputs.rebuilt[a.entry.hash] for a in self.actions
                if a.kind in ("write", "replace") and a.entry is not None and a.entry.hash in inputs.rebuilt}

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
                "actions": [a.to_dict() for a in self.actions if a.kind != "keep"],
                "substituted": [{"path": p, "source": s} for p, s in sorted(self.substituted.items())],
                "left_out": [{"folder": f, "documents": n} for f, n in sorted(self.left_out.items())]}


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


def copies_wanted(files: list[ManifestEntry], compress: bool, scope: str | None,
                  unusable: frozenset[str] = frozenset()) -> tuple[set[str], set[str]]:
    """(paths, collection folders) a restore of ``files`` needs a good copy for: rows with no content
    or an unusable one, and the metadata of each folder holding documents without good metadata."""
    inside = {e.path: e for e in files if scope is None or in_scope(e.path, scope)}
    paths = {path for path, e in inside.items() if e.hash is None or path in unusable}

    def has_metadata(path: str) -> bool:
        return path in inside and path not in paths

    # every document counts here (one without content may get a copy too)
    folders = set(lacking_metadata(top_folders(p.rpartition("/")[0] for p in inside), inside, has_metadata,
                                   lambda _path: True, compress))
    return {path for path in paths if not is_metadata(path, compress)}, folders


def plan_restore(snapshot_id: str, files: list[ManifestEntry], snapshot_dirs: list[tuple[str, int]],
                 current: dict[str, CurrentFile], scope: str | None = None,
                 inputs: PlanInputs | None = None) -> RestorePlan:
    """What a restore of ``files`` (the snapshot) over ``current`` (the store now) must do."""
    inputs = inputs or PlanInputs()
    wanted = {e.path: e for e in files if in_scope(e.path, scope)}
    substituted = _substitute(wanted, inputs, scope)
    parents = {path.rpartition("/")[0] for path in wanted}   # a few folders hold 100k files
    left_out = _left_out(wanted, parents, inputs, substituted)
    wanted_dirs = {d: m for d, m in snapshot_dirs if in_scope(d, scope) and d.partition("/")[0] not in left_out}
    for folder in parents:
        if folder.partition("/")[0] in left_out:
            continue
        while folder:
            wanted_dirs.setdefault(folder, 0o755)
            folder = folder.rpartition("/")[0]
    if scope is not None:
        wanted_dirs.setdefault(scope, 0o755)
    plan = RestorePlan(snapshot_id, scope, substituted=substituted, left_out=left_out)
    for folder, documents in sorted(left_out.items()):
        plan.actions.append(RestoreAction("skip", folder, is_dir=True, reason=(
            f"a collection of {documents} documents with no good metadata in any snapshot and no known name: "
            "left out, so that chromem loads the store")))
    aside = _foreign_top_folders(current, wanted, wanted_dirs, scope)
    for folder in sorted(aside):
        plan.actions.append(RestoreAction("move_aside", folder, is_dir=True, reason=_why_aside(folder, left_out, True)))
    blocking = _blocking_files(current, wanted_dirs)
    for path in blocking:
        plan.actions.append(RestoreAction("move_aside", path, reason="a file is where the snapshot has a folder"))
    for path in sorted(wanted):
        action = _action_for(wanted[path], current.get(path))
        if path in substituted:
            action = RestoreAction(action.kind, path, action.entry, action.is_dir,
                                   f"this snapshot holds no good copy; written from {substituted[path]}")
        plan.actions.append(action)
    replaced_dirs = {p for p in wanted if p in current and current[p].is_dir}
    for path in sorted(current):
        item = current[path]
        if item.is_dir or path in wanted or path in blocking or not in_scope(path, scope):
            continue
        if _under_any(path, aside) or _under_any(path, replaced_dirs):
            continue
        plan.actions.append(RestoreAction("move_aside", path, reason=_why_aside(path, left_out, False)))
    plan.create_dirs = sorted((d, m) for d, m in wanted_dirs.items()
                              if not (d in current and current[d].is_dir))
    return plan


def _why_aside(path: str, left_out: dict[str, int], is_dir: bool) -> str:
    if path.partition("/")[0] in left_out:
        return "its collection is left out of this restore (no good metadata anywhere)"
    return "folder not in the snapshot" if is_dir else "not in the snapshot"


def _substitute(wanted: dict[str, ManifestEntry], inputs: PlanInputs, scope: str | None) -> dict[str, str]:
    """Put the good copies in ``wanted`` where the snapshot's own row has no usable content (or no row
    for a collection's metadata); path -> where each comes from."""
    substituted = {}
    for path, copy in inputs.copies.items():
        own = wanted.get(path)
        if in_scope(path, scope) and (own is None or own.hash is None or path in inputs.unusable):
            wanted[path] = copy.entry
            substituted[path] = copy.source
    return substituted


def _left_out(wanted: dict[str, ManifestEntry], parents: set[str], inputs: PlanInputs,
              substituted: dict[str, str]) -> dict[str, int]:
    """Collection folders that would hold documents and no good metadata: taken out of ``wanted``
    (unless ``allow_damaged``), so that chromem loads what the restore writes. Folder -> documents."""
    if inputs.allow_damaged:
        return {}

    def has_content(path: str) -> bool:
        entry = wanted.get(path)
        return entry is not None and entry.hash is not None and (path not in inputs.unusable or path in substituted)

    left_out = lacking_metadata(top_folders(parents), wanted, has_content, has_content, inputs.compress)
    for path in [p for p in wanted if p.partition("/")[0] in left_out]:
        del wanted[path]
    return left_out


def _action_for(entry: ManifestEntry, now: CurrentFile | None) -> RestoreAction:
    if entry.hash is None:
        why = ("lost from a damaged replica, no intact copy on it" if entry.lost else
               "damaged when snapshotted and no good copy before" if entry.damaged else "unstable while snapshotted")
        return RestoreAction("skip", entry.path, entry, reason=f"{why}; no content kept")
    kept = ""
    if entry.damaged:
        kept = ("missing when snapshotted; its last good copy" if entry.absent
                else "damaged when snapshotted; its previous good copy")
    if now is None:
        return RestoreAction("write", entry.path, entry, reason=kept)
    if now.is_dir:
        return RestoreAction("replace", entry.path, entry, is_dir=True,
                             reason="a folder is where the snapshot has a file")
    if now.hash == entry.hash:
        return RestoreAction("keep", entry.path, entry)
    return RestoreAction("replace", entry.path, entry, reason=kept or "content differs")


def _foreign_top_folders(current, wanted, wanted_dirs, scope) -> set[str]:
    """Top-level folders in the store (whole-store scope only) that the snapshot does not have."""
    if scope is not None:
        return set()
    return {p for p, item in current.items() if item.is_dir and "/" not in p and p not in wanted_dirs}


def _blocking_files(current, wanted_dirs) -> list[str]:
    return sorted(p for p in wanted_dirs if p in current and not current[p].is_dir)
