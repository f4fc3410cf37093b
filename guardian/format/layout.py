"""chromem-go v0.7.0's on-disk layout: file and folder names, and the codec's error type.

Kept free of numpy so that checking an unchanged store (a stat walk) starts fast; the codec
(``gob``, ``chromem``) is imported only when a file must really be decoded.
"""

from __future__ import annotations

import hashlib
import os

from guardian.errors import CodecError

METADATA_STEM = "00000000"
GOB_EXT = ".gob"
GZ_EXT = ".gob.gz"
GZIP_MAGIC = b"\x1f\x8b"   # how a .gob.gz file (gzip) starts
EXTENSIONS = (GOB_EXT, GZ_EXT)
# What guardian holds in memory for one chromem file: a real document (a memory's text, its metadata
# and one embedding) is kilobytes, a very large one a few MiB. A file or an inflated gzip stream past
# this bound is read only this far: Go's gob decoder pulls bytes from the front, so a verdict reached
# within the bound is chromem's; one that needs more is reported as too large (never guessed).
MAX_FILE_BYTES = 64 << 20


class GobError(CodecError):
    """A gob stream could not be decoded (carries the file, when known, and Go's reason)."""


def collection_dir_name(name: str) -> str:
    """The folder chromem uses for a collection: the first 8 hex digits of sha256(name)."""
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def document_stem(doc_id: str) -> str:
    """The file stem chromem uses for a document: the first 8 hex digits of sha256(id)."""
    return hashlib.sha256(doc_id.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def extension(compress: bool) -> str:
    return GZ_EXT if compress else GOB_EXT


def metadata_file_name(compress: bool) -> str:
    return METADATA_STEM + extension(compress)


def file_stem(name: str) -> str:
    for ext in (GZ_EXT, GOB_EXT):
        if name.endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def prefer_gzip(gz_metadata: int, plain_metadata: int, gz_files: int, plain_files: int) -> bool:
    """The one rule for guessing chromem's compress flag from a store's files.

    Metadata files (one per collection) outweigh document files; plain wins ties, as it is
    contextd's default.
    """
    return 1000 * gz_metadata + gz_files > 1000 * plain_metadata + plain_files
