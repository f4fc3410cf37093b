"""From a replica back to a store: list its snapshots, fetch one, restore it, verify everything.

A fetch writes the snapshot's files into a local repository (the new machine's state dir), each
checked against the sha256 its record lists before it is written atomically, then the manifest last
(the local commit point). Files already there with the right hash are not fetched again, so an
interrupted restore resumes where it stopped; until the manifest is written the local repository
holds no half-visible snapshot, only unreferenced files the next prune removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from guardian.errors import Refused, ReplicaError
from guardian.local.fsutil import atomic_write, ensure_dir, fsync_dir, sha256_file
from guardian.local.lock import store_lock
from guardian.replicas.layout import Entry, Record, id_time
from guardian.replicas.push import test_replica_delay
from guardian.replicas.replica import Replica
from guardian.snapshots.repository import Repository
from guardian.snapshots.timespec import nothing_at_or_before, pick_snapshot
from guardian.snapshots.verify import VerifyReport, verify_repository

FETCH_WORKERS = 8


def list_remote(replica: Replica) -> list[dict]:
    """Every snapshot on the replica, oldest first; an unreadable record is listed as damaged."""
    rows = []
    for snapshot_id in replica.snapshot_ids():
        try:
            rows.append(replica.record(snapshot_id).summary())
        except ReplicaError as exc:
            rows.append({"id": snapshot_id, "damaged": exc.message})
    return rows


def choose_remote(replica: Replica, at: datetime | None) -> str:
    ids = replica.snapshot_ids()
    if not ids:
        raise Refused(f"replica {replica.display} holds no snapshot yet", "push one with `guardian replicate`")
    chosen = pick_snapshot([(i, id_time(i)) for i in ids], at)
    if chosen is None:
        raise nothing_at_or_before(at, id_time(ids[0]), f"on replica {replica.display} ",
                                   f"`guardian snapshots --from {shlex.quote(replica.spec.url)}`")
    return chosen


@dataclass
class FetchResult:
    snapshot_id: str
    objects_fetched: int = 0
    objects_reused: int = 0
    bytes_fetched: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Fetcher:
    def __init__(self, replica: Replica, repo: Repository, progress=None) -> None:
        self.replica, self.repo, self.progress = replica, repo, progress
        self.delay = test_replica_delay()
        self.dirty: set[Path] = set()

    def fetch(self, snapshot_id: str) -> FetchResult:
        started = time.monotonic()
        result = FetchResult(snapshot_id)
        record = self.replica.record(snapshot_id)
        manifest_path = self.repo.root / record.manifest_rel
        if _has(manifest_path, record.manifest_sha256):
            result.objects_reused = len(self.replica.entries(record))
            return result
        if hashlib.sha256(record.manifest).hexdigest() != record.manifest_sha256:
            raise ReplicaError(f"replica snapshot {snapshot_id}: its manifest does not match its hash (tampered)",
                               "run `guardian verify --from …`; pick another --at")
        entries = self.replica.entries(record)
        self.repo.ensure()
        if self.progress:
            self.progress.start(len(entries))
        with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
            for fetched in pool.map(self._fetch_one, entries):
                result.objects_fetched += fetched > 0
                result.objects_reused += fetched == 0
                result.bytes_fetched += fetched
                if self.progress:
                    self.progress.advance(1)
        if self.progress:
            self.progress.close()
        for folder in sorted(self.dirty):
            fsync_dir(folder)
        ensure_dir(manifest_path.parent)
        if self.delay:
            time.sleep(self.delay)
        atomic_write(manifest_path, record.manifest)   # the local commit point
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _fetch_one(self, entry: Entry) -> int:
        path = self.repo.root / entry.rel
        if _has(path, entry.sha256):
            return 0
        if self.delay:
            time.sleep(self.delay)
        key = self.replica.data_key(entry.rel)
        data = self.replica.get_plain(key)
        if data is None:
            raise ReplicaError(f"replica {self.replica.display} lacks an object of this snapshot ({entry.rel})",
                               "run `guardian verify --from …`; pick another --at")
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ReplicaError(f"replica object for {entry.rel} does not match its hash (truncated or tampered)",
                               "run `guardian verify --from …`; pick another --at")
        ensure_dir(path.parent)
        atomic_write(path, data, sync_dir=False)
        self.dirty.add(path.parent)
        return len(data)


def _has(path: Path, sha: str) -> bool:
    try:
        return sha256_file(path) == sha
    except OSError:
        return False


def fetch_snapshot(replica: Replica, repo: Repository, lock_file: Path, snapshot_id: str,
                   progress=None, lock_timeout: float = 30.0) -> FetchResult:
    """Fetch one snapshot into ``repo`` under the store lock (a prune never sees it half-fetched)."""
    with store_lock(lock_file, timeout=lock_timeout):
        return Fetcher(replica, repo, progress).fetch(snapshot_id)


@contextlib.contextmanager
def scratch_copy(replica: Replica, snapshot_id: str, progress=None):
    """One snapshot fetched into a temporary repository (removed afterwards), for a dry run: the
    plan needs the manifest and its base list, and nothing may be written to the local state."""
    folder = Path(tempfile.mkdtemp(prefix="guardian-dry-run-"))
    try:
        repo = Repository(folder / "snapshots")
        result = Fetcher(replica, repo, progress).fetch(snapshot_id)   # our own folder: no lock needed
        yield folder, result
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)


# ---- verify --------------------------------------------------------------------------------------
def verify_replica(replica: Replica, deep: bool = False, scratch: Path | None = None,
                   progress=None) -> VerifyReport:
    """Every record readable, every object present, authentic and matching its listed sha256;
    ``deep`` also fetches every intact snapshot into a temporary repository and checks it loads."""
    report = VerifyReport(snapshots=replica.snapshot_ids())
    users: dict[str, list[str]] = {}
    wanted: dict[str, Entry] = {}
    records: list[Record] = []
    for snapshot_id in report.snapshots:
        try:
            record = replica.record(snapshot_id)
            entries = replica.entries(record)
        except ReplicaError as exc:
            report.note("record", exc.message, [snapshot_id])
            continue
        if hashlib.sha256(record.manifest).hexdigest() != record.manifest_sha256:
            report.note("record", f"snapshot {snapshot_id}: manifest does not match its hash", [snapshot_id])
            continue
        records.append(record)
        for entry in entries:
            key = replica.data_key(entry.rel)
            users.setdefault(key, []).append(snapshot_id)
            wanted[key] = entry
    if progress:
        progress.start(len(wanted))
    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        for key, problem in zip(wanted, pool.map(lambda k: _check_object(replica, k, wanted[k]), wanted)):
            report.blobs_checked += 1
            if problem:
                report.note("object", problem, users[key], key)
            if progress:
                progress.advance(1)
    if progress:
        progress.close()
    if deep:
        _deep(replica, [r for r in records if r.id not in report.affected], report, scratch)
    return report


def _check_object(replica: Replica, key: str, entry: Entry) -> str:
    try:
        data = replica.get_plain(key)
    except ReplicaError as exc:
        return f"{entry.rel}: {exc.message}"
    if data is None:
        return f"{entry.rel}: missing from the replica"
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        return f"{entry.rel}: does not match its hash (truncated or tampered)"
    return ""


def _deep(replica: Replica, records: list[Record], report: VerifyReport, scratch: Path | None) -> None:
    base = ensure_dir(scratch) if scratch else None
    folder = Path(tempfile.mkdtemp(prefix="verify-replica-", dir=base))
    try:
        repo = Repository(folder / "snapshots")
        for record in records:
            try:
                fetch_snapshot(replica, repo, folder / "lock", record.id)
            except ReplicaError as exc:
                report.note("record", exc.message, [record.id])
        local = verify_repository(repo, deep=True, scratch=folder / "scratch")
        for problem in local.problems:
            report.note(problem["kind"], problem["detail"], problem["snapshots"], problem["blob"])
        report.deep.update(local.deep)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)  # our own scratch copy
