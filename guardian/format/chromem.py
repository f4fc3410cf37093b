"""chromem-go v0.7.0's two persisted records and its file naming, read exactly as chromem reads them.

chromem's ``readFromReader``: read 2 bytes (none -> "couldn't read magic number ... EOF");
``1f 8b`` means gzip (Go's gzip header rules), anything else is a plain gob stream; then decode
one value. Go's gob decoder pulls only the bytes it needs, so a damaged gzip trailer (CRC, size)
or garbage after the value never matters, and a corrupt deflate stream fails only if the error
comes before the last byte gob needs. This module reproduces all of that.
"""

from __future__ import annotations

import gc
import os
import stat as stat_mod
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from guardian.format import gob
from guardian.format.layout import (  # noqa: F401  (re-exported: the layout is part of this API)
    GOB_EXT, GZ_EXT, GZIP_MAGIC, MAX_FILE_BYTES, METADATA_STEM, collection_dir_name, document_stem, extension,
    file_stem, metadata_file_name)
from guardian.format.gob import GobError

try:  # ISA-L's inflate: ~18 µs instead of ~27 for a 2.4 kB chromem file (see inflate_whole)
    from isal import isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency; zlib alone gives the same bytes
    isal_zlib = None

MAX_DECOMPRESSED = MAX_FILE_BYTES
TOO_LARGE = "too large for guardian to read"

DOCUMENT_TYPE = gob.LocalStruct("chromem.Document", {
    "ID": gob.LOCAL_STRING,
    "Metadata": gob.LOCAL_STRING_MAP,
    "Embedding": gob.LOCAL_FLOAT32_SLICE,
    "Content": gob.LOCAL_STRING,
})
COLLECTION_TYPE = gob.LocalStruct("struct { Name string; Metadata map[string]string }", {
    "Name": gob.LOCAL_STRING,
    "Metadata": gob.LOCAL_STRING_MAP,
})










@dataclass
class Document:
    id: str
    metadata: dict[str, str] = field(default_factory=dict)
    embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    content: str = ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        return (self.id == other.id and self.metadata == other.metadata and self.content == other.content
                and self.embedding.dtype == other.embedding.dtype
                and np.array_equal(self.embedding.view(np.uint32), other.embedding.view(np.uint32)))


@dataclass
class CollectionRecord:
    name: str
    metadata: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- gzip as Go reads it


def gzip_header_end(data: bytes) -> int:
    """Parse a gzip member header with Go's compress/gzip rules; returns where deflate data starts."""
    if len(data) < 10:
        raise GobError("couldn't create gzip reader: unexpected EOF")
    if data[0] != 0x1F or data[1] != 0x8B or data[2] != 8:
        raise GobError("couldn't create gzip reader: gzip: invalid header")
    flags = data[3]
    pos = 10
    if flags & 0x04:  # FEXTRA
        if pos + 2 > len(data):
            raise GobError("couldn't create gzip reader: unexpected EOF")
        extra = struct.unpack_from("<H", data, pos)[0]
        pos += 2 + extra
        if pos > len(data):
            raise GobError("couldn't create gzip reader: unexpected EOF")
    for bit in (0x08, 0x10):  # FNAME, FCOMMENT: NUL-terminated, Go reads at most 511 bytes
        if flags & bit:
            nul = data.find(b"\x00", pos, pos + 512)
            if nul < 0:
                reason = "unexpected EOF" if len(data) < pos + 512 else "gzip: invalid header"
                raise GobError(f"couldn't create gzip reader: {reason}")
            pos = nul + 1
    if flags & 0x02:  # FHCRC
        if pos + 2 > len(data):
            raise GobError("couldn't create gzip reader: unexpected EOF")
        if struct.unpack_from("<H", data, pos)[0] != zlib.crc32(data[:pos]) & 0xFFFF:
            raise GobError("couldn't create gzip reader: gzip: invalid header")
        pos += 2
    return pos


