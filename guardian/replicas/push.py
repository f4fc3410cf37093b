"""Push the local repository to a replica: what it lacks, snapshot by snapshot, each record last.

For each snapshot to upload (oldest first): the data objects the replica lacks go up on a few
threads, then (if needed) a new base list, then the record, which is the commit point. A push killed
at any moment leaves whole objects and only complete records; the next push lists what is there
and sends the rest. Then retention: forgotten records are deleted first, then every object no kept
record needs (never when a kept record cannot be read).

Pushing reads the local repository without the store lock (readers need none), so a local prune
may remove a snapshot while it is being pushed: that snapshot is skipped and the push goes on.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from guardian.errors import ReplicaError, SnapshotError
from guardian.replicas.layout import (DATA_PREFIX, LISTS_PREFIX, Entry, Record, encode_list, encode_record,
                                      record_key)
from guardian.replicas.plan import (Retention, choose_snapshots, list_delta, objects_to_delete, replica_lag,
                                    reuse_base)
from guardian.replicas.replica import Replica
from guardian.snapshots.repository import Repository

PUSH_WORKERS = 8


def test_replica_delay() -> float:
    """TEST-ONLY hook: GUARDIAN_TEST_REPLICA_DELAY=<seconds> sleeps before each object sent or fetched,
    so tests can kill a push or a restore part-way, chosen by its progress."""
    try:
        return max(0.0, float(os.environ.get("GUARDIAN_TEST_REPLICA_DELAY", "0") or 0))
    except ValueError:
        return 0.0


class LocalSnapshotGone(Exception):
    """The snapshot was pruned locally while it was being pushed."""


@dataclass
class PushResult:
    replica: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    objects_sent: int = 0
    objects_present: int = 0
    bytes_sent: int = 0
    objects_deleted: int = 0
    gc_skipped: str = ""
    remote_snapshots: int = 0
    newest_remote: str | None = None
    lag_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Base:
    key: str | None = None
    entries: list[Entry] = field(default_factory=list)


class Pusher:
    def __init__(self, replica: Replica, repo: Repository, retention: Retention, progress=None,
                 collect_garbage: bool = False, cancelled=None) -> None:
        self.replica, self.repo, self.retention, self.progress = replica, repo, retention, progress
        self.collect_garbage = collect_garbage
        self.cancelled = cancelled or (lambda: False)
        self.result = PushResult(replica.display)
        self.present: set[str] = set()
        self.known: dict[str, Entry] = {}
        self.base = _Base()
        self.delay = test_replica_delay()

    def run(self) -> PushResult:
        started = time.monotonic()
        local_ids = self.repo.list_ids()
        remote_ids = self.replica.snapshot_ids()
        choice = choose_snapshots(local_ids, remote_ids, self.retention)
        if choice.upload:
            self._prepare(remote_ids)
            for snapshot_id in choice.upload:
                try:
                    self._upload(snapshot_id)
                except LocalSnapshotGone:
                    self.result.skipped.append(snapshot_id)
                    continue
                remote_ids.append(snapshot_id)
        if choice.forget:
            self.replica.target.delete([record_key(i) for i in choice.forget])
            self.result.forgotten = choice.forget
            remote_ids = [i for i in remote_ids if i not in set(choice.forget)]
        if choice.forget or self.collect_garbage:
            self._collect_garbage(sorted(remote_ids))
        remote_ids = sorted(remote_ids)
        self.result.remote_snapshots = len(remote_ids)
        self.result.newest_remote = remote_ids[-1] if remote_ids else None
        self.result.lag_seconds = replica_lag(self.repo.list_ids(), remote_ids, datetime.now(timezone.utc))
        self.result.bytes_sent = self.replica.bytes_sent
        self.result.objects_sent = self.replica.objects_sent
        self.result.seconds = round(time.monotonic() - started, 3)
        return self.result

    # ---- uploads --------------------------------------------------------------------------------
    def _prepare(self, remote_ids: list[str]) -> None:
        """What the replica holds, and the entries (hashes) of its newest record for reuse."""
        target = self.replica.target
        self.present = set(target.list(DATA_PREFIX)) | set(target.list(LISTS_PREFIX))
        for snapshot_id in reversed(sorted(remote_ids)):
            try:
                record = self.replica.record(snapshot_id)
                entries = self.replica.entries(record)
            except ReplicaError:
                continue  # a damaged record: try an older one; verify reports it
            self.known = {e.rel: e for e in entries}
            if record.base:
                self.base = _Base(record.base, self.replica.base_entries(record.base))
            break

    def _upload(self, snapshot_id: str) -> None:
        try:
            header = self.repo.read_header(snapshot_id)
            manifest_rel = self.repo.manifest_file_for(snapshot_id)
            rels = [rel for rel in self.repo.data_files_for(snapshot_id) if rel != manifest_rel]
            manifest = (self.repo.root / manifest_rel).read_bytes()
        except (SnapshotError, FileNotFoundError):
            raise LocalSnapshotGone(snapshot_id) from None
        keys = {rel: self.replica.data_key(rel) for rel in rels}
        missing = [rel for rel in rels if keys[rel] not in self.present or rel not in self.known]
        if self.progress:
            self.progress.start(len(missing))
        sent = 0
        with ThreadPoolExecutor(max_workers=PUSH_WORKERS) as pool:
            for rel, (entry, was_sent) in zip(missing, pool.map(lambda r: self._send(r, keys[r]), missing)):
                self.known[rel] = entry
                self.present.add(keys[rel])
                sent += was_sent
                if self.progress:
                    self.progress.advance(1)
        if self.progress:
            self.progress.close()
        self.result.objects_present += len(rels) - sent
        entries = [self.known[rel] for rel in rels]
        record = Record(id=snapshot_id, time=header.time, documents=header.documents,
                        collections=sorted(c.name or c.dir for c in header.collections),
                        manifest_rel=manifest_rel, manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                        manifest=manifest)
        self._attach_list(record, entries)
        self._put(record_key(snapshot_id), encode_record(record))   # the commit point
        self.replica.remember(record)
        self.result.uploaded.append(snapshot_id)

    def _send(self, rel: str, key: str) -> tuple[Entry, bool]:
        """Upload one file unless the replica has it (then only its hash is taken); (entry, sent)."""
        try:
            data = (self.repo.root / rel).read_bytes()
        except FileNotFoundError:
            raise LocalSnapshotGone(rel) from None
        except OSError as exc:
            raise ReplicaError(f"cannot read the local repository file {rel}: {exc.strerror or exc}",
                               "run `guardian verify`") from None
        sent = key not in self.present
        if sent:
            if self.cancelled():
                raise ReplicaError(f"push to {self.replica.display} stopped (guardian is stopping)",
                                   "it resumes where it stopped on the next push")
            self._put(key, data)
        return Entry(rel, hashlib.sha256(data).hexdigest(), len(data)), sent

    def _put(self, key: str, data: bytes) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.replica.put_plain(key, data)

    def _attach_list(self, record: Record, entries: list[Entry]) -> None:
        """Write the record's object list as a delta against the current base, or as a new base."""
        added, removed = list_delta(entries, self.base.entries)
        if not reuse_base(len(self.base.entries), len(added), len(removed)):
            encoded = encode_list(entries)
            key = LISTS_PREFIX + self.replica.sealer.name("list-" + hashlib.sha256(encoded).hexdigest())
            if key not in self.present:
                self._put(key, encoded)
                self.present.add(key)
            self.base = _Base(key, entries)
            self.replica.remember_list(key, entries)
            added, removed = [], []
        record.base, record.added, record.removed = self.base.key, added, removed

    # ---- retention ------------------------------------------------------------------------------
    def _collect_garbage(self, kept_ids: list[str]) -> None:
        needed: set[str] = set()
        for snapshot_id in kept_ids:
            try:
                record = self.replica.record(snapshot_id)
                needed.update(self.replica.data_key(e.rel) for e in self.replica.entries(record))
            except ReplicaError as exc:
                self.result.gc_skipped = f"snapshot {snapshot_id} is unreadable ({exc.message}); no object removed"
                return
            if record.base:
                needed.add(record.base)
        target = self.replica.target
        target.remove_temp_files()
        present = set(target.list(DATA_PREFIX)) | set(target.list(LISTS_PREFIX))
        doomed = objects_to_delete(present, needed)
        target.delete(doomed)
        self.result.objects_deleted = len(doomed)


def push(replica: Replica, repo: Repository, retention: Retention, progress=None,
         collect_garbage: bool = False, cancelled=None) -> PushResult:
    return Pusher(replica, repo, retention, progress, collect_garbage, cancelled).run()
