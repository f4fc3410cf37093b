"""Plan a repair: a pure function from a store scan, what the snapshots hold and candidate names
to a list of actions. No I/O here: every input was computed beforehand (``guardian.repair.sources``).

Actions (applied in this order by ``guardian.repair.apply``):

- ``quarantine``        move a file or folder out of the store (a stray folder chromem would load,
                        a special file, a folder whose name cannot be recovered, a damaged document
                        with no valid copy anywhere, a redundant other-format copy)
- ``restore_metadata``  write a collection's metadata file from the newest snapshot holding a valid one
- ``rebuild_metadata``  write it anew from a recovered name (+ the collection metadata a snapshot kept)
- ``restore_document``  write a document file from the newest snapshot holding a valid one
- ``convert_document``  write a document from its copy in the other compression format (same bytes
                        of gob, only the gzip wrapping differs)
- ``restore_hidden``    bring a collection contextd's own recovery moved to ``.quarantine/<hash>/`` back
                        to ``<hash>/``: its metadata first (the folder's own, a snapshot's, or rebuilt
                        from its recovered name) unless the folder there already has one, then every
                        document the folder lacks (never over one it has); the leftover folder goes to
                        the quarantine last (``guardian.repair.bring_back``)

A file that is replaced is first copied into the quarantine; nothing is ever deleted.
Problems that cannot be fixed without guessing are ``unresolved`` (they keep the store unloadable)
or ``hazards`` (chromem loads, but data is hidden or at risk); both carry a hint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from guardian.format import layout
from guardian.repair import names as names_mod
from guardian.store.scan import FATAL, INFO, CollectionScan, Problem, StoreScan

METADATA_KINDS = {"metadata_missing", "metadata_empty", "metadata_truncated", "metadata_corrupt",
                  "metadata_is_folder", "metadata_empty_name", "metadata_oversized"}
DOCUMENT_KINDS = {"document_empty", "document_truncated", "document_corrupt", "document_oversized"}
QUARANTINE_KINDS = {"stray_folder", "special_file"}
# Something other than a regular file where chromem reads one, or other than a real folder where it
# reads a collection: restored from the newest good snapshot copy (or the symlink's own target).
ENTRY_KINDS = {"special_file", "broken_symlink", "document_is_folder", "symlinked_file", "symlinked_folder",
               "collection_not_folder"}
FILE_ENTRY_KINDS = {"special_file", "broken_symlink", "document_is_folder"}
FOLDER_ENTRY_KINDS = {"symlinked_folder", "collection_not_folder"}
# Reported by name in the repair report (the vocabulary).
REPORTED_AS = {"restore_metadata": "restored_metadata", "rebuild_metadata": "rebuilt_metadata",
               "restore_document": "restored_document", "convert_document": "restored_document",
               "quarantine": "quarantined", "copy_link_target": "replaced_symlink",
               "restore_folder": "restored_folder", "restore_hidden": "restored_hidden_collection"}
ORDER = {"quarantine": 0, "restore_folder": 0, "restore_metadata": 1, "rebuild_metadata": 1, "restore_document": 2,
         "convert_document": 2, "copy_link_target": 2, "restore_hidden": 3}

# Hazards that are certain to lose (or already hide) data: said loudly.
LOUD = {
    "duplicate_name": "DATA HIDDEN: chromem loads only one of these folders; the other folder's documents are "
                      "invisible to contextd and vanish for good if the collection is deleted or recreated",
    "metadata_overwritten": "DATA LOSS: every write of that document replaces the collection's metadata file again",
    "duplicate_id": "DATA LOSS: chromem keeps one of the two files; the next write of this id overwrites or "
                    "resurrects the other",
    "id_hash_mismatch": "DATA AT RISK: the next update of this id is written to another file and the next load "
                        "may bring back this stale copy; a delete leaves it behind",
    "metadata_empty_name": "DATA HIDDEN: chromem skips this collection and its documents",
    "checksum_mismatch": "DATA CORRUPTED: chromem loads this document with altered bytes (its gzip checksum "
                         "fails) and no snapshot holds an intact copy",
    "hidden_documents": "DATA HIDDEN: chromem never reads these document files; contextd does not see them",
}


# --------------------------------------------------------------------------- inputs (plain data)


@dataclass(frozen=True)
class Version:
    """One snapshot's copy of a file (as computed by the I/O layer: decoded once per blob)."""

    snapshot_id: str
    time: str
    blob: str
    valid: bool
    doc_id: str | None = None          # documents: the id it decodes to
    name: str | None = None            # metadata: the collection name it holds
    metadata: dict | None = None       # metadata: the collection's own metadata map
    path: str = ""                     # where the snapshot held it (for metadata found by name)