def inflate_prefix(data: bytes, start: int) -> bytes:
    """Inflate raw deflate data; on corruption keep every byte decoded before it (as Go's flate).
    Output stops one byte past MAX_DECOMPRESSED (a gzip bomb costs that much memory, no more)."""
    whole = inflate_whole(data, start)
    if whole is not None:
        return whole
    inflater = zlib.decompressobj(-15)
    try:
        return inflater.decompress(memoryview(data)[start:], MAX_DECOMPRESSED + 1)
    except zlib.error:
        return inflate_salvage(data, start)


def inflate_whole(data: bytes, start: int) -> bytes | None:
    """The fast path of :func:`inflate_prefix` (ISA-L): the inflated bytes when the deflate stream is
    complete, within the bound, and its gzip trailer (CRC-32 and size) matches them, i.e. exactly
    the bytes that were compressed, which zlib's inflate gives too. None for anything else (a
    damaged, cut or oversized stream): zlib's inflate and salvage decide those, as they always did."""
    if isal_zlib is None:
        return None
    inflater = isal_zlib.decompressobj(-15)
    try:
        out = inflater.decompress(memoryview(data)[start:], MAX_DECOMPRESSED + 1)
    except isal_zlib.error:
        return None
    trailer = inflater.unused_data
    if not inflater.eof or len(trailer) < 8 or len(out) > MAX_DECOMPRESSED:
        return None
    crc, size = struct.unpack_from("<II", trailer)
    return out if crc == zlib.crc32(out) and size == len(out) & 0xFFFFFFFF else None


def inflate_salvage(data: bytes, start: int) -> bytes:
    inflater = zlib.decompressobj(-15)
    parts: list[bytes] = []
    view = memoryview(data)
    total = 0
    for i in range(start, len(data)):
        try:
            part = inflater.decompress(view[i:i + 1], MAX_DECOMPRESSED + 1 - total)
        except zlib.error:
            break
        parts.append(part)
        total += len(part)
        if total > MAX_DECOMPRESSED:
            break
    return b"".join(parts)


def gob_stream(data: bytes) -> bytes:
    """The gob bytes chromem's reader would see for a file's raw bytes."""
    if len(data) == 0:
        raise GobError("couldn't read magic number to determine whether the stream is compressed: EOF")
    if data[:2] == GZIP_MAGIC:
        return inflate_prefix(data, gzip_header_end(data))
    return data


def gzip_bytes(payload: bytes) -> bytes:
    """gzip as Go's compress/gzip writes it by default (no name, mtime 0, OS 255)."""
    deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    body = deflater.compress(payload) + deflater.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", zlib.crc32(payload) & 0xFFFFFFFF, len(payload) & 0xFFFFFFFF)
    return header + body + trailer


# --------------------------------------------------------------------------- decoding

_document_decoder = gob.Decoder(DOCUMENT_TYPE)
_collection_decoder = gob.Decoder(COLLECTION_TYPE)


def _decode(decoder: gob.Decoder, data: bytes, path) -> dict:
    stream = b""
    try:
        stream = gob_stream(data)
        return decoder.decode(stream)
    except GobError as exc:
        if _clipped(data, stream) and "EOF" in exc.reason:
            exc = GobError(f"{TOO_LARGE}: its value needs more than {MAX_FILE_BYTES} bytes "
                           "(guardian reads no further; chromem's verdict on it is unknown)")
        raise exc.with_path(str(path)) if path is not None else exc
    except RecursionError:
        raise GobError("gob: value nested too deeply", str(path) if path else None) from None


def document_from_fields(fields: dict) -> Document:
    embedding = fields.get("Embedding")
    return Document(
        id=fields.get("ID", ""),
        metadata=fields.get("Metadata") or {},
        embedding=embedding if embedding is not None else np.zeros(0, dtype=np.float32),
        content=fields.get("Content", ""),
    )


def decode_document(data: bytes, path=None) -> Document:
    return document_from_fields(_decode(_document_decoder, data, path))


