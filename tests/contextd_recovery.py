"""contextd's own recovery, reproduced on disk step by step as its resilient loader takes it.

contextd (HTTP mode; internal/vectorstore/resilient.go, NewResilientChromemDB) opens the store with
chromem's NewPersistentDB; when that fails with "collection metadata file not found" it lists the
store root (sorted), and every entry that is a folder (not a symlink) whose name does not start with
"." and in which ``00000000.gob`` does not exist (a stat, following symlinks) while some non-folder
entry's name ends in ".gob" is "corrupt". It creates ``<store>/.quarantine`` (mode 0755, parents too),
renames each corrupt folder whose name is 8 lower-case hex digits to ``.quarantine/<name>`` (one
rename each; a failure is logged and skipped; other names are skipped) and loads the store again.
Nothing ever moves a folder back by itself (``ctxd metadata quarantine restore`` does, by hand, and
only once a metadata file is inside it). The literal names mean a gz store (``00000000.gob.gz``,
``*.gob.gz``) is never moved.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.conftest import chromem_load

COLLECTION_HASH = re.compile(r"^[a-f0-9]{8}$")
TRIGGER = "collection metadata file not found"


def corrupt_collections(store: Path) -> list[str]:
    """findCorruptCollections: folders with documents but no ``00000000.gob``."""
    found = []
    for name in sorted(os.listdir(store)):
        path = store / name
        if not path.is_dir() or path.is_symlink() or name.startswith("."):
            continue
        if (path / "00000000.gob").exists():
            continue
        files = sorted(os.listdir(path))
        if any(f.endswith(".gob") and not ((path / f).is_dir() and not (path / f).is_symlink()) for f in files):
            found.append(name)
    return found


def resilient_load(chromemh: Path, store: Path, compress: bool = False) -> tuple[list[str], dict]:
    """contextd starting on ``store``: (the folders it moved to .quarantine, chromem's final verdict)."""
    verdict = chromem_load(chromemh, store, compress)
    if verdict["ok"] or TRIGGER not in (verdict["error"] or ""):
        return [], verdict
    corrupt = corrupt_collections(store)
    if not corrupt:
        return [], verdict
    quarantine = store / ".quarantine"
    os.makedirs(quarantine, mode=0o755, exist_ok=True)
    moved = []
    for name in corrupt:
        if not COLLECTION_HASH.match(name):
            continue
        try:
            os.rename(store / name, quarantine / name)
        except OSError:
            continue   # contextd logs "Failed to quarantine collection" and goes on
        moved.append(name)
    return moved, chromem_load(chromemh, store, compress)
