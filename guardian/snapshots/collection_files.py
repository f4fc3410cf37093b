"""A snapshot's file list as chromem reads a store: each top folder's documents and its metadata file.

chromem refuses the whole store when one folder holds documents and no metadata file naming its
collection ("collection metadata file not found"), the incident this project exists for. A snapshot
taken in the second between that file's loss and its repair records exactly that state. Such a
folder is damage, like a damaged file: the take keeps the metadata's last good copy in the snapshot
(flagged), and a restore writes a good copy of it from wherever the repository holds one. These are
the rules both go by; pure (no I/O).
"""

from __future__ import annotations

from typing import Callable, Iterable

from guardian.format import layout

ABSENT_REASON = "missing while the collection's documents remain"


def metadata_path(folder: str, compress: bool) -> str:
    """Where chromem reads the metadata of the collection in ``folder``."""
    return f"{folder}/{layout.metadata_file_name(compress)}"


def lacking_metadata(folders: Iterable[str], paths: Iterable[str], has_metadata: Callable[[str], bool],
                     counts: Callable[[str], bool], compress: bool) -> dict[str, int]:
    """The top ``folders`` holding documents and no good metadata: folder -> documents.

    ``has_metadata(path)``: whether the list holds a good copy of that metadata file; ``counts(path)``:
    whether a document there counts (one with content, one a restore writes). Only folders lacking
    metadata (a lookup each) have their documents counted, in one pass over ``paths``; nothing in a
    nested folder counts (chromem reads one level)."""
    suspects = {folder for folder in folders if not has_metadata(metadata_path(folder, compress))}
    if not suspects:
        return {}
    documents: dict[str, int] = {}
    for path in paths:
        folder = path.partition("/")[0]
        if folder in suspects and is_document(path, compress) and counts(path):
            documents[folder] = documents.get(folder, 0) + 1
    return documents


def top_folders(parents: Iterable[str]) -> set[str]:
    """The top folders of a set of folders (the parents of a file list's paths: a few, for 100k files)."""
    return {parent.partition("/")[0] for parent in parents if parent}


def is_metadata(path: str, compress: bool) -> bool:
    """A collection's metadata file (directly in a top folder)."""
    folder, slash, name = path.partition("/")
    return bool(slash) and name == layout.metadata_file_name(compress)


def is_document(path: str, compress: bool) -> bool:
    """A file chromem loads as a document of a collection (directly in a top folder)."""
    folder, slash, name = path.partition("/")
    return bool(slash) and "/" not in name and name.endswith(layout.extension(compress)) and \
        name != layout.metadata_file_name(compress)