@dataclass(frozen=True)
class OtherFormat:
    """A document file in the other compression format, and what sits at its proper path."""

    path: str
    target: str
    doc_id: str | None                 # None: it does not decode
    target_state: str                  # "absent" | "same" (same gob bytes) | "different"


@dataclass(frozen=True)
class FolderCopy:
    """Where a real collection folder can come from: the symlink's target folder, else a snapshot."""

    target: str = ""                     # absolute path of the symlink's target folder ("" if none usable)
    snapshot_id: str = ""
    time: str = ""
    files: tuple[tuple[str, str], ...] = ()   # (rel path, blob) of the snapshot's files in that folder


@dataclass(frozen=True)
class HiddenCollection:
    """A collection folder contextd's own recovery moved below the store root, and where it belongs."""

    path: str                          # e.g. ".quarantine/40917930"
    documents: int                     # document files in it (either format)
    target: str                        # the collection folder it belongs in (its own name)
    target_state: str                  # "absent" (nothing, or an empty folder) | "named" (a real folder whose
                                       # metadata names a collection) | "unnamed" (a real folder without good
                                       # metadata: its own repair comes first) | "blocked" (not a real folder)
    own_metadata: "Version | None" = None   # a valid metadata file in it naming a collection of that folder


@dataclass
class RepairSources:
    versions: dict[str, list[Version]] = field(default_factory=dict)    # rel path -> newest first
    metadata_by_name: dict[str, Version] = field(default_factory=dict)  # newest valid metadata per name
    salvaged_ids: dict[str, str] = field(default_factory=dict)          # rel path -> id read from damaged bytes
    other_format: dict[str, OtherFormat] = field(default_factory=dict)  # rel path of the odd file -> facts
    checksum_failures: list[str] = field(default_factory=list)          # gz documents whose CRC fails
    folder_copies: dict[str, "FolderCopy"] = field(default_factory=dict)  # top entry -> where a real folder comes from
    hidden: dict[str, HiddenCollection] = field(default_factory=dict)    # contextd-quarantined folder -> facts

    def newest_valid(self, rel: str) -> Version | None:
        return next((v for v in self.versions.get(rel, ()) if v.valid), None)

    def known_id(self, rel: str) -> str | None:
        earlier = next((v.doc_id for v in self.versions.get(rel, ()) if v.doc_id), None)
        return earlier or self.salvaged_ids.get(rel)


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class RepairAction:
    kind: str
    path: str
    reason: str = ""
    source: str = ""                 # human: "snapshot <id>", "name from documents", ...
    snapshot_id: str = ""
    blob: str = ""
    name: str = ""
    metadata: dict | None = None
    from_path: str = ""              # convert_document: the other-format file; restore_folder: the target
    files: tuple = ()                # restore_folder from a snapshot: ((rel, blob), ...)
    lost_id: str | None = None       # quarantine of a document: the id it held, when known
    is_folder: bool = False
    phase: int = 0                   # 1: after the writes of phase 0 (a copy made redundant by them)
    metadata_from: str = ""          # restore_hidden: "snapshot" | "rebuilt" | "hidden" | "" (the folder has it)

    @property
    def reported_as(self) -> str:
        return REPORTED_AS[self.kind]

    def to_dict(self) -> dict:
        data = {"action": self.reported_as, "plan": self.kind, "path": self.path, "source": self.source,
                "reason": self.reason}
        for key in ("snapshot_id", "name", "from_path", "lost_id"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.kind == "rebuild_metadata":
            data["metadata"] = self.metadata or {}
        if self.is_folder:
            data["folder"] = True
        return data


@dataclass(frozen=True)
class Finding:
    """A problem the plan does not fix: ``unresolved`` keeps the store unloadable; a hazard does not."""

    path: str
    kind: str
    severity: str
    detail: str
    hint: str
    loud: str = ""

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v or k in ("path", "kind")}


