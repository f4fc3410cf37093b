"""One replica opened for use: its target, its header, its key, and cached reads of its records.

The header (``guardian-replica.json``) is written once, when the first push creates the replica;
from then on it decides whether the replica is encrypted and how its key is derived, whatever the
URL says. A key that does not match the header's check value is refused before any object is read.
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from guardian.errors import ReplicaError
from guardian.replicas import crypto
from guardian.replicas.layout import (FORMAT, HEADER_KEY, LISTS_PREFIX, SNAPSHOTS_PREFIX, Entry, Record, data_key,
                                      decode_dictionary, decode_list, decode_record, dictionary_name, list_name,
                                      record_key, snapshot_ids)
from guardian.replicas.owner import needs_claim, owner_record
from guardian.replicas.target import ReplicaSpec, open_target, parse_replica


def spec_from_config(url: str, config) -> ReplicaSpec:
    return parse_replica(url, {"s3_endpoint_url": config.s3_endpoint_url, "s3_region": config.s3_region,
                               "s3_path_style": config.s3_path_style, "s3_profile": config.s3_profile})


@dataclass(frozen=True)
class Written:
    """An object as a put left it: its size and the tag a listing shows for it."""

    size: int
    tag: str


class _Recent(dict):
    """Decoded records and object lists shared by every Replica of the process (the sidecar opens
    one per push, and each push works out what every kept record relies on): both are immutable
    once written (a list is named by its content); the newest few hundred are kept."""

    KEEP = 512

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        while len(self) > self.KEEP:
            del self[next(iter(self))]


_SHARED_RECORDS = _Recent()
_SHARED_LISTS = _Recent()


class Replica:
    def __init__(self, spec: ReplicaSpec, key_source: crypto.KeySource, target=None) -> None:
        self.spec = spec
        self.key_source = key_source
        self.target = target if target is not None else open_target(spec)
        self.sealer = None
        self.header: dict | None = None
        self._records: dict[str, Record] = {}
        self._lists: dict[str, list[Entry]] = {}
        self._lock = threading.Lock()
        self.bytes_sent = 0
        self.objects_sent = 0

    @classmethod
    def open(cls, url: str, config, key_file: str | None = None, create: bool = False,
             owner: str | None = None, take_over: bool = False) -> "Replica":
        """Open ``url``; ``create`` (a push) makes the replica if it is missing and, with ``owner``, makes
        sure this store owns it (see guardian.replicas.owner) before anything is written."""
        spec = spec_from_config(url, config)
        replica = cls(spec, crypto.KeySource.from_environment(key_file or config.replica_key_file))
        replica.connect(create, owner, take_over)
        return replica

    @property
    def display(self) -> str:
        return self.spec.display

    @property
    def encrypted(self) -> bool:
        return bool(self.sealer and self.sealer.encrypted)

    # ---- header and key -----------------------------------------------------------------------
    def connect(self, create: bool, owner: str | None = None, take_over: bool = False) -> None:
        self.target.check(writable=create)
        raw = self.target.get(HEADER_KEY)
        if raw is None:
            if not create:
                raise ReplicaError(f"there is no guardian replica at {self.display}",
                                   "check the URL; a replica is created by `guardian replicate`")
            self._create_header(owner)
            return
        try:
            header = json.loads(raw)
            if header.get("format") != FORMAT:
                raise ValueError
        except (ValueError, AttributeError):
            raise ReplicaError(f"{self.display}/{HEADER_KEY} is not a guardian replica header (damaged?)",
                               "point guardian at another prefix, or remove the object if it is not yours") from None
        self.header = header
        self.sealer = self._sealer_for(header) if header.get("encrypted") else crypto.PlainSealer()
        if header.get("encrypted") and self.sealer.key_check != header.get("key_check"):
            raise ReplicaError(f"the key does not match replica {self.display} (it was encrypted with another key)",
                               "use the key exported with `guardian key export` on the machine that created it "
                               f"(--key-file), or the right {crypto.PASSPHRASE_ENV}")
        if create and owner is not None and needs_claim(header, owner, take_over, self.display, self.spec.url):
            self._put_header({**header, "owner": owner_record(owner)})

    def _sealer_for(self, header: dict):
        key = header.get("key") or {}
        if key.get("kind") == "passphrase":
            if not self.key_source.passphrase:
                raise ReplicaError(f"replica {self.display} is encrypted with a passphrase",
                                   f"set {crypto.PASSPHRASE_ENV}")
            salt = base64.b64decode(key["salt"])
            return crypto.Sealer(crypto.passphrase_key(self.key_source.passphrase, salt, key["scrypt"]))
        return crypto.Sealer(crypto.read_key_file(self.key_source.key_file))

    def _create_header(self, owner: str | None) -> None:
        header = {"format": FORMAT, "guardian": "replica", "encrypted": self.spec.encrypt,
                  "created": datetime.now(timezone.utc).isoformat()}
        if owner is not None:
            header["owner"] = owner_record(owner)
        if not self.spec.encrypt:
            self.sealer = crypto.PlainSealer()
        elif self.key_source.passphrase:
            salt = secrets.token_bytes(16)
            header["key"] = {"kind": "passphrase", "kdf": "scrypt", "salt": base64.b64encode(salt).decode(),
                             "scrypt": crypto.SCRYPT_PARAMS}
            self.sealer = crypto.Sealer(crypto.passphrase_key(self.key_source.passphrase, salt, crypto.SCRYPT_PARAMS))
        else:
            path = self.key_source.key_file
            master = crypto.read_key_file(path) if path.exists() else crypto.create_key_file(path)
            header["key"] = {"kind": "file"}
            self.sealer = crypto.Sealer(master)
        header["key_check"] = self.sealer.key_check
        self._put_header(header)

    def _put_header(self, header: dict) -> None:
        self.target.put(HEADER_KEY, json.dumps(header, indent=1).encode() + b"\n")
        self.header = header

    # ---- objects --------------------------------------------------------------------------------
    def data_key(self, rel: str) -> str:
        return data_key(self.sealer.name(rel), self.encrypted)

    def list_key(self, encoded: bytes) -> str:
        return LISTS_PREFIX + self.sealer.name(list_name(encoded))

    def dictionary_key(self, digest: str) -> str:
        return LISTS_PREFIX + self.sealer.name(dictionary_name(digest))

    def get_plain(self, key: str) -> bytes | None:
        blob = self.target.get(key)
        return None if blob is None else self.sealer.open(key, blob)

    def put_plain(self, key: str, data: bytes) -> Written:
        """A record or list: sealed as one message."""
        return self._put(key, self.sealer.seal(key, data))

    def put_data(self, key: str, data: bytes) -> Written:
        """A repository file: sealed in units (one per blob), so damage stays local."""
        return self._put(key, self.sealer.seal_data(key, data))

    def _put(self, key: str, blob: bytes) -> Written:
        tag = self.target.put(key, blob)
        with self._lock:
            self.bytes_sent += len(blob)
            self.objects_sent += 1
        return Written(len(blob), tag or "")

    def snapshot_ids(self) -> list[str]:
        return snapshot_ids(self.target.list(SNAPSHOTS_PREFIX))

    def record(self, snapshot_id: str) -> Record:
        """A snapshot's record (decoded once per process: records never change once written)."""
        shared = (self.display, snapshot_id)
        if snapshot_id not in self._records:
            if shared in _SHARED_RECORDS:
                self._records[snapshot_id] = _SHARED_RECORDS[shared]
                return self._records[snapshot_id]
            data = self.get_plain(record_key(snapshot_id))
            if data is None:
                raise ReplicaError(f"replica {self.display} has no snapshot {snapshot_id}",
                                   f"list them with `guardian snapshots --from {shlex.quote(self.spec.url)}`")
            self.remember(decode_record(data, snapshot_id))
        return self._records[snapshot_id]

    def remember(self, record: Record) -> None:
        self._records[record.id] = record
        _SHARED_RECORDS[(self.display, record.id)] = record

    def dictionary(self, digest: str) -> bytes | None:
        """The copy of base file list ``digest`` kept under ``lists/`` (None if absent or damaged)."""
        try:
            data = self.get_plain(self.dictionary_key(digest))
            return None if data is None else decode_dictionary(data, digest)
        except ReplicaError:
            return None

    def base_entries(self, key: str | None) -> list[Entry]:
        if key is None:
            return []
        if key not in self._lists:
            shared = _SHARED_LISTS.get((self.display, key))
            if shared is not None:
                self._lists[key] = shared
                return shared
            data = self.get_plain(key)
            if data is None:
                raise ReplicaError(f"replica {self.display} lacks the object list {key[:24]}… (damaged)",
                                   "run `guardian verify --from …`")
            self.remember_list(key, decode_list(data))
        return self._lists[key]

    def remember_list(self, key: str, entries: list[Entry]) -> None:
        self._lists[key] = entries
        _SHARED_LISTS[(self.display, key)] = entries

    def entries(self, record: Record) -> list[Entry]:
        return record.entries(self.base_entries(record.base))
