"""Push the local repository to a replica: what it lacks, snapshot by snapshot, each record last.

Each push first mends what it will rely on (guardian.replicas.mend): from one listing of the
replica, every object the kept snapshots need that is missing or changed since guardian last knew it
good is read back, and pushed again from the local copy when it is damaged; a record that is
damaged, or whose object list is, is written again from the local snapshot.

For each snapshot to upload (oldest first): the data objects the replica lacks go up on a few
threads, then the copy of its manifest's base file list (if the replica lacks it), then (if needed)
a new object list, then the record, which is the commit point. A push killed at any moment leaves
whole objects and only complete records; the next push lists what is there and sends the rest.
Then retention: forgotten records are deleted first, then every object no kept record needs (never
when a kept record cannot be read).

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
from guardian.replicas.layout import (DATA_PREFIX, LISTS_PREFIX, Entry, Record, encode_dictionary, encode_list,
                                      encode_record, record_key, snapshot_ids)
from guardian.replicas.ledger import Ledger
from guardian.replicas.mend import CheckPolicy, Mender, MendResult, reliance
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
    mend: MendResult = field(default_factory=MendResult)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "mend"}, "check": self.mend.summary()}


@dataclass
class _Base:
    key: str | None = None
    entries: list[Entry] = field(default_factory=list)


class Pusher:
    def __init__(self, replica: Replica, repo: Repository, retention: Retention, progress=None,
                 collect_garbage: bool = False, cancelled=None, ledger: Ledger | None = None,
                 policy: CheckPolicy | None = None) -> None:
        self.replica, self.repo, self.retention, self.progress = replica, repo, retention, progress
        self.collect_garbage = collect_garbage
        self.cancelled = cancelled or (lambda: False)
        self.ledger = ledger if ledger is not None else Ledger(None)
        self.policy = policy or CheckPolicy()
        self.result = PushResult(replica.display)
        self.present: set[str] = set()
        self.known: dict[str, Entry] = {}
        self.base = _Base()
        self.delay = test_replica_delay()

    def run(self) -> PushResult:
        started = time.monotonic()
        local_ids = self.repo.list_ids()
        listing = self.replica.target.listing("")   # one listing of the whole replica: all a push looks at
        remote_ids = snapshot_ids(listing)
        choice = choose_snapshots(local_ids, remote_ids, self.retention)
        kept_remote = [i for i in remote_ids if i not in set(choice.forget)]
        self._prepare(remote_ids, listing)
        self._mend(kept_remote, listing, set(local_ids))
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
        remote_ids = sorted(remote_ids)
        needed = reliance(self.replica, remote_ids)
        if choice.forget or self.collect_garbage:
            self._collect_garbage(needed)
        self.ledger.keep_only(needed.objects)
        self.ledger.save()
        self.result.remote_snapshots = len(remote_ids)
        self.result.newest_remote = remote_ids[-1] if remote_ids else None
        self.result.lag_seconds = replica_lag(self.repo.list_ids(), remote_ids, datetime.now(timezone.utc))
        self.result.bytes_sent = self.replica.bytes_sent
        self.result.objects_sent = self.replica.objects_sent
        self.result.seconds = round(time.monotonic() - started, 3)
        return self.result

    # ---- mending --------------------------------------------------------------------------------
    def _mend(self, kept_remote: list[str], listing: dict[str, tuple[int, str]], local_ids: set[str]) -> None:
        """Check what the kept records rely on; push again what is damaged or missing; write again
        the records that are damaged or rely on a damaged object list (from the local snapshot)."""
        mender = Mender(self.replica, self.repo, self.ledger, self.policy, local_ids, self.cancelled)
        result = mender.run(reliance(self.replica, kept_remote), listing)
        self.result.mend = result
        if self.base.key in result.damaged:
            self.base = _Base()   # never build a new record on a damaged list
        for key in result.damaged:
            self.present.discard(key)
        for key in result.mended:
            self.present.add(key)
        for snapshot_id in result.rewrite:
            try:
                self._upload(snapshot_id, again=True)
            except LocalSnapshotGone:
                result.unmendable[record_key(snapshot_id)] = "the snapshot is no longer kept here"

    # ---- uploads --------------------------------------------------------------------------------
    def _prepare(self, remote_ids: list[str], listing: dict[str, tuple[int, str]]) -> None:
        """What the replica holds (from the listing: key -> size, tag), and the entries (hashes) of
        its newest readable record for reuse."""
        self.present = {k for k in listing if k.startswith((DATA_PREFIX, LISTS_PREFIX))}
        for snapshot_id in reversed(sorted(remote_ids)):
            try:
                record = self.replica.record(snapshot_id)
                entries = self.replica.entries(record)
            except ReplicaError:
                continue  # a damaged record: try an older one; the mend writes it again
            self.known = {e.rel: e for e in entries}
            if record.base:
                self.base = _Base(record.base, self.replica.base_entries(record.base))
            break

    def _upload(self, snapshot_id: str, again: bool = False) -> None:
        """Send what snapshot ``snapshot_id`` needs and its record (``again``: the replica has the
        record already, damaged or relying on a damaged list: it is written anew)."""
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
        self._send_dictionary(header.files_dict)
        entries = [self.known[rel] for rel in rels]
        record = Record(id=snapshot_id, time=header.time, documents=header.documents,
                        collections=sorted(c.name or c.dir for c in header.collections),
                        manifest_rel=manifest_rel, manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                        manifest=manifest)
        self._attach_list(record, entries)
        self._put(record_key(snapshot_id), encode_record(record))   # the commit point
        self.replica.remember(record)
        if not again:
            self.result.uploaded.append(snapshot_id)

    def _send_dictionary(self, digest: str | None) -> None:
        """The second copy of the manifest's base file list (every file of the snapshot depends on
        it; the first is a blob in one of its packs). Skipped if the local repository lost it."""
        if not digest:
            return
        key = self.replica.dictionary_key(digest)
        if key in self.present:
            return
        try:
            raw = self.repo.read_blob(digest)
        except SnapshotError:
            return
        self._put(key, encode_dictionary(raw))
        self.present.add(key)

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
            self._put(key, data, in_units=True)
        return Entry(rel, hashlib.sha256(data).hexdigest(), len(data)), sent

    def _put(self, key: str, data: bytes, in_units: bool = False) -> None:
        if self.delay:
            time.sleep(self.delay)
        written = self.replica.put_data(key, data) if in_units else self.replica.put_plain(key, data)
        self.ledger.note(key, written.size, written.tag, time.time())

    def _attach_list(self, record: Record, entries: list[Entry]) -> None:
        """Write the record's object list as a delta against the current base, or as a new base."""
        added, removed = list_delta(entries, self.base.entries)
        if not reuse_base(len(self.base.entries), len(added), len(removed)):
            encoded = encode_list(entries)
            key = self.replica.list_key(encoded)
            if key not in self.present:
                self._put(key, encoded)
                self.present.add(key)
            self.base = _Base(key, entries)
            self.replica.remember_list(key, entries)
            added, removed = [], []
        record.base, record.added, record.removed = self.base.key, added, removed

    # ---- retention ------------------------------------------------------------------------------
    def _collect_garbage(self, needed) -> None:
        if needed.unreadable:
            snapshot_id, (_, why) = sorted(needed.unreadable.items())[0]
            self.result.gc_skipped = f"snapshot {snapshot_id} is unreadable ({why}); no object removed"
            return
        target = self.replica.target
        target.remove_temp_files()
        present = set(target.list(DATA_PREFIX)) | set(target.list(LISTS_PREFIX))
        doomed = objects_to_delete(present, set(needed.objects))
        target.delete(doomed)
        self.result.objects_deleted = len(doomed)


def push(replica: Replica, repo: Repository, retention: Retention, progress=None,
         collect_garbage: bool = False, cancelled=None, ledger: Ledger | None = None,
         policy: CheckPolicy | None = None) -> PushResult:
    return Pusher(replica, repo, retention, progress, collect_garbage, cancelled, ledger, policy).run()