@dataclass
class RepairPlan:
    actions: list[RepairAction] = field(default_factory=list)
    unresolved: list[Finding] = field(default_factory=list)
    hazards: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.actions

    def lost_documents(self) -> list[dict]:
        return [{"path": a.path, "id": a.lost_id} for a in self.actions
                if a.kind == "quarantine" and not a.is_folder and a.reason.startswith("damaged document")]

    def to_dict(self) -> dict:
        return {"actions": [a.to_dict() for a in self.actions],
                "unresolved": [f.to_dict() for f in self.unresolved],
                "hazards": [f.to_dict() for f in self.hazards],
                "lost_documents": self.lost_documents(), "notes": list(self.notes)}


# --------------------------------------------------------------------------- planning


def plan_repair(scan: StoreScan, sources: RepairSources, candidate_names: dict[str, dict[str, str]]) -> RepairPlan:
    """Decide every action for ``scan``. ``candidate_names``: folder -> {name: where it came from}."""
    plan = RepairPlan()
    whole_folders = plan_folders(scan, sources, candidate_names, plan)
    for problem in scan.problems:
        if problem.collection_dir in whole_folders or problem.path in whole_folders:
            continue
        if problem.kind == "hidden_documents":
            plan_hidden(scan, problem, sources, candidate_names.get(problem.path, {}), whole_folders, plan)
            continue
        plan_problem(scan, problem, sources, plan)
    for rel in sources.checksum_failures:
        if rel.split("/", 1)[0] not in whole_folders:
            plan_checksum_failure(rel, sources, plan)
    plan.actions.sort(key=lambda a: (a.phase, ORDER[a.kind], a.path))
    return plan


def metadata_problem(coll: CollectionScan) -> Problem | None:
    return next((p for p in coll.problems if p.kind in METADATA_KINDS), None)


def plan_folders(scan: StoreScan, sources: RepairSources, candidate_names, plan: RepairPlan) -> set[str]:
    """Metadata repairs, and the folders that go to quarantine whole. Returns those folders."""
    whole: set[str] = set()
    for problem in scan.problems:
        if problem.kind == "stray_folder":
            whole.add(problem.collection_dir or problem.path)
            plan.actions.append(RepairAction("quarantine", problem.collection_dir or problem.path, is_folder=True,
                                             reason="stray folder chromem would load as a collection "
                                                    f"({problem.detail})",
                                             source="store"))
    for coll in scan.collections:
        problem = metadata_problem(coll)
        if problem is None or coll.dir in whole:
            continue
        if not plan_metadata(scan, coll, problem, sources, candidate_names.get(coll.dir, {}), plan):
            if problem.severity == FATAL:
                whole.add(coll.dir)
    return whole


def metadata_rel(scan: StoreScan, coll: CollectionScan) -> str:
    return f"{coll.dir}/{layout.metadata_file_name(scan.compress)}"


def plan_metadata(scan, coll, problem, sources: RepairSources, candidates: dict[str, str], plan) -> bool:
    """Restore, else rebuild; when neither is possible, quarantine the folder (if fatal). True if fixed."""
    rel = metadata_rel(scan, coll)
    is_folder = problem.kind == "metadata_is_folder"
    version = sources.newest_valid(rel)
    if version is not None:
        plan.actions.append(RepairAction("restore_metadata", rel, reason=problem.kind, snapshot_id=version.snapshot_id,
                                         blob=version.blob, name=version.name or "", is_folder=is_folder,
                                         source=f"snapshot {version.snapshot_id} ({version.time})"))
        return True
    matches = names_mod.matching_names(coll.dir, candidates)
    if len(matches) == 1:
        plan.actions.append(rebuild_action(rel, coll, problem, matches[0], candidates[matches[0]], sources,
                                           is_folder, plan))
        return True
    give_up_on_metadata(coll, problem, matches, plan)
    return False


