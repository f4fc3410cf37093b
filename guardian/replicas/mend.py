"""A push mends what it relies on: every object the replica's kept snapshots need is looked at, and
one that is damaged or missing is pushed again from the local copy.

Looking costs one listing per push (S3: one request per 1,000 objects; a folder: one walk of it),
which every push makes anyway: an object that is missing, or whose size or tag (S3's ETag, a file's
mtime, ctime and inode) is not what the ledger noted when guardian last wrote it or read it back, is
read back and checked (decrypted, authenticated, hashed) now. Damage that changes none of those
(a disk's bit rot under a file) is found by reading each object back once every
``replica_check_days``, oldest first, at most ``replica_check_mb`` per push; ``replicate --check``
reads back everything now (the cost of downloading the whole replica once).

A damaged data object or base file list copy is sealed and written again from the local
repository, when the local file still has the bytes the record lists (else it cannot be mended
from here and the push says so); a damaged record, or one whose object list is damaged, is written
again from the local snapshot by the push itself (see guardian.replicas.push).
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from guardian.errors import ReplicaError, SnapshotError
from guardian.replicas.layout import Entry, decode_dictionary, decode_list, decode_record, encode_dictionary, record_key
from guardian.replicas.ledger import Ledger
from guardian.replicas.plan import CheckPlan, plan_checks
from guardian.replicas.replica import Replica
from guardian.replicas.salvage import read_data_object
from guardian.snapshots.manifest import decode_header
from guardian.snapshots.repository import Repository

CHECK_WORKERS = 8
DAY = 86400.0


@dataclass
class Relied:
    """One object kept snapshots rely on: what it holds, and which snapshots need it."""

    kind: str                         # "data" | "list" | "dict" | "record"
    snapshots: list[str] = field(default_factory=list)
    entry: Entry | None = None        # data: the repository file it holds
    digest: str = ""                  # dict: the base file list's hash
    optional: bool = False            # a base file list copy (replicas made before them lack it)


@dataclass
class Reliance:
    objects: dict[str, Relied] = field(default_factory=dict)
    # snapshot id -> (the object that could not be read: its record or its list, why)
    unreadable: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, key: str, kind: str, snapshot_id: str, **what) -> None:
        relied = self.objects.get(key)
        if relied is None:
            relied = self.objects[key] = Relied(kind, **what)
        relied.snapshots.append(snapshot_id)


def reliance(replica: Replica, snapshot_ids) -> Reliance:
    """Every object the records of ``snapshot_ids`` need: themselves, their object lists, the data
    objects those list, the copies of their manifests' base file lists."""
    found = Reliance()
    keys: dict[str, str] = {}     # rel -> object key: a keyed hash, once per file (not once per record)
    for snapshot_id in snapshot_ids:
        found.add(record_key(snapshot_id), "record", snapshot_id)
        try:
            record = replica.record(snapshot_id)
        except ReplicaError as exc:
            found.unreadable[snapshot_id] = (record_key(snapshot_id), exc.message)
            continue
        if record.base:
            found.add(record.base, "list", snapshot_id)
        files_dict = _files_dict(record.manifest, snapshot_id)
        if files_dict:
            found.add(replica.dictionary_key(files_dict), "dict", snapshot_id, digest=files_dict, optional=True)
        try:
            entries = replica.entries(record)
        except ReplicaError as exc:
            found.unreadable[snapshot_id] = (record.base, exc.message)
            entries = record.added
        for entry in entries:
            key = keys.get(entry.rel)
            if key is None:
                key = keys[entry.rel] = replica.data_key(entry.rel)
            found.add(key, "data", snapshot_id, entry=entry)
    return found


def _files_dict(manifest: bytes, snapshot_id: str) -> str | None:
    try:
        return decode_header(manifest, snapshot_id).files_dict
    except SnapshotError:
        return None


def check_object(replica: Replica, key: str, relied: Relied) -> str:
    """What is wrong with the object as the replica holds it now ("" when nothing). A replica that
    cannot be read at all raises (ReplicaError): nothing is judged from that."""
    if relied.kind == "data":
        read = read_data_object(replica, key, relied.entry)
        return "" if read.intact else read.problem
    blob = replica.target.get(key)
    if blob is None:
        return "missing from the replica"
    try:
        data = replica.sealer.open(key, blob)
        if relied.kind == "dict":
            decode_dictionary(data, relied.digest)
        elif relied.kind == "list":
            decode_list(data)
            if not replica.encrypted and key != replica.list_key(data):
                return "damaged (does not match its hash)"
        else:
            decode_record(data, relied.snapshots[0])
    except ReplicaError as exc:
        return exc.message
    return ""


def describe(relied: Relied) -> str:
    """What an object is, for a person."""
    if relied.kind == "data":
        return relied.entry.rel
    if relied.kind == "dict":
        return f"copy of base file list {relied.digest[:12]}"
    return "object list" if relied.kind == "list" else f"record of snapshot {relied.snapshots[0]}"


