"""Encrypted data objects sealed in small units, so that a bad byte costs only what it touches.

An encrypted object of the first format is one AES-GCM message: one flipped byte anywhere, and
the whole object (a pack of thousands of documents) fails authentication. An object of this format
seals each piece of the file on its own, as restic seals each blob of its packs: a pack's header,
each blob's zstd frame, and the pack's own index. The list of units is an index at the end, itself
sealed; every unit also carries its length in front, so a bad byte in the index leaves the units
walkable, and a bad byte in a unit leaves the index to find the others::

    UNITS_MAGIC
    unit | unit | ...        u32 length | nonce | AES-GCM(piece, aad = name | position)
    index                    nonce | AES-GCM(u32 count | count x (u64 offset, u32 length, u8 kind),
                                              aad = name | "index")
    u32 index length | INDEX_MAGIC

``offset`` is where a unit's length prefix starts; ``kind`` says whether the piece is a blob's
frame (what a damaged object's readable blobs are taken from). The pieces, in order, are the local
repository file byte for byte. Position and name are bound into every unit, so units cannot be
moved within or between objects unnoticed.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from guardian.snapshots.packs import PACK_MAGIC, PackError, index_of

UNITS_MAGIC = b"GRE2"
INDEX_MAGIC = b"GRX2"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NONCE_BYTES = 12
TAG_BYTES = 16
LENGTH = struct.Struct(">I")
INDEX_ROW = struct.Struct(">QIB")
TRAILER = struct.Struct(">I4s")
KIND_OTHER, KIND_FRAME = 0, 1
CHUNK = 64 << 10          # a file that is not a pack is sealed in pieces of this size


def pieces_of(data: bytes) -> list[tuple[int, int, int]]:
    """(start, end, kind) of each piece ``data`` is sealed in: a pack's header, frames and index, a
    lone frame (a blob file of the old layout) whole, anything else in CHUNK-sized pieces."""
    try:
        entries = sorted(index_of(data), key=lambda e: e[1])
    except PackError:
        if data.startswith(ZSTD_MAGIC):
            return [(0, len(data), KIND_FRAME)]
        return [(i, min(i + CHUNK, len(data)), KIND_OTHER) for i in range(0, len(data), CHUNK)] or [(0, 0, KIND_OTHER)]
    pieces, at = [(0, len(PACK_MAGIC), KIND_OTHER)], len(PACK_MAGIC)
    for _, offset, length, _ in entries:
        if offset < at:        # overlapping frames (never written by guardian): the rest as plain chunks
            break
        if offset > at:
            pieces.append((at, offset, KIND_OTHER))
        pieces.append((offset, offset + length, KIND_FRAME))
        at = offset + length
    pieces.append((at, len(data), KIND_OTHER))
    return pieces


def sealed_size(pieces: list[tuple[int, int, int]]) -> int:
    """The size of the object sealing these pieces (a listing's size is checked against it)."""
    per_unit = LENGTH.size + NONCE_BYTES + TAG_BYTES
    index = NONCE_BYTES + 4 + INDEX_ROW.size * len(pieces) + TAG_BYTES
    return len(UNITS_MAGIC) + sum(end - start + per_unit for start, end, _ in pieces) + index + TRAILER.size


def _aad(name: str, position: int) -> bytes:
    return name.encode() + b"|" + struct.pack(">I", position)


def _index_aad(name: str) -> bytes:
    return name.encode() + b"|index"


def seal(aead, name: str, data: bytes) -> bytes:
    """``data`` sealed in units with ``aead`` (an AESGCM) for the object ``name``."""
    view = memoryview(data)
    out = [UNITS_MAGIC]
    rows = []
    at = len(UNITS_MAGIC)
    for position, (start, end, kind) in enumerate(pieces_of(data)):
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = nonce + aead.encrypt(nonce, bytes(view[start:end]), _aad(name, position))
        out += [LENGTH.pack(len(sealed)), sealed]
        rows.append(INDEX_ROW.pack(at, len(sealed), kind))
        at += LENGTH.size + len(sealed)
    nonce = secrets.token_bytes(NONCE_BYTES)
    index = nonce + aead.encrypt(nonce, struct.pack(">I", len(rows)) + b"".join(rows), _index_aad(name))
    out += [index, TRAILER.pack(len(index), INDEX_MAGIC)]
    return b"".join(out)


def is_units(blob: bytes) -> bool:
    """Whether ``blob`` is of this format (either end says so: one bad byte cannot hide both)."""
    return blob[:len(UNITS_MAGIC)] == UNITS_MAGIC or blob[-len(INDEX_MAGIC):] == INDEX_MAGIC


@dataclass
class Opened:
    """What could be read of a units object: each piece (None where its unit failed) with its kind."""

    pieces: list[tuple[int, bytes | None]]
    index_ok: bool

    @property
    def complete(self) -> bool:
        return self.index_ok and all(piece is not None for _, piece in self.pieces)

    def plaintext(self) -> bytes:
        return b"".join(piece for _, piece in self.pieces)

    @property
    def lost(self) -> int:
        return sum(piece is None for _, piece in self.pieces)


def _open_unit(aead, sealed: bytes, aad: bytes) -> bytes | None:
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        return None
    try:
        return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        return None


def _read_index(aead, name: str, blob: bytes) -> list[tuple[int, int, int]] | None:
    if len(blob) < len(UNITS_MAGIC) + TRAILER.size:
        return None
    length, magic = TRAILER.unpack(blob[-TRAILER.size:])
    start = len(blob) - TRAILER.size - length
    if magic != INDEX_MAGIC or start < len(UNITS_MAGIC):
        return None
    body = _open_unit(aead, blob[start:len(blob) - TRAILER.size], _index_aad(name))
    if body is None or len(body) < 4:
        return None
    (count,) = struct.unpack(">I", body[:4])
    if len(body) != 4 + count * INDEX_ROW.size:
        return None
    rows = list(INDEX_ROW.iter_unpack(body[4:]))
    if any(offset + LENGTH.size + size > start for offset, size, _ in rows):
        return None
    return rows


def _walk(blob: bytes) -> list[tuple[int, int, int]]:
    """The units found by their length prefixes (the index is damaged); kinds are unknown (-1)."""
    rows, at = [], len(UNITS_MAGIC)
    while at + LENGTH.size <= len(blob):
        (size,) = LENGTH.unpack(blob[at:at + LENGTH.size])
        if size < NONCE_BYTES + TAG_BYTES or at + LENGTH.size + size > len(blob):
            break
        rows.append((at, size, -1))
        at += LENGTH.size + size
    return rows


def open_units(aead, name: str, blob: bytes) -> Opened:
    """Every unit of ``blob``, None where one does not authenticate. With the index damaged, the
    units are found by their length prefixes instead (and their kinds are unknown: -1)."""
    rows = _read_index(aead, name, blob)
    if rows is not None:
        pieces = [(kind, _open_unit(aead, blob[offset + LENGTH.size:offset + LENGTH.size + size], _aad(name, i)))
                  for i, (offset, size, kind) in enumerate(rows)]
        return Opened(pieces, True)
    pieces = [(kind, _open_unit(aead, blob[offset + LENGTH.size:offset + LENGTH.size + size], _aad(name, i)))
              for i, (offset, size, kind) in enumerate(_walk(blob))]
    return Opened(pieces, False)