def rebuild_action(rel, coll, problem, name, name_source, sources: RepairSources, is_folder, plan) -> RepairAction:
    kept = sources.metadata_by_name.get(name)
    if kept is not None:
        metadata, meta_source = dict(kept.metadata or {}), f"collection metadata from snapshot {kept.snapshot_id}"
    else:
        metadata, meta_source = {}, "collection metadata unknown: written empty (no snapshot holds it)"
        plan.notes.append(f"{coll.dir}: collection {name!r} rebuilt with EMPTY collection metadata "
                          "(as contextd's own recovery writes it); no snapshot held its metadata map")
    return RepairAction("rebuild_metadata", rel, reason=problem.kind, name=name, metadata=metadata, is_folder=is_folder,
                        source=f"name {name!r} from {name_source} (sha256 matches folder {coll.dir}); {meta_source}",
                        snapshot_id=kept.snapshot_id if kept else "")


def give_up_on_metadata(coll: CollectionScan, problem: Problem, matches: list[str], plan: RepairPlan) -> None:
    why = (f"several candidate names hash to {coll.dir}: {', '.join(matches)}" if matches
           else f"no snapshot holds its metadata and no candidate name hashes to {coll.dir}")
    hint = ("give the collection's name with `guardian check --repair --name NAME` (or collection_names in "
            "config), then `guardian quarantine restore` the folder")
    if problem.severity != FATAL:
        plan.hazards.append(Finding(problem.path, problem.kind, problem.severity, f"{problem.detail}; {why}",
                                    problem.hint))
        return
    plan.actions.append(RepairAction("quarantine", coll.dir, is_folder=True, source="store",
                                     reason=f"collection name lost ({problem.kind}): {why}; its "
                                      f"{coll.documents or 'unknown number of'} documents cannot load under any name"))
    plan.unresolved.append(Finding(coll.dir, "name_unrecoverable", FATAL,
                                   f"UNRECOVERED: the whole folder {coll.dir} goes to quarantine so the rest "
                                   f"of the store loads ({why})", hint, loud="DATA MOVED OUT: the folder's documents "
                                   "are not available to contextd until the folder is restored"))


def plan_problem(scan: StoreScan, problem: Problem, sources: RepairSources, plan: RepairPlan) -> None:
    if problem.kind in METADATA_KINDS or problem.kind == "stray_folder":
        return  # handled per folder
    if problem.kind in DOCUMENT_KINDS:
        plan_document(problem, sources, plan)
    elif problem.kind in FILE_ENTRY_KINDS:
        plan_file_entry(problem, sources, plan)
    elif problem.kind == "symlinked_file":
        plan.actions.append(RepairAction("copy_link_target", problem.path, source="the symlink's target",
                                   reason="a symlink chromem follows but snapshots do not: replaced by a copy "
                                          "of its target (the symlink goes to quarantine)"))
    elif problem.kind in FOLDER_ENTRY_KINDS:
        plan_folder_entry(problem, sources, plan)
    elif problem.kind == "other_format_file" and problem.path in sources.other_format:
        plan_other_format(problem, sources, plan)
    elif problem.severity == FATAL:
        plan.unresolved.append(Finding(problem.path, problem.kind, FATAL, problem.detail, problem.hint))
    elif problem.severity != INFO:
        plan.hazards.append(Finding(problem.path, problem.kind, problem.severity, problem.detail, problem.hint,
                                    LOUD.get(problem.kind, "")))


