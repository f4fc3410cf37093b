"""From a replica back to a store: list its snapshots, fetch one, restore it, verify everything.

A fetch writes the snapshot's files into a local repository (the new machine's state dir), each
checked against the sha256 its record lists before it is written atomically, then the manifest last
(the local commit point). Files already there with the right hash are not fetched again, so an
interrupted restore resumes where it stopped; until the manifest is written the local repository
holds no half-visible snapshot, only unreferenced files the next prune removes.

A damaged or missing object does not fail the fetch: every blob in it that can be proven good is
kept (guardian.replicas.salvage, written into a pack of their own), and each file whose content is
lost gets an older intact copy from an older snapshot on the replica, a rebuilt collection
metadata file, or is left out (guardian.replicas.recovery). The manifest written locally then says
so in its rows, and the fetch result names every file left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from guardian.errors import Refused, ReplicaError, SnapshotError
from guardian.format.chromem import encode_collection
from guardian.local.fsutil import atomic_write, ensure_dir, fsync_dir, sha256_file
from guardian.local.lock import store_lock
from guardian.replicas import recovery
from guardian.replicas.layout import DATA_PREFIX, LISTS_PREFIX, Entry, Record, id_time
from guardian.replicas.mend import check_object, describe, reliance
from guardian.replicas.push import test_replica_delay
from guardian.replicas.replica import Replica
from guardian.replicas.salvage import ObjectRead, read_data_object
from guardian.snapshots.manifest import Manifest, ManifestEntry, decode_header, decode_manifest
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


def choose_readable_remote(replica: Replica, at: datetime | None) -> tuple[str, list[str]]:
    """The newest snapshot at or before ``at`` whose record reads, and the newer ones passed over
    because their records are damaged (a push from the machine that has them writes them again)."""
    chosen = choose_remote(replica, at)
    skipped = []
    for candidate in reversed([i for i in replica.snapshot_ids() if i <= chosen]):
        try:
            replica.record(candidate)
            return candidate, skipped
        except ReplicaError:
            skipped.append(candidate)
    raise ReplicaError(f"replica {replica.display}: the record of every snapshot at or before {chosen} is damaged "
                       f"({len(skipped)})", "run `guardian replicate` on the machine that pushes there (it writes "
                       "them again), or pass a later --at")


@dataclass
class FetchResult:
    snapshot_id: str
    objects_fetched: int = 0
    objects_reused: int = 0
    bytes_fetched: int = 0
    seconds: float = 0.0
    damaged_objects: list[dict] = field(default_factory=list)   # {"object", "problem"}: read in part
    older_copies: dict[str, str] = field(default_factory=dict)  # path -> older snapshot whose copy replaces it
    rebuilt: list[str] = field(default_factory=list)            # metadata files rebuilt from the recorded name
    missing: list[str] = field(default_factory=list)            # files left out: no intact copy on the replica

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Fetcher:
    def __init__(self, replica: Replica, repo: Repository, progress=None) -> None:
        self.replica, self.repo, self.progress = replica, repo, progress
        self.delay = test_replica_delay()
        self.dirty: set[Path] = set()
        self.tried: set[str] = set()            # objects fetched (or found damaged) by this fetch
        self.salvaged: dict[str, bytes] = {}    # blobs proven good out of damaged objects
        self._lock = threading.Lock()

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
        self._objects(entries, result, self.progress)
        manifest = self._manifest(record, result)
        lost = recovery.lost_files(manifest, set(self.repo.list_blobs()))
        data = record.manifest
        if lost:
            manifest, found = self._recover(manifest, lost, result)
            result.older_copies, result.rebuilt, result.missing = found.older_copies, found.rebuilt, found.missing
            groups, other = self.repo.locate(manifest.blob_hashes())
            manifest.packs = None if other else sorted(groups)
        for folder in sorted(self.dirty):
            fsync_dir(folder)
        ensure_dir(manifest_path.parent)
        if self.delay:
            time.sleep(self.delay)
        if lost:
            self.repo.write_manifest(manifest, manifest.files_dict)   # the local commit point
        else:
            atomic_write(manifest_path, data)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    # ---- objects --------------------------------------------------------------------------------
    def _objects(self, entries: list[Entry], result: FetchResult, progress=None) -> None:
        """Fetch the objects among ``entries`` not tried yet: each whole file is written at its path;
        the good blobs of a damaged one go into a pack of their own."""
        todo = [e for e in entries if self.replica.data_key(e.rel) not in self.tried]
        self.tried.update(self.replica.data_key(e.rel) for e in todo)
        if progress:
            progress.start(len(todo))
        with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
            for entry, (fetched, read) in zip(todo, pool.map(self._fetch_one, todo)):
                result.objects_fetched += fetched > 0
                result.objects_reused += fetched == 0 and read is None
                result.bytes_fetched += fetched
                if read is not None:
                    result.damaged_objects.append({"object": entry.rel, "problem": read.problem})
                if progress:
                    progress.advance(1)
        if progress:
            progress.close()
        self._store_salvaged()

    def _fetch_one(self, entry: Entry) -> tuple[int, ObjectRead | None]:
        """(bytes fetched, the read of a damaged object or None)."""
        path = self.repo.root / entry.rel
        if _has(path, entry.sha256):
            return 0, None
        if self.delay:
            time.sleep(self.delay)
        read = read_data_object(self.replica, self.replica.data_key(entry.rel), entry)
        if read.data is None:
            with self._lock:
                self.salvaged.update(read.blobs)
            return read.fetched, read
        ensure_dir(path.parent)
        atomic_write(path, read.data, sync_dir=False)
        self.dirty.add(path.parent)
        return read.fetched, (read if read.problem else None)

    def _store_salvaged(self) -> None:
        """The blobs taken out of damaged objects, those the repository lacks, in a new pack."""
        blobs, self.salvaged = self.salvaged, {}
        added = [self.repo.put_blob(content, digest) for digest, content in sorted(blobs.items())
                 if not self.repo.has_blob(digest)]
        if added:
            self.repo.sync()

    # ---- the file list --------------------------------------------------------------------------
    def _manifest(self, record: Record, result: FetchResult) -> Manifest:
        """The record's manifest, decoded: its base file list from the objects fetched, else from
        its copy on the replica, else (an older record) from the record's own objects."""
        where = f"replica snapshot {record.id}"
        try:
            header = decode_header(record.manifest, record.id)
        except SnapshotError as exc:
            raise ReplicaError(f"{where} is damaged: {exc.message}", "pick another --at") from None
        digest = header.files_dict
        if digest and not self.repo.has_blob(digest):
            raw = self.replica.dictionary(digest)
            if raw is None and record.id != result.snapshot_id:
                self._objects(self.replica.entries(record), result)
            elif raw is not None:
                self.repo.store_dictionary(raw)
                self.repo.sync()
        try:
            return decode_manifest(record.manifest, record.id, self.repo.dictionary)
        except SnapshotError as exc:
            raise ReplicaError(f"{where}: its file list cannot be read ({exc.message}); no copy of its base "
                               "file list is intact on the replica", "pick an earlier --at") from None

    def _recover(self, manifest: Manifest, lost: dict, result: FetchResult):
        """Older intact copies, rebuilt metadata, or nothing, for each lost file (recovery.py)."""
        older: dict[str, tuple[str, ManifestEntry]] = {}
        lost = dict(lost)
        for older_id in reversed([i for i in self.replica.snapshot_ids() if i < manifest.id]):
            if not lost:
                break
            try:
                record = self.replica.record(older_id)
                candidates = recovery.older_candidates(lost, self._manifest(record, result))
            except ReplicaError:
                continue   # a damaged older snapshot: look further back
            if not candidates:
                continue
            present = set(self.repo.list_blobs())
            if any(c.hash not in present for c in candidates.values()):
                self._objects(self.replica.entries(record), result)
                present = set(self.repo.list_blobs())
            for path, copy in candidates.items():
                if copy.hash in present:
                    older[path] = (older_id, copy)
                    del lost[path]
        names = recovery.collection_names(manifest)
        rebuilt = {}
        for path, entry in lost.items():
            folder = path.partition("/")[0]
            if recovery.is_metadata(path) and folder in names:
                data = encode_collection(names[folder], {}, compress=path.endswith(".gz"))
                digest = hashlib.sha256(data).hexdigest()
                self.repo.put_blob(data, digest)
                rebuilt[path] = (digest, len(data))
        if rebuilt:
            self.repo.sync()
        left_out = recovery.left_out_folders({p: e for p, e in lost.items() if p not in rebuilt}, names)
        return recovery.rewrite(manifest, older, rebuilt, lost, left_out)


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
    """Every record readable; every object the records rely on present, authentic and matching its
    hash (as a push checks it before relying on it: guardian.replicas.mend); ``deep`` also fetches
    every intact snapshot into a temporary repository and checks it loads."""
    report = VerifyReport(snapshots=replica.snapshot_ids())
    needed = reliance(replica, report.snapshots)
    for snapshot_id, (_, why) in sorted(needed.unreadable.items()):
        report.note("record", why, [snapshot_id])
    records: list[Record] = []
    for snapshot_id in report.snapshots:
        if snapshot_id in needed.unreadable:
            continue
        record = replica.record(snapshot_id)
        if hashlib.sha256(record.manifest).hexdigest() != record.manifest_sha256:
            report.note("record", f"snapshot {snapshot_id}: manifest does not match its hash", [snapshot_id])
            continue
        records.append(record)
    listing = {**replica.target.listing(DATA_PREFIX), **replica.target.listing(LISTS_PREFIX)}
    wanted = {key: relied for key, relied in needed.objects.items()
              if relied.kind != "record" and (key in listing or not relied.optional)}
    if progress:
        progress.start(len(wanted))
    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        for key, problem in zip(wanted, pool.map(lambda k: check_object(replica, k, wanted[k]), wanted)):
            report.blobs_checked += 1
            if problem:
                report.note("object", f"{describe(wanted[key])}: {problem}", sorted(set(wanted[key].snapshots)), key)
            if progress:
                progress.advance(1)
    if progress:
        progress.close()
    if deep:
        _deep(replica, [r for r in records if r.id not in report.affected], report, scratch)
    return report


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
