"""Document files under the store root that chromem never reads: a bounded walk of sub-folders.

chromem reads one level: the files directly inside each real folder at the store root. Anything
deeper is out of its sight. contextd's own recovery (its resilient loader, in HTTP mode) meets a
collection folder holding documents but no metadata by renaming it to ``<store>/.quarantine/<hash>/``
and starting without it; it never moves it back. A backup copied into the store, or a collection
folder dropped into another one, lands below the first level too. :func:`walk_below` finds every
folder below the first level that holds document files (``*.gob`` / ``*.gob.gz`` other than the
``00000000`` metadata file), at any depth.

Hostile trees: every folder is opened relative to its parent's fd without following a symlink (a
symlink is never followed; a folder swapped for one since it was listed is not entered), a folder
already walked (a bind mount looping back into the store) is not walked again, and the walk of one
root folder stops after :data:`MAX_ENTRIES` entries or below :data:`MAX_DEPTH` levels, saying so
(the count is then a lower bound). Only names and file types are read: nothing is opened but folders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

from guardian.format import layout
from guardian.local import storefs

CONTEXTD_QUARANTINE = ".quarantine"   # where contextd's resilient loader moves a collection folder
MAX_ENTRIES = 1_000_000   # entries looked at below one root folder (a healthy store has no sub-folder at all)
MAX_DEPTH = 64            # levels below a root folder


@dataclass(frozen=True)
class HiddenFolder:
    """A folder below the first level holding document files chromem never reads."""

    path: str                          # store-relative, e.g. ".quarantine/40917930"
    documents: int                     # how many document files it holds (either format)
    names: tuple[str, ...] = ()        # their file names (only when asked: walk_below(names=True))
    metadata: tuple[str, ...] = ()     # its 00000000.gob / 00000000.gob.gz files (only when asked)

    @property
    def base(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class HiddenWalk:
    folders: list[HiddenFolder] = field(default_factory=list)
    stopped: str = ""                  # why the walk did not see everything ("" when it did)

    @property
    def documents(self) -> int:
        return sum(f.documents for f in self.folders)


def contextd_quarantined(path: str) -> bool:
    """``.quarantine/<8 hex>``: where contextd's resilient loader puts a collection folder it met with
    documents and no metadata (the layout is the sign: nothing else of chromem's or contextd's makes it)."""
    parent, _, base = path.rpartition("/")
    return parent == CONTEXTD_QUARANTINE and len(base) == 8 and all(c in "0123456789abcdef" for c in base)


METADATA_NAMES = frozenset(layout.METADATA_STEM + ext for ext in layout.EXTENSIONS)


def is_document_name(name: str) -> bool:
    """A file name chromem would read as a document in one of its two formats."""
    return name.endswith(layout.EXTENSIONS) and name not in METADATA_NAMES and \
        not name.startswith(storefs.TEMP_PREFIX)


def walk_below(root: str | os.PathLike, top: str, subfolders: Iterable[str], names: bool = False) -> HiddenWalk:
    """Every folder under ``root/top/<subfolder>`` (any depth) holding document files, in path order.

    ``subfolders``: the real sub-folders of ``top`` (its listing says which; ``top``'s own files are
    chromem's and are not looked at again). ``names``: also keep each folder's file names."""
    walk = HiddenWalk()
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return walk
    try:
        seen = {_identity(root_fd)}   # a bind mount of the store inside itself: chromem's own files, not hidden
        top_fd = os.open(top, storefs.DIR_FLAGS, dir_fd=root_fd)
    except OSError:
        return walk   # gone or swapped since it was listed: the next scan sees what it is now
    finally:
        os.close(root_fd)
    seen.add(_identity(top_fd))
    state = _WalkState(walk, names, MAX_ENTRIES, seen)
    try:
        for name in sorted(subfolders, key=os.fsencode):
            if not state.descend(top_fd, name, f"{top}/{name}", 1):
                break
    finally:
        os.close(top_fd)
    walk.folders.sort(key=lambda f: os.fsencode(f.path))
    return walk


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


@dataclass
class _WalkState:
    walk: HiddenWalk
    names: bool
    budget: int
    seen: set

    def descend(self, parent_fd: int, name: str, rel: str, depth: int) -> bool:
        """Walk folder ``name`` of ``parent_fd`` (``rel`` in the store); False once the walk must stop."""
        if depth > MAX_DEPTH:
            self.walk.stopped = f"{rel} is more than {MAX_DEPTH} levels deep: not walked further"
            return False
        try:
            fd = os.open(name, storefs.DIR_FLAGS, dir_fd=parent_fd)
        except OSError:
            return True   # a symlink, gone, or unreadable: nothing chromem could ever read through it
        try:
            identity = _identity(fd)
            if identity in self.seen:
                return True
            self.seen.add(identity)
            return self._walk_open(fd, rel, depth)
        finally:
            os.close(fd)

    def _walk_open(self, fd: int, rel: str, depth: int) -> bool:
        documents, metadata, folders = [], [], []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    self.budget -= 1
                    if self.budget < 0:
                        self.walk.stopped = (f"more than {MAX_ENTRIES} entries below "
                                             f"{rel.split('/', 1)[0]}: not walked further")
                        return False
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.name)
                    elif entry.name.endswith(layout.EXTENSIONS) and entry.is_file(follow_symlinks=False):
                        if entry.name in METADATA_NAMES:
                            metadata.append(entry.name)
                        elif is_document_name(entry.name):
                            documents.append(entry.name)
        except OSError:
            return True
        if documents:
            self.walk.folders.append(HiddenFolder(rel, len(documents),
                                                  tuple(sorted(documents)) if self.names else (),
                                                  tuple(sorted(metadata)) if self.names else ()))
        for name in sorted(folders, key=os.fsencode):
            if not self.descend(fd, name, f"{rel}/{name}", depth + 1):
                return False
        return True