def plan_hidden(scan: StoreScan, problem: Problem, sources: RepairSources, candidates: dict[str, str],
                whole_folders: set[str], plan: RepairPlan) -> None:
    """Document files below the first level. A collection contextd moved to ``.quarantine/<hash>/`` comes
    back to ``<hash>/`` (``restore_hidden``); any other folder is reported (chromem never created it:
    a backup, a copy, a folder moved by hand - merging it could bring back what was deleted since)."""
    facts = sources.hidden.get(problem.path)

    def hazard(why: str, hint: str = "") -> None:
        plan.hazards.append(Finding(problem.path, problem.kind, problem.severity, f"{problem.detail}; {why}",
                                    hint or problem.hint, LOUD["hidden_documents"]))

    if facts is None:
        hazard("not a collection contextd moved aside (not .quarantine/<hash>/): not brought back by itself",
               "if it is a collection, move it back to the store root as its <hash> folder (with its metadata "
               "file) while contextd is stopped; otherwise move it out of the store")
        return
    if facts.target in whole_folders or facts.target_state == "blocked":
        hazard(f"{facts.target} at the store root is not a folder it can go back into; repair that first")
        return
    rel = f"{facts.target}/{layout.metadata_file_name(scan.compress)}"
    base = {"kind": "restore_hidden", "path": facts.target, "from_path": facts.path, "is_folder": True,
            "reason": f"{facts.documents} document file(s) contextd moved to {facts.path} are out of chromem's sight"}
    if facts.target_state in ("named", "unnamed"):   # "unnamed": its own metadata repair runs first (ORDER)
        add_bring_back(plan, RepairAction(**base, source=f"merged into the collection folder {facts.target} "
                                         "(a document it already holds is left as it is)"))
        return
    version = sources.newest_valid(rel)
    if facts.own_metadata is not None:
        add_bring_back(plan, RepairAction(**base, metadata_from="hidden", name=facts.own_metadata.name or "",
                                         source=f"the folder's own metadata ({facts.own_metadata.name!r})"))
    elif version is not None:
        add_bring_back(plan, RepairAction(**base, metadata_from="snapshot", blob=version.blob, name=version.name or "",
                                         snapshot_id=version.snapshot_id,
                                         source=f"metadata from snapshot {version.snapshot_id} ({version.time})"))
    elif len(matches := names_mod.matching_names(facts.target, candidates)) == 1:
        name = matches[0]
        kept = sources.metadata_by_name.get(name)
        add_bring_back(plan, RepairAction(**base, metadata_from="rebuilt", name=name,
                                         metadata=dict(kept.metadata or {}) if kept else {},
                                         snapshot_id=kept.snapshot_id if kept else "",
                                         source=f"metadata rebuilt: name {name!r} from {candidates[name]} (sha256 "
                                                f"matches {facts.target})"))
        if kept is None:
            plan.notes.append(f"{facts.target}: collection {name!r} brought back with EMPTY collection metadata "
                              "(no snapshot held its metadata map)")
    else:
        why = (f"several candidate names hash to {facts.target}: {', '.join(matches)}" if matches
               else f"no snapshot holds its metadata and no candidate name hashes to {facts.target}")
        hazard(why, "give the collection's name with `guardian check --repair --name NAME` (or collection_names "
                    "in config)")


RESTART_NOTE = "a collection brought back is in contextd's memory from its next start: restart contextd if it runs"


def add_bring_back(plan: RepairPlan, action: RepairAction) -> None:
    """A restore_hidden action, and (once) the note that contextd sees it only from its next start."""
    plan.actions.append(action)
    if RESTART_NOTE not in plan.notes:
        plan.notes.append(RESTART_NOTE)


def plan_file_entry(problem: Problem, sources: RepairSources, plan: RepairPlan) -> None:
    """A non-regular entry where chromem reads a file: the newest good snapshot copy replaces it (the
    entry itself goes to quarantine first); with no copy, a FIFO/device/bad symlink is only moved out
    (chromem blocks or fails on it) and a folder is left, with a warning (chromem just skips it)."""
    version = sources.newest_valid(problem.path)
    is_metadata = layout.file_stem(problem.path.rsplit("/", 1)[-1]) == layout.METADATA_STEM
    if version is not None:
        plan.actions.append(RepairAction("restore_metadata" if is_metadata else "restore_document", problem.path,
                                   reason=f"{problem.kind}: {problem.detail}", blob=version.blob,
                                   snapshot_id=version.snapshot_id, name=version.name or "",
                                   is_folder=problem.kind == "document_is_folder",
                                   source=f"snapshot {version.snapshot_id} ({version.time})"))
    elif problem.kind == "document_is_folder":
        plan.hazards.append(Finding(problem.path, problem.kind, problem.severity,
                                    f"{problem.detail}; no snapshot holds this document", problem.hint,
                                    "DATA HIDDEN: chromem loads one document fewer than the folder's files"))
    else:
        plan.actions.append(RepairAction("quarantine", problem.path, source="store",
                                   reason=f"not a regular file where chromem reads one ({problem.detail}); "
                                          "no snapshot holds a copy"))


