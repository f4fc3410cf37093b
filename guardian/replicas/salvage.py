"""Reading one data object back from a replica: the whole file when it is intact, else every blob
in it that can still be proven good.

A data object is a local repository file (a pack: one zstd frame per blob, an index at the end).
Intact means its plaintext matches the sha256 and size the snapshot record lists. A damaged one is
not given up: each blob is taken out on its own and kept only when its content matches its hash,

* from an object sealed in units (guardian.replicas.units): every unit that authenticates;
* from a plain object, or an encrypted one of the first format (decrypted without its tag, see
  ``Sealer.decrypt_unchecked``): each frame the pack's own index names, checked against the digest
  the index gives; with the index itself damaged, the frames are found one after another.

A blob is only ever used for a file whose snapshot record (authenticated) names its digest, so a
blob taken from a damaged object restores exactly the bytes that were snapshotted, or nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import zstandard

from guardian.errors import ReplicaError
from guardian.replicas import crypto, units
from guardian.replicas.layout import Entry
from guardian.snapshots.packs import PACK_MAGIC, TRAILER, PackError, index_of

MAX_SALVAGED_BLOB = 256 << 20   # a frame claiming more is not one of a store's files
FEED = 64 << 10                 # how much of a damaged object is fed to the decoder at a time


@dataclass
class ObjectRead:
    """One data object as read: ``data``, the file, when it could be had whole (even from a damaged
    object: a bad byte in a units object's index costs nothing), else ``blobs`` (digest -> content)
    proven good; ``problem`` says what is wrong with the object ("" when nothing)."""

    data: bytes | None = None
    blobs: dict[str, bytes] = field(default_factory=dict)
    problem: str = ""
    missing: bool = False
    fetched: int = 0          # bytes read from the replica

    @property
    def intact(self) -> bool:
        return self.data is not None and not self.problem


def _matches(data: bytes, entry: Entry) -> bool:
    return len(data) == entry.size and hashlib.sha256(data).hexdigest() == entry.sha256


def read_data_object(replica, key: str, entry: Entry) -> ObjectRead:
    """The object at ``key`` holding the repository file ``entry``; never raises for damage (a
    ReplicaError only when the replica cannot be read at all)."""
    blob = replica.target.get(key)
    if blob is None:
        return ObjectRead(problem="missing from the replica", missing=True)
    read = _read(replica.sealer, key, blob, entry)
    read.fetched = len(blob)
    return read


def _read(sealer, key: str, blob: bytes, entry: Entry) -> ObjectRead:
    if not sealer.encrypted:
        if _matches(blob, entry):
            return ObjectRead(data=blob)
        return _damaged(pack_blobs(blob), "does not match its hash")
    if units.is_units(blob) and not blob.startswith(crypto.MAGIC):   # (a single message may end like units)
        opened = sealer.open_data(key, blob)
        if all(piece is not None for _, piece in opened.pieces) and opened.pieces:
            data = opened.plaintext()
            if _matches(data, entry):
                return ObjectRead(data=data, problem="" if opened.index_ok else
                                  "its unit index is damaged (damaged; every unit in it is intact)")
        why = (f"{opened.lost} of its {len(opened.pieces)} units fail authentication" if opened.lost
               else "does not match its hash")
        return _damaged(frame_blobs(opened.pieces), why + ("" if opened.index_ok else "; its unit index is damaged"))
    try:
        data = sealer.open(key, blob)
    except ReplicaError:
        return _damaged(pack_blobs(sealer.decrypt_unchecked(blob)), "fails authentication")
    if _matches(data, entry):
        return ObjectRead(data=data)
    return _damaged(pack_blobs(data), "does not match its hash")


def _damaged(blobs: dict[str, bytes], why: str) -> ObjectRead:
    return ObjectRead(blobs=blobs, problem=f"{why} (damaged; {len(blobs)} blobs in it are intact)")


# ---- blobs out of a damaged object ----------------------------------------------------------------
def _content(frame: bytes, claimed: int) -> bytes | None:
    """A frame's content, if it decompresses to exactly the ``claimed`` size."""
    if claimed > MAX_SALVAGED_BLOB:
        return None
    try:
        content = zstandard.ZstdDecompressor().decompress(frame, max_output_size=max(claimed, 1))
    except zstandard.ZstdError:
        return None
    return content if len(content) == claimed else None


def pack_blobs(data: bytes) -> dict[str, bytes]:
    """Every blob of a (possibly damaged) pack whose content matches its hash: by the pack's index,
    or, when that is damaged, frame by frame from the front (each then named by its own hash: it is
    used only where an authenticated manifest names that hash)."""
    found: dict[str, bytes] = {}
    try:
        entries = index_of(data)
    except PackError:
        entries = None
    if entries is not None:
        for digest, offset, length, size in entries:
            content = _content(data[offset:offset + length], size)
            if content is not None and hashlib.sha256(content).hexdigest() == digest:
                found[digest] = content
        return found
    at = len(PACK_MAGIC) if data.startswith(PACK_MAGIC) else 0
    while (at := data.find(units.ZSTD_MAGIC, at)) >= 0:
        frame = frame_at(data, at)
        if frame is None:
            at += 1
            continue
        content, at = frame
        if at != len(data) - TRAILER.size:   # the last frame, before the trailer, is the pack's own index
            found[hashlib.sha256(content).hexdigest()] = content
    return found


def frame_at(data: bytes, at: int) -> tuple[bytes, int] | None:
    """(content, end) of the zstd frame starting at ``at``, fed in pieces so that a damaged frame
    header claiming a huge size costs nothing; None unless it is one whole frame of its stated size."""
    try:
        declared = zstandard.frame_content_size(data[at:at + 18])
    except zstandard.ZstdError:
        return None
    if declared < 0 or declared > MAX_SALVAGED_BLOB:
        return None
    decoder = zstandard.ZstdDecompressor().decompressobj()
    parts, produced, position = [], 0, at
    try:
        while not decoder.eof and position < len(data):
            piece = decoder.decompress(data[position:position + FEED])
            position += FEED
            produced += len(piece)
            if produced > declared:
                return None
            parts.append(piece)
    except zstandard.ZstdError:
        return None
    if not decoder.eof or produced != declared:
        return None
    return b"".join(parts), min(position, len(data)) - len(decoder.unused_data)


def frame_blobs(pieces: list[tuple[int, bytes | None]]) -> dict[str, bytes]:
    """The blobs among the authenticated pieces of a units object: each piece that is one whole frame."""
    found: dict[str, bytes] = {}
    for kind, piece in pieces:
        if piece is None or kind == units.KIND_OTHER:
            continue
        frame = frame_at(piece, 0)
        if frame is not None and frame[1] == len(piece):
            found[hashlib.sha256(frame[0]).hexdigest()] = frame[0]
    return found
