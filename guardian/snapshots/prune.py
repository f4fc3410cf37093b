"""Apply retention (``retention.plan_retention``) and remove blobs no kept snapshot references.

Runs under the store lock. Only guardian's own repository files are deleted (manifests of
forgotten snapshots, then unreferenced blobs); if any kept manifest cannot be read, no blob is
removed (its references are unknown), and the report says so.

Blobs live in packs: a pack no kept snapshot needs is deleted; a pack that is mostly garbage (less
than ``REPACK_BELOW`` of its frame bytes still referenced) is rewritten with only the referenced
blobs, the new pack durable before the old one goes; any other partly used pack is kept whole, so a
pack a kept manifest needs is never deleted. A damaged pack is never touched (``verify`` reports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from guardian.errors import SnapshotError
from guardian.local.lock import store_lock
from guardian.snapshots.manifest import referenced_hashes
from guardian.snapshots.packs import PackError
from guardian.snapshots.repository import Repository
from guardian.snapshots.restore import id_time
from guardian.snapshots.retention import plan_retention
from guardian.local.paths import StatePaths


@dataclass
class PruneResult:
    kept: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    blobs_removed: int = 0
    bytes_freed: int = 0
    gc_skipped: str = ""

    def to_dict(self) -> dict:
        return {"kept": self.kept, "forgotten": self.forgotten, "blobs_removed": self.blobs_removed,
                "bytes_freed": self.bytes_freed, "gc_skipped": self.gc_skipped}


def forget_and_prune(paths: StatePaths, keep_last: int = 24, keep_hourly: int = 0, keep_daily: int = 0,
                     keep_weekly: int = 0, lock_timeout: float = 30.0, keep_within_minutes: float = 0.0,
                     collect: bool = True) -> PruneResult:
    """Forget the snapshots retention does not keep; with ``collect``, remove the blobs none needs.
    (Forgetting reads only snapshot ids: continuous capture runs it after every snapshot and collects
    garbage now and then.)"""
    repo = Repository(paths.snapshots)
    with store_lock(paths.lock_file, timeout=lock_timeout):
        ids = repo.list_ids()
        keep, forget = plan_retention([(i, id_time(i)) for i in ids], keep_last, keep_hourly, keep_daily,
                                      keep_weekly, timedelta(minutes=keep_within_minutes))
        for snapshot_id in forget:
            repo.delete_manifest(snapshot_id)
        result = PruneResult(kept=keep, forgotten=forget)
        if collect:
            repo.clean_temp_files()
            collect_garbage(repo, keep, result)
        return result


def forget_and_prune_for(paths: StatePaths, config, collect: bool = True) -> PruneResult:
    """Retention as ``config`` says (keep_last, keep_within_minutes, keep_hourly/daily/weekly)."""
    return forget_and_prune(paths, config.keep_last, config.keep_hourly, config.keep_daily, config.keep_weekly,
                            keep_within_minutes=config.keep_within_minutes, collect=collect)


REPACK_BELOW = 0.5


def collect_garbage(repo: Repository, keep: list[str], result: PruneResult) -> None:
    referenced: set[str] = set()
    bases: dict[str, set[str]] = {}

    def base_hashes(digest: str) -> set[str]:
        if digest not in bases:
            bases[digest] = {row[5] for row in repo.dictionary(digest) if isinstance(row, list) and len(row) == 7
                             and isinstance(row[5], str)}
        return bases[digest]

    for snapshot_id in keep:
        try:
            referenced |= referenced_hashes(repo.manifest_bytes(snapshot_id), snapshot_id, base_hashes)
        except SnapshotError as exc:
            result.gc_skipped = f"snapshot {snapshot_id} is unreadable ({exc.message}); no blob removed"
            return
    to_repack: dict[str, set[str]] = {}
    for pack_id in repo.pack_ids():
        try:
            entries = repo.pack_entries(pack_id)
        except (OSError, PackError):
            continue  # damaged: left for `verify` to report, never deleted
        used = [e for e in entries if e[0] in referenced]
        garbage = len(entries) - len(used)
        if not used:
            result.bytes_freed += repo.delete_pack(pack_id)
        elif garbage and sum(e[2] for e in used) < REPACK_BELOW * sum(e[2] for e in entries):
            to_repack[pack_id] = {e[0] for e in used}
        else:
            continue
        result.blobs_removed += garbage
    if to_repack:
        result.bytes_freed += repo.repack(to_repack)
    for digest in repo.loose_blobs():
        if digest not in referenced:
            result.bytes_freed += repo.delete_blob(digest)
            result.blobs_removed += 1
    repo.sync()