@dataclass
class MendResult:
    checked: int = 0                                            # objects read back
    checked_bytes: int = 0
    damaged: dict[str, str] = field(default_factory=dict)       # key -> what was wrong
    mended: list[str] = field(default_factory=list)             # keys written again
    unmendable: dict[str, str] = field(default_factory=dict)    # key -> why not from here
    rewrite: list[str] = field(default_factory=list)            # snapshots whose record must be written again

    def outcome(self, key: str) -> str:
        """What the push did about a damaged object."""
        if key in self.mended:
            return "pushed again"
        if key in self.unmendable:
            return "NOT mended"
        return "written again from the local snapshot"

    def summary(self) -> dict:
        return {"objects_checked": self.checked, "bytes_checked": self.checked_bytes,
                "damaged": [{"object": k, "problem": v, "outcome": self.outcome(k)}
                            for k, v in sorted(self.damaged.items())],
                "mended": len(self.mended),
                "not_mendable": [{"object": k, "why": v} for k, v in sorted(self.unmendable.items())]}


@dataclass(frozen=True)
class CheckPolicy:
    """How much a push reads back: objects unread for ``max_age`` seconds, at most ``budget`` bytes
    (None: all of them); ``everything``: every object, now."""

    max_age: float = 7 * DAY
    budget: int | None = 256 << 20
    everything: bool = False

    @classmethod
    def from_config(cls, config, everything: bool = False) -> "CheckPolicy":
        return cls(config.replica_check_days * DAY, int(config.replica_check_mb * (1 << 20)), everything)


class Mender:
    def __init__(self, replica: Replica, repo: Repository, ledger: Ledger, policy: CheckPolicy,
                 local_ids: set[str], cancelled=None, now=time.time) -> None:
        self.replica, self.repo, self.ledger, self.policy = replica, repo, ledger, policy
        self.local_ids = local_ids
        self.cancelled = cancelled or (lambda: False)
        self.now = now
        self.result = MendResult()

    def run(self, relied: Reliance, listing: dict[str, tuple[int, str]]) -> MendResult:
        policy = self.policy
        plan: CheckPlan = plan_checks(relied.objects, listing, self.ledger.objects, self.now(),
                                      0.0 if policy.everything else policy.max_age,
                                      None if policy.everything else policy.budget)
        for key in plan.missing:
            if not relied.objects[key].optional:
                self.result.damaged[key] = "missing from the replica"
        for key, why in relied.unreadable.values():   # read while working out what is relied on
            self.result.damaged.setdefault(key, why)
        unread = set(self.result.damaged)
        to_read = [key for key in plan.changed + plan.due if key not in unread]
        with ThreadPoolExecutor(max_workers=CHECK_WORKERS) as pool:
            for key, problem in zip(to_read, pool.map(lambda k: self._check(k, relied.objects[k]), to_read)):
                if problem is None:
                    continue   # guardian is stopping: the next push reads it
                self.result.checked += 1
                self.result.checked_bytes += listing[key][0]
                if problem:
                    self.result.damaged[key] = problem
                else:
                    self.ledger.note(key, *listing[key], self.now())
        for key in sorted(set(plan.missing) | set(self.result.damaged)):
            self._mend(key, relied.objects[key])
        return self.result

    def _check(self, key: str, relied: Relied) -> str | None:
        return None if self.cancelled() else check_object(self.replica, key, relied)

    # ---- writing again --------------------------------------------------------------------------
    def _mend(self, key: str, relied: Relied) -> None:
        if relied.kind in ("record", "list"):
            local = [s for s in relied.snapshots if s in self.local_ids]
            self.result.rewrite.extend(s for s in local if s not in self.result.rewrite)
            gone = sorted(set(relied.snapshots) - set(local))
            if gone:
                self.result.unmendable[key] = f"snapshot(s) {', '.join(gone)} are no longer kept here"
            return
        try:
            data = self._local_copy(relied)
        except (OSError, SnapshotError) as exc:
            if not relied.optional:
                self.result.unmendable[key] = f"the local copy cannot be read ({exc}); snapshots " \
                                              f"{', '.join(sorted(set(relied.snapshots)))} restore without its blobs"
            return
        if data is None:
            self.result.unmendable[key] = ("the local copy differs (damaged here too: run `guardian verify`); "
                                           f"snapshots {', '.join(sorted(set(relied.snapshots)))} restore without it")
            return
        written = (self.replica.put_data(key, data) if relied.kind == "data" else self.replica.put_plain(key, data))
        self.ledger.note(key, written.size, written.tag, self.now())
        self.result.mended.append(key)

    def _local_copy(self, relied: Relied) -> bytes | None:
        """What the object must hold, from the local repository (None when that differs too)."""
        if relied.kind == "dict":
            return encode_dictionary(self.repo.read_blob(relied.digest))
        entry = relied.entry
        data = (self.repo.root / entry.rel).read_bytes()
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            return None
        return data
