"""Verify the repository: every manifest readable and valid, every blob present and matching its hash.

A damaged blob is reported with the snapshots it affects. ``deep`` also restores each intact
snapshot into a temporary folder (in guardian's state dir), as ``guardian restore`` would (the same
plan, with the same good copies), and checks that chromem would load it.

A snapshot that faithfully recorded damage in the store (a damaged file whose previous good copy it
kept, a collection's metadata missing in the second before its repair) is not itself broken: its
``recorded`` damage is listed with what a restore does about it, and only a snapshot whose manifest
or blobs are bad, or whose restore chromem would refuse, is a problem.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from guardian.errors import SnapshotError, StateDirError
from guardian.local.fsutil import ensure_dir
from guardian.snapshots.good_copies import BlobJudge
from guardian.snapshots.manifest import FLAG_DAMAGED, Manifest, ManifestEntry
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore_inputs import gather_inputs
from guardian.snapshots.restore_plan import PlanInputs, RestorePlan, plan_restore
from guardian.store.judge import damage_of
from guardian.store.scan import scan_store


@dataclass
class VerifyReport:
    snapshots: list[str] = field(default_factory=list)
    blobs_checked: int = 0
    problems: list[dict] = field(default_factory=list)
    affected: dict[str, list[str]] = field(default_factory=dict)
    deep: dict[str, dict] = field(default_factory=dict)
    recorded: dict[str, list[dict]] = field(default_factory=dict)   # snapshot -> damage it recorded, and the fix

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.get("loadable") is not False for r in self.deep.values())

    def note(self, kind: str, detail: str, snapshots: list[str], blob: str | None = None) -> None:
        self.problems.append({"kind": kind, "blob": blob, "detail": detail, "snapshots": sorted(snapshots)})
        for snapshot_id in snapshots:
            self.affected.setdefault(snapshot_id, []).append(detail)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "snapshots": len(self.snapshots), "blobs_checked": self.blobs_checked,
                "problems": self.problems, "affected_snapshots": self.affected,
                "unaffected_snapshots": [s for s in self.snapshots if s not in self.affected],
                "recorded_damage": self.recorded, "deep": self.deep}


def verify_repository(repo: Repository, deep: bool = False, scratch: Path | None = None,
                      progress=None, names: Iterable[str] = ()) -> VerifyReport:
    """``names``: collection names known besides the snapshots' own (the catalog), as a restore has them."""
    report = VerifyReport(snapshots=repo.list_ids())
    manifests = _read_manifests(repo, report)
    users: dict[str, list[str]] = {}
    for manifest in manifests:
        for digest in manifest.blob_hashes():
            users.setdefault(digest, []).append(manifest.id)
    if progress:
        progress.start(len(users))
    _check_blobs(repo, users, report, progress)
    if progress:
        progress.close()
    known = {manifest.id: manifest for manifest in manifests}
    judge = BlobJudge(repo)
    for manifest in manifests:
        if manifest.id in report.affected:
            continue   # itself broken: reported above
        if not deep and not records_damage(manifest):
            continue
        inputs = gather_inputs(repo, manifest, None, names, known=known, judge=judge)
        plan = plan_restore(manifest.id, manifest.files or [], manifest.dirs, {}, None, inputs)
        recorded = recorded_damage(manifest, plan)
        if recorded:
            report.recorded[manifest.id] = recorded
        if deep:
            report.deep[manifest.id] = _deep_check(repo, manifest, plan, inputs, scratch)
    return report


def records_damage(manifest: Manifest) -> bool:
    """Whether a snapshot may hold damage it recorded (cheap: flags, missing content, a collection's
    header without metadata); only those are planned when not --deep."""
    if any(c.documents and not c.metadata_hash for c in manifest.collections):
        return True
    return any(entry.hash is None or entry.flags & FLAG_DAMAGED for entry in manifest.files or ())


def recorded_damage(manifest: Manifest, plan: RestorePlan) -> list[dict]:
    """What the snapshot recorded as damaged, each with what a restore of it does about it."""
    found = []
    for entry in manifest.files or ():
        if entry.path in plan.substituted or not (entry.damaged and entry.hash):
            continue
        what = "missing when snapshotted" if entry.absent else "damaged when snapshotted"
        found.append({"path": entry.path, "recorded": what,
                      "restore": "writes the last good copy the snapshot kept"})
    rows = {entry.path: entry for entry in manifest.files or ()}
    for path, source in plan.substituted.items():
        own = rows.get(path)
        if own is not None and own.unstable and not own.damaged:
            continue   # a file being written when snapshotted: no damage (the restore writes its next copy)
        found.append({"path": path, "recorded": _lacking(own), "restore": f"writes the copy from {source}"})
    for folder, documents in plan.left_out.items():
        found.append({"path": folder, "recorded": f"a collection of {documents} documents with no good metadata "
                      "in any snapshot and no known name", "restore": "leaves the collection out (the store loads)"})
    for action in plan.of_kind("skip"):
        entry = action.entry
        if entry is not None and entry.damaged and not entry.absent:
            found.append({"path": action.path, "recorded": "damaged when snapshotted, no good copy anywhere",
                          "restore": "does not write it (the store keeps what it has there)"})
    return sorted(found, key=lambda item: item["path"])


