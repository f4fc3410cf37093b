"""Client-side encryption for replicas: AES-256-GCM from the ``cryptography`` package.

One 32-byte master key, from a key file (created 0600 on first use) or from a passphrase through
scrypt (the salt is kept, public, in the replica's header). Three sub-keys are derived from it with
HKDF-SHA256: one encrypts objects, one names them, one proves that a key is the replica's key.

* Records and lists are ``MAGIC || nonce || AES-GCM(data, aad=object name)``: a swapped, truncated or
  altered object fails authentication instead of restoring something else.
* Data objects (the repository's packs) are sealed in units, each authenticated on its own
  (guardian.replicas.units), so a bad byte costs only the blobs it touches. Data objects written
  before that are single messages as above; when one fails authentication, its plaintext can still
  be had without the check (:meth:`Sealer.decrypt_unchecked`): each blob in it is then trusted only
  once its content matches the hash an authenticated snapshot record names for it.
* Object names are HMAC-SHA256(name key, local path): the local path holds the content hash of
  the plaintext, which must never be visible on the replica.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from guardian.errors import ReplicaError
from guardian.local.fsutil import ensure_dir, fsync_dir, temp_path_for, write_all
from guardian.replicas import units

MAGIC = b"GRE1"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_FILE_TAG = "guardian-replica-key-1"
PASSPHRASE_ENV = "GUARDIAN_REPLICA_PASSPHRASE"
SCRYPT_PARAMS = {"n": 2 ** 15, "r": 8, "p": 1}
CHECK_MESSAGE = b"guardian replica key check"


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/guardian/replica.key``: with the config, not the per-store state, so one
    key serves every store of this user and survives a wiped state dir."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(xdg) / "guardian" / "replica.key"


def exported_marker(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".exported")


def format_key(master: bytes) -> str:
    return f"{KEY_FILE_TAG} {base64.b64encode(master).decode()}\n"


def parse_key(text: str, where: str) -> bytes:
    parts = text.split()
    try:
        if len(parts) != 2 or parts[0] != KEY_FILE_TAG:
            raise ValueError
        master = base64.b64decode(parts[1], validate=True)
        if len(master) != KEY_BYTES:
            raise ValueError
    except ValueError:
        raise ReplicaError(f"{where} is not a guardian replica key",
                           "use the exact line printed by `guardian key export`") from None
    return master


def read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise ReplicaError(f"no replica key at {path}",
                           "put the key printed by `guardian key export` there (or pass --key-file), "
                           f"or set {PASSPHRASE_ENV} if the replica uses a passphrase") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplicaError(f"cannot read the replica key {path}: {exc}", "check the file's permissions") from None
    return parse_key(text, str(path))


def create_key_file(path: Path) -> bytes:
    """A new random key at ``path`` (0600), unless another process created one first: then that one.
    The key appears by ``link``, which fails if the name exists, so two writers never disagree."""
    ensure_dir(path.parent)
    temp = temp_path_for(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, format_key(secrets.token_bytes(KEY_BYTES)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
        fsync_dir(path.parent)
    finally:
        os.unlink(temp)
    return read_key_file(path)


def passphrase_key(passphrase: str, salt: bytes, params: dict) -> bytes:
    return Scrypt(salt=salt, length=KEY_BYTES, n=params["n"], r=params["r"], p=params["p"]).derive(
        passphrase.encode("utf-8"))


def _subkey(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"guardian " + purpose).derive(master)


class Sealer:
    """Encrypts, authenticates and names objects for one replica key."""

    encrypted = True

    def __init__(self, master: bytes) -> None:
        self._data_key = _subkey(master, b"data")
        self._aead = AESGCM(self._data_key)
        self._name_key = _subkey(master, b"names")
        self.key_check = hmac.new(_subkey(master, b"check"), CHECK_MESSAGE, hashlib.sha256).hexdigest()

    def name(self, rel: str) -> str:
        return hmac.new(self._name_key, rel.encode("utf-8"), hashlib.sha256).hexdigest()

    def seal(self, name: str, data: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, name.encode())

    def open(self, name: str, blob: bytes) -> bytes:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            raise ReplicaError(f"replica object {name[:16]} is truncated or not encrypted by guardian",
                               "run `guardian verify --from …`; restore an earlier snapshot")
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES:], name.encode())
        except InvalidTag:
            raise ReplicaError(f"replica object {name[:16]} fails authentication (tampered or damaged)",
                               "run `guardian verify --from …`; restore an earlier snapshot") from None

    def seal_data(self, name: str, data: bytes) -> bytes:
        return units.seal(self._aead, name, data)

    def open_data(self, name: str, blob: bytes) -> units.Opened:
        return units.open_units(self._aead, name, blob)

    def decrypt_unchecked(self, blob: bytes) -> bytes:
        """A single-message object's plaintext without checking its tag (GCM is counter mode: a bad
        byte spoils that byte only). Only for taking verifiable blobs out of a damaged object."""
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
        body = blob[len(MAGIC) + NONCE_BYTES:len(blob) - 16]
        if len(nonce) != NONCE_BYTES:
            return b""
        decryptor = Cipher(algorithms.AES(self._data_key), modes.CTR(nonce + b"\x00\x00\x00\x02")).decryptor()
        return decryptor.update(body) + decryptor.finalize()


class PlainSealer:
    """No encryption (the default for folder targets): names are the local paths."""

    encrypted = False
    key_check = ""

    def name(self, rel: str) -> str:
        return rel

    def seal(self, name: str, data: bytes) -> bytes:
        return data

    def open(self, name: str, blob: bytes) -> bytes:
        return blob

    def seal_data(self, name: str, data: bytes) -> bytes:
        return data


@dataclass(frozen=True)
class KeySource:
    """Where the key comes from: the passphrase (environment, never stored) wins over the key file."""

    key_file: Path
    passphrase: str | None = None

    @classmethod
    def from_environment(cls, key_file: str | None) -> "KeySource":
        path = Path(key_file).expanduser() if key_file else default_key_file()
        return cls(path, os.environ.get(PASSPHRASE_ENV) or None)
