"""What a snapshot fetched from a damaged replica restores instead of what it lost (pure, no I/O).

A damaged object costs only the blobs it held that could not be proven good (guardian.replicas.
salvage); the files of the snapshot whose content is among them are *lost*. For each one, in order:

1. an older snapshot on the replica holds an intact earlier version of the same file: that copy is
   restored (as a snapshot of the store keeps the previous good copy of a damaged file);
2. a collection's metadata file: rebuilt from the collection name the snapshot recorded, with empty
   collection metadata (what contextd's own recovery writes), so its documents still load;
3. anything else is left out, and named. A collection whose metadata can be neither had nor
   rebuilt is left out whole: chromem refuses a folder of documents without metadata, and the rest
   of the store must still load.

The fetched snapshot's manifest is rewritten locally with those rows flagged lost (like a row a
snapshot flags damaged, it keeps an earlier good copy, or none), so the ordinary restore writes
exactly the intact files and skips the rest, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from guardian.format.layout import METADATA_STEM, file_stem
from guardian.snapshots.manifest import FLAG_LOST, Manifest, ManifestEntry


@dataclass
class Recovery:
    older_copies: dict[str, str] = field(default_factory=dict)   # path -> snapshot whose copy is restored
    rebuilt: list[str] = field(default_factory=list)             # metadata files rebuilt from the name
    missing: list[str] = field(default_factory=list)             # paths left out: no intact copy anywhere

    @property
    def changed(self) -> bool:
        return bool(self.older_copies or self.rebuilt or self.missing)


def lost_files(manifest: Manifest, present: set[str]) -> dict[str, ManifestEntry]:
    """The files of ``manifest`` whose content is not among the ``present`` blobs."""
    return {e.path: e for e in manifest.files or () if e.hash and e.hash not in present}


def older_candidates(lost: dict[str, ManifestEntry], older: Manifest) -> dict[str, ManifestEntry]:
    """Rows of an older snapshot that hold another version of a lost file."""
    found = {}
    for entry in older.files or ():
        wanted = lost.get(entry.path)
        if wanted is not None and entry.hash and entry.hash != wanted.hash:
            found[entry.path] = entry
    return found


def is_metadata(path: str) -> bool:
    folder, _, name = path.rpartition("/")
    return bool(folder) and "/" not in folder and file_stem(name) == METADATA_STEM


def collection_names(manifest: Manifest) -> dict[str, str]:
    return {c.dir: c.name for c in manifest.collections if c.name}


def left_out_folders(still_lost: dict[str, ManifestEntry], names: dict[str, str]) -> set[str]:
    """Collection folders whose metadata is lost and cannot be rebuilt (no recorded name)."""
    return {path.partition("/")[0] for path in still_lost if is_metadata(path) and path.partition("/")[0] not in names}


def rewrite(manifest: Manifest, older: dict[str, tuple[str, ManifestEntry]], rebuilt: dict[str, tuple[str, int]],
            lost: dict[str, ManifestEntry], left_out: set[str]) -> tuple[Manifest, Recovery]:
    """The manifest to restore from: ``older`` (path -> (snapshot id, its row)) copies and ``rebuilt``
    (path -> (blob hash, size)) metadata in place of lost rows; every other lost row, and every row
    under a ``left_out`` folder, without content. All of them flagged lost."""
    recovery = Recovery()
    files = []
    for entry in manifest.files or ():
        top = entry.path.partition("/")[0] if "/" in entry.path else ""
        if entry.path in older and top not in left_out:
            snapshot_id, copy = older[entry.path]
            files.append(replace(copy, flags=copy.flags | FLAG_LOST))
            recovery.older_copies[entry.path] = snapshot_id
        elif entry.path in rebuilt:
            digest, size = rebuilt[entry.path]
            files.append(replace(entry, hash=digest, size=size, flags=entry.flags | FLAG_LOST))
            recovery.rebuilt.append(entry.path)
        elif entry.path in lost or (top in left_out and entry.hash):
            files.append(replace(entry, hash=None, flags=entry.flags | FLAG_LOST))
            recovery.missing.append(entry.path)
        else:
            files.append(entry)
    return replace(manifest, files=files), recovery