def check_document(data: bytes) -> str:
    """GobError unless chromem would load ``data`` as a document (decoded, no Document built); its ID."""
    return _decode(_document_decoder, data, None).get("ID", "")


def check_collection(data: bytes) -> None:
    """GobError unless chromem would load ``data`` as a collection's metadata file."""
    _decode(_collection_decoder, data, None)


def decode_collection(data: bytes, path=None) -> CollectionRecord:
    fields = _decode(_collection_decoder, data, path)
    return CollectionRecord(name=fields.get("Name", ""), metadata=fields.get("Metadata") or {})


def _clipped(data: bytes, stream: bytes) -> bool:
    """True when guardian stopped reading the file or inflating it at its memory bound."""
    return len(data) > MAX_FILE_BYTES or len(stream) > MAX_DECOMPRESSED


def read_file(path) -> bytes:
    """Read a chromem file's bytes as chromem's os.Open does (a symlink to a file is followed), but
    only a regular file (a FIFO or device is never opened: it could block or never end) and at most
    one byte past MAX_FILE_BYTES (a huge or sparse file never fills memory). OS failures become the
    codec's error, as chromem fails. (The same rule as ``guardian.local.storefs.read_regular``, which
    this layer may not import.)"""
    try:
        if not stat_mod.S_ISREG(os.stat(path).st_mode):   # looked at before it is opened
            raise GobError(f"couldn't open file: not a regular file ({_kind(os.stat(path).st_mode)})", str(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)   # O_NONBLOCK: a FIFO swapped in never blocks
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise GobError("couldn't open file: not a regular file (swapped while opening)", str(path))
            return read_bounded(fd, st.st_size, MAX_FILE_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise GobError(f"couldn't open file: {exc.strerror or exc}", str(path)) from None


def read_bounded(fd: int, size_hint: int, limit: int) -> bytes:
    """At most ``limit`` bytes from ``fd``, read in reads sized by the file's size (asking for
    ``limit`` bytes at once would allocate a 64 MiB buffer per file: ~50 µs each, seconds at 100k).
    A short read is the end of a regular file; a file that grew is read on, up to the limit."""
    chunks = []
    total = 0
    want = min(size_hint, limit - 1) + 1   # one byte more than the size: a grown file shows at once
    while total < limit:
        ask = min(want, limit - total)
        chunk = os.read(fd, ask)
        chunks.append(chunk)
        total += len(chunk)
        if len(chunk) < ask:
            break
        want = max(want, 1 << 20)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _kind(mode: int) -> str:
    for test, name in ((stat_mod.S_ISDIR, "folder"), (stat_mod.S_ISFIFO, "FIFO"), (stat_mod.S_ISSOCK, "socket"),
                       (stat_mod.S_ISCHR, "character device"), (stat_mod.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def read_document(path) -> Document:
    return decode_document(read_file(path), path)


def read_collection(path) -> CollectionRecord:
    return decode_collection(read_file(path), path)


# --------------------------------------------------------------------------- encoding

COLLECTION_STRUCT_ID, STRING_MAP_ID, DOCUMENT_STRUCT_ID, FLOAT32_SLICE_ID = 64, 65, 66, 67

_COLLECTION_TYPES = (
    gob.frame(-COLLECTION_STRUCT_ID, gob.struct_type_def("", COLLECTION_STRUCT_ID,
                                                         [("Name", gob.T_STRING), ("Metadata", STRING_MAP_ID)]))
    + gob.frame(-STRING_MAP_ID, gob.map_type_def("map[string]string", STRING_MAP_ID, gob.T_STRING, gob.T_STRING))
)
_DOCUMENT_TYPES = (
    gob.frame(-DOCUMENT_STRUCT_ID, gob.struct_type_def("Document", DOCUMENT_STRUCT_ID, [
        ("ID", gob.T_STRING), ("Metadata", STRING_MAP_ID), ("Embedding", FLOAT32_SLICE_ID),
        ("Content", gob.T_STRING)]))
    + gob.frame(-STRING_MAP_ID, gob.map_type_def("map[string]string", STRING_MAP_ID, gob.T_STRING, gob.T_STRING))
    + gob.frame(-FLOAT32_SLICE_ID, gob.slice_type_def("[]float32", FLOAT32_SLICE_ID, gob.T_FLOAT))
)


def _string_field(value: str) -> bytes | None:
    return gob.encode_string(value) if value else None


def _map_field(mapping: dict[str, str] | None) -> bytes | None:
    return None if mapping is None else gob.encode_string_map(mapping)


def encode_collection(name: str, metadata: dict[str, str] | None = None, compress: bool = False) -> bytes:
    """The bytes chromem writes for a collection's ``00000000.gob`` (a nil map is omitted)."""
    value = gob.encode_struct_value(COLLECTION_STRUCT_ID, [(0, _string_field(name)), (1, _map_field(metadata))])
    data = _COLLECTION_TYPES + value
    return gzip_bytes(data) if compress else data


def encode_document(doc: Document, compress: bool = False) -> bytes:
    """The bytes chromem writes for one document file."""
    embedding = np.asarray(doc.embedding, dtype=np.float32).reshape(-1)
    floats = gob.encode_uint(embedding.size) + gob.encode_float32_run(embedding) if embedding.size else None
    value = gob.encode_struct_value(DOCUMENT_STRUCT_ID, [
        (0, _string_field(doc.id)), (1, _map_field(doc.metadata)), (2, floats), (3, _string_field(doc.content)),
    ])
    data = _DOCUMENT_TYPES + value
    return gzip_bytes(data) if compress else data


# --------------------------------------------------------------------------- bulk reading


@dataclass
class DocumentBatch:
    """Many documents decoded at once: parallel lists plus one float32 matrix."""

    paths: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)
    metadatas: list[dict[str, str]] = field(default_factory=list)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    errors: dict[str, GobError] = field(default_factory=dict)
    ragged: dict[str, np.ndarray] = field(default_factory=dict)  # paths whose dimension differs

    def __len__(self) -> int:
        return len(self.ids)


def read_documents(paths: list) -> DocumentBatch:
    """Read and decode many document files; bad files land in ``errors`` and are skipped."""
    batch = DocumentBatch()
    vectors: list[np.ndarray] = []
    collecting = gc.isenabled()
    gc.disable()  # ~10 acyclic objects per document: cyclic GC passes over the growing batch only cost time
    try:
        for path in paths:
            try:
                doc = read_document(path)
            except GobError as exc:
                batch.errors[str(path)] = exc
                continue
            batch.paths.append(str(path))
            batch.ids.append(doc.id)
            batch.contents.append(doc.content)
            batch.metadatas.append(doc.metadata)
            vectors.append(doc.embedding)
    finally:
        if collecting:
            gc.enable()
    batch.embeddings = stack_embeddings(batch, vectors)
    return batch


def stack_embeddings(batch: DocumentBatch, vectors: list[np.ndarray]) -> np.ndarray:
    """One n x d matrix of the majority dimension; other dimensions go to ``batch.ragged``."""
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32)
    sizes = [v.size for v in vectors]
    dim = max(set(sizes), key=sizes.count)
    if all(s == dim for s in sizes):
        return np.vstack(vectors).astype(np.float32, copy=False) if dim else np.zeros((len(vectors), 0), np.float32)
    keep = [i for i, s in enumerate(sizes) if s == dim]
    for i, s in enumerate(sizes):
        if s != dim:
            batch.ragged[batch.paths[i]] = vectors[i]
    for name in ("paths", "ids", "contents", "metadatas"):
        values = getattr(batch, name)
        setattr(batch, name, [values[i] for i in keep])
    return np.vstack([vectors[i] for i in keep]).astype(np.float32, copy=False)





