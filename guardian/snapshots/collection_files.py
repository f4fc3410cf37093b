"""A snapshot's file list as chromem reads a store: each top folder's documents and its metadata file.

chromem refuses the whole store when one folder holds documents and no metadata file naming its
collection ("collection metadata file not found"), the incident this project exists for. A snapshot
taken in the second between that file's loss and its repair records exactly that state. Such a
folder is damage, like a damaged file: the take keeps the metadata's last good copy in the snapshot
(flagged), and a restore writes a good copy of it from wherever the repository holds one. These are
the rules both go by; pure (no I/O).
"""

from __future__ import annotations

from typing import Iterable

from guardian.format import layout

ABSENT_REASON = "missing while the collection's documents remain"


def metadata_path(folder: str, compress: bool) -> str:
    """Where chromem reads the metadata of the collection in ``folder``."""
    return f"{folder}/{layout.metadata_file_name(compress)}"


def lacking_metadata(items: Iterable[tuple[str, bool]], compress: bool) -> dict[str, int]:
    """Top folders holding documents and no metadata file with content: folder -> documents.

    ``items`` are (store-relative path, whether the file has content: a row with a good copy, a file
    a restore writes). A document without content is not counted (nothing of it would be written),
    nor is anything in a nested folder (chromem reads one level)."""
    ext = layout.extension(compress)
    metadata_name = layout.metadata_file_name(compress)
    documents: dict[str, int] = {}
    named: set[str] = set()
    for path, has_content in items:
        folder, slash, name = path.partition("/")
        if not slash or "/" in name or not has_content:
            continue
        if name == metadata_name:
            named.add(folder)
        elif name.endswith(ext):
            documents[folder] = documents.get(folder, 0) + 1
    return {folder: count for folder, count in documents.items() if folder not in named}


def is_document(path: str, compress: bool) -> bool:
    """A file chromem loads as a document of a collection (directly in a top folder)."""
    folder, slash, name = path.partition("/")
    return bool(slash) and "/" not in name and name.endswith(layout.extension(compress)) and \
        name != layout.metadata_file_name(compress)