def plan_folder_entry(problem: Problem, sources: RepairSources, plan: RepairPlan) -> None:
    """Anything but a real folder where a collection belongs: put a real folder there (from the
    symlink's target, else the newest snapshot holding that folder); the entry goes to quarantine."""
    copy = sources.folder_copies.get(problem.path)
    if copy is not None and copy.target:
        plan.actions.append(RepairAction("restore_folder", problem.path, from_path=copy.target, is_folder=True,
                                   reason=f"{problem.kind}: chromem skips it and hides its documents",
                                   source=f"copy of the symlink's target {copy.target}"))
    elif copy is not None and copy.files:
        plan.actions.append(RepairAction("restore_folder", problem.path, files=copy.files, snapshot_id=copy.snapshot_id,
                                   is_folder=True, reason=f"{problem.kind}: chromem skips it and hides a collection",
                                   source=f"snapshot {copy.snapshot_id} ({copy.time})"))
    else:
        why = "no snapshot holds a collection folder of this name and the entry is not a symlink to a folder"
        plan.hazards.append(Finding(problem.path, problem.kind, problem.severity, f"{problem.detail}; {why}",
                                    problem.hint, "DATA HIDDEN: chromem skips this entry"))


def plan_checksum_failure(rel: str, sources: RepairSources, plan: RepairPlan) -> None:
    """A gz document chromem loads with altered bytes: restore an intact copy, else say so loudly."""
    version = sources.newest_valid(rel)
    if version is not None:
        plan.actions.append(RepairAction("restore_document", rel,
                                         reason="gzip checksum fails (silently altered content)",
                                         blob=version.blob, snapshot_id=version.snapshot_id,
                                         source=f"snapshot {version.snapshot_id} ({version.time})"))
        return
    plan.hazards.append(Finding(rel, "checksum_mismatch", "warning", "the gzip checksum fails: the content chromem "
                                "loads is not what was written", "restore it from a snapshot or re-add the document",
                                LOUD["checksum_mismatch"]))


def remaining_findings(scan: StoreScan) -> tuple[list[Finding], list[Finding]]:
    """(unresolved, hazards) still in a scan taken after the repair: fatal and warning problems."""
    unresolved, hazards = [], []
    for problem in scan.problems:
        if problem.severity == FATAL:
            unresolved.append(Finding(problem.path, problem.kind, FATAL, problem.detail, problem.hint))
        elif problem.severity != INFO:
            hazards.append(Finding(problem.path, problem.kind, problem.severity, problem.detail, problem.hint,
                                   LOUD.get(problem.kind, "")))
    return unresolved, hazards


def plan_document(problem: Problem, sources: RepairSources, plan: RepairPlan) -> None:
    version = sources.newest_valid(problem.path)
    if version is not None:
        plan.actions.append(RepairAction("restore_document", problem.path, reason=problem.kind, blob=version.blob,
                                         snapshot_id=version.snapshot_id, lost_id=None,
                                         source=f"snapshot {version.snapshot_id} ({version.time})"))
        return
    lost = sources.known_id(problem.path)
    plan.actions.append(RepairAction("quarantine", problem.path, lost_id=lost, source="store",
                                     reason=f"damaged document ({problem.kind}) with no valid copy in any snapshot; "
                                      f"the store loads without it (document id: {lost or 'unknown'})"))


def plan_other_format(problem: Problem, sources: RepairSources, plan: RepairPlan) -> None:
    """A document in the other format: written back in the store's format only when that is certain."""
    facts = sources.other_format[problem.path]
    if facts.doc_id is None or facts.target_state == "different":
        plan.hazards.append(Finding(problem.path, problem.kind, problem.severity, problem.detail, problem.hint))
        return
    if facts.target_state == "absent":
        version = sources.newest_valid(facts.target)
        if version is not None and version.doc_id == facts.doc_id:
            plan.actions.append(RepairAction("restore_document", facts.target,
                                             reason="document only present in the other compression format",
                                             blob=version.blob, snapshot_id=version.snapshot_id,
                                             source=f"snapshot {version.snapshot_id} ({version.time})"))
        else:
            plan.actions.append(RepairAction("convert_document", facts.target, from_path=facts.path,
                                             reason="document only present in the other compression format",
                                             source=f"same document re-wrapped from {facts.path}"))
    plan.actions.append(RepairAction("quarantine", facts.path, source="store", phase=1,
                                     reason=f"other-format copy of {facts.target} "
                                            "(identical document, chromem ignores it)"))
