"""Verify the repository: every manifest readable and valid, every blob present and matching its hash.

A damaged blob is reported with the snapshots it affects. ``deep`` also materialises each intact
snapshot into a temporary folder (in guardian's state dir) and checks that chromem would load it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from guardian.errors import SnapshotError, StateDirError
from guardian.local.fsutil import ensure_dir
from guardian.snapshots.manifest import Manifest
from guardian.snapshots.repository import Repository
from guardian.store.scan import scan_store


@dataclass
class VerifyReport:
    snapshots: list[str] = field(default_factory=list)
    blobs_checked: int = 0
    problems: list[dict] = field(default_factory=list)
    affected: dict[str, list[str]] = field(default_factory=dict)
    deep: dict[str, dict] = field(default_factory=dict)

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
                "deep": self.deep}


def verify_repository(repo: Repository, deep: bool = False, scratch: Path | None = None,
                      progress=None) -> VerifyReport:
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
    if deep:
        for manifest in manifests:
            if manifest.id not in report.affected:
                report.deep[manifest.id] = _deep_check(repo, manifest, scratch)
    return report


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


def materialize(repo: Repository, manifest: Manifest, target: Path) -> tuple[int, int]:
    """Write every file of a snapshot under ``target`` (a fresh folder outside any store);
    returns (files, bytes) written."""
    for rel, mode in manifest.dirs:
        (target / rel).mkdir(parents=True, exist_ok=True)
    contents = {}
    for entry in manifest.files or []:
        if entry.hash is not None:
            contents.setdefault(entry.hash, []).append(entry.path)
    files = size = 0
    for digest, data in repo.iter_blobs(contents):
        for rel in contents[digest]:
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files, size = files + 1, size + len(data)
    return files, size


def _scratch_error(exc: OSError, folder: Path | None, snapshot_id: str) -> StateDirError:
    where = exc.filename or folder or tempfile.gettempdir()
    return StateDirError(f"cannot restore snapshot {snapshot_id} for --deep into {where}: {exc.strerror or exc}",
                         "free space there (or pass --state-dir on a roomier disk); "
                         "`guardian verify` without --deep needs no space")

def _deep_check(repo: Repository, manifest: Manifest, scratch: Path | None) -> dict:
    """Restore one snapshot into a scratch folder and predict chromem's verdict on it. Says what was
    restored (files, bytes) and what loaded (collections, documents). A scratch folder that cannot be
    written (full, read-only) is a StateDirError naming it, not a damaged snapshot."""
    try:
        base = ensure_dir(scratch) if scratch else None
        folder = Path(tempfile.mkdtemp(prefix="verify-", dir=base))
    except OSError as exc:
        raise _scratch_error(exc, scratch, manifest.id) from None
    try:
        target = folder / "store"
        target.mkdir()
        files, size = materialize(repo, manifest, target)
        scan = scan_store(target, manifest.compress)
        loaded = [c for c in scan.collections if not c.skipped]
        return {"loadable": bool(scan.loadable), "error": scan.error or "", "restored_files": files,
                "restored_bytes": size, "collections": len(loaded),
                "documents": sum(c.documents for c in loaded)}
    except SnapshotError as exc:
        return {"loadable": False, "error": exc.message}
    except OSError as exc:
        raise _scratch_error(exc, folder, manifest.id) from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)  # our own scratch copy
