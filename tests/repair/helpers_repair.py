"""Shared helpers for the repair tests: a store as chromem would load it, snapshots, running a repair."""

from __future__ import annotations

import os
from pathlib import Path

from guardian.config import Config
from guardian.format import chromem
from guardian.repair.preflight import preflight
from guardian.local.paths import StatePaths
from guardian.store.scan import scan_store


def loaded_documents(store: Path, compress: bool) -> dict[str, dict[str, chromem.Document]]:
    """What chromem holds after loading ``store``: collection name -> {id: Document} (later wins)."""
    scan = scan_store(store, compress)
    assert scan.loadable, scan.error
    out: dict[str, dict[str, chromem.Document]] = {}
    ext = chromem.extension(compress)
    for coll in scan.collections:
        if coll.skipped or not coll.name:
            continue
        docs = {}
        for name in sorted(os.listdir(store / coll.dir)):
            path = store / coll.dir / name
            if name.endswith(ext) and chromem.file_stem(name) != chromem.METADATA_STEM and path.is_file():
                doc = chromem.read_document(path)
                docs[doc.id] = doc
        out[coll.name] = docs
    return out


def collection_metadata(store: Path, compress: bool) -> dict[str, dict]:
    scan = scan_store(store, compress)
    return {c.name: c.metadata for c in scan.collections if c.name and not c.skipped}


def state_paths(store: Path, state: Path) -> StatePaths:
    return StatePaths.for_store(store, state)


def repair(store: Path, state: Path, **kwargs):
    paths = state_paths(store, state)
    return preflight(Config(store=str(store), state_dir=str(state)), paths, **kwargs)


def tree_bytes(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` -> its bytes (folders: None): to compare whole store states."""
    out: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        for name in dirs:
            out[os.path.normpath(os.path.join(rel_folder, name))] = None
        for name in files:
            out[os.path.normpath(os.path.join(rel_folder, name))] = Path(folder, name).read_bytes()
    return out