def _check_blobs(repo: Repository, users: dict[str, list[str]], report: VerifyReport, progress) -> None:
    """Every blob a snapshot names, checked against its hash: each pack read once, front to back."""
    groups, other = repo.locate(users)
    for pack_id in sorted(groups):
        try:
            data = repo.read_pack(pack_id)
        except SnapshotError as exc:
            data, missing = None, exc.message
        for digest, offset, length in groups[pack_id]:
            try:
                if data is None:
                    raise SnapshotError(f"blob {digest[:12]} cannot be read: {missing}")
                repo.unpack_frame(digest, data[offset:offset + length])
            except SnapshotError as exc:
                report.note("blob", exc.message, users[digest], digest)
            report.blobs_checked += 1
            if progress:
                progress.advance(1)
    for pack_id, why in sorted(repo.damaged_packs.items()):
        report.note("pack", f"pack {pack_id[:12]} is damaged ({why}); its blobs are not used", [])
    for digest in sorted(other):
        try:
            repo.read_blob(digest)
        except SnapshotError as exc:
            report.note("blob", exc.message, users[digest], digest)
        report.blobs_checked += 1
        if progress:
            progress.advance(1)


def _read_manifests(repo: Repository, report: VerifyReport) -> list[Manifest]:
    manifests = []
    for snapshot_id in report.snapshots:
        try:
            manifests.append(repo.read_manifest(snapshot_id))
        except SnapshotError as exc:
            report.note("manifest", exc.message, [snapshot_id])
    return manifests


def _lacking(own: ManifestEntry | None) -> str:
    """Why a snapshot holds no good copy of a file a restore writes from elsewhere."""
    if own is None:
        return "not in the snapshot (a collection's metadata missing, before guardian kept its last good copy)"
    if own.absent:
        return "missing when snapshotted, no good copy before"
    if own.damaged:
        return "damaged when snapshotted, no good copy before"
    return "its stored copy would not load in chromem"


def materialize(repo: Repository, manifest: Manifest, target: Path, plan: RestorePlan | None = None,
                inputs: PlanInputs | None = None) -> tuple[int, int, list[dict]]:
    """Write what a restore of the snapshot into an empty store writes (``plan``: planned here when
    not given) under ``target`` (a fresh folder outside any store), leaving out copies chromem would
    refuse as a restore does; returns (files, bytes written, [{path, reason} refused])."""
    inputs = inputs or PlanInputs(manifest.compress)
    plan = plan or plan_restore(manifest.id, manifest.files or [], manifest.dirs, {}, None, inputs)
    for rel, _mode in plan.create_dirs:
        (target / rel).mkdir(parents=True, exist_ok=True)
    contents: dict[str, list[str]] = {}
    for action in plan.of_kind("write"):
        contents.setdefault(action.entry.hash, []).append(action.path)
    rebuilt = {digest: data for digest, data in inputs.rebuilt.items() if digest in contents}
    files = size = 0
    refused = []
    blobs = itertools.chain(repo.iter_blobs([d for d in contents if d not in rebuilt]), rebuilt.items())
    for digest, data in blobs:
        for rel in contents[digest]:
            why = damage_of(rel, data)
            if why is not None and not inputs.allow_damaged:
                refused.append({"path": rel, "reason": why})
                continue
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files, size = files + 1, size + len(data)
    return files, size, sorted(refused, key=lambda item: item["path"])


def _scratch_error(exc: OSError, folder: Path | None, snapshot_id: str) -> StateDirError:
    where = exc.filename or folder or tempfile.gettempdir()
    return StateDirError(f"cannot restore snapshot {snapshot_id} for --deep into {where}: {exc.strerror or exc}",
                         "free space there (or pass --state-dir on a roomier disk); "
                         "`guardian verify` without --deep needs no space")

def _deep_check(repo: Repository, manifest: Manifest, plan: RestorePlan, inputs: PlanInputs,
                scratch: Path | None) -> dict:
    """Restore one snapshot into a scratch folder as ``plan`` has it and predict chromem's verdict on
    it. Says what was restored (files, bytes) and what loaded (collections, documents). A scratch
    folder that cannot be written (full, read-only) is a StateDirError naming it, not a damaged
    snapshot."""
    try:
        base = ensure_dir(scratch) if scratch else None
        folder = Path(tempfile.mkdtemp(prefix="verify-", dir=base))
    except OSError as exc:
        raise _scratch_error(exc, scratch, manifest.id) from None
    try:
        target = folder / "store"
        target.mkdir()
        files, size, refused = materialize(repo, manifest, target, plan, inputs)
        scan = scan_store(target, manifest.compress)
        loaded = [c for c in scan.collections if not c.skipped]
        return {"loadable": bool(scan.loadable), "error": scan.error or "", "restored_files": files,
                "restored_bytes": size, "collections": len(loaded),
                "documents": sum(c.documents for c in loaded), "refused_damaged": refused}
    except SnapshotError as exc:
        return {"loadable": False, "error": exc.message}
    except OSError as exc:
        raise _scratch_error(exc, folder, manifest.id) from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)  # our own scratch copy
