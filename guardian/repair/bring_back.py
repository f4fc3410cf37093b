"""Bring back a collection contextd's own recovery moved to ``.quarantine/<hash>/`` (``restore_hidden``).

contextd's resilient loader renames a collection folder holding documents but no metadata to
``<store>/.quarantine/<hash>/`` and starts without it; chromem never reads a sub-folder, and nothing
moves it back. Once contextd runs, the collection may be created again at ``<hash>/`` (a new memory
saved to it). The action, in an order that is safe to kill at any point and to run again:

1. the collection folder ``<hash>/``: made when there is none; a folder there is kept as it is;
2. its metadata first, when it has none that reads: the moved folder's own, a snapshot's, or rebuilt
   from the recovered name (a load in between sees a smaller collection, never a refused store);
3. every document of the moved folder that decodes, in the store's format, written next to it and
   then linked into place only where that file name is free (``storefs.place_new_at``): a document the
   collection folder already holds (written by contextd since, or by an earlier run) is never
   replaced; the folder is made durable;
4. only then the moved folder goes whole to guardian's quarantine (its copies of everything, the
   documents kept out above included): nothing is deleted, and until this step it is all still there.
"""

from __future__ import annotations

import os
import stat as statmod

from guardian.errors import GuardianError
from guardian.format import chromem, layout
from guardian.format.gob import GobError
from guardian.local import fsutil, storefs
from guardian.store.hidden import METADATA_NAMES, is_document_name

SOURCE = "repair"
METADATA_WRITTEN = {"snapshot": "metadata restored from a snapshot", "rebuilt": "metadata rebuilt from the name",
                    "hidden": "metadata from the moved folder"}


def bring_back(applier, action):
    """Apply one ``restore_hidden`` action with a PlanApplier's fds, quarantine and repository; an Applied."""
    from guardian.repair.apply import STORE_FILE_MODE, Applied

    dirs = applier.fds()
    hidden_fd = folder_fd(applier, action.from_path)
    target_fd = collection_folder(applier, action.path)
    wrote_metadata = ensure_metadata(applier, action, hidden_fd, target_fd, STORE_FILE_MODE)
    counts = place_documents(applier.compress, hidden_fd, target_fd, STORE_FILE_MODE)
    entry = applier.quarantine.put(applier.root, action.from_path, kind="folder", source=SOURCE, dirs=dirs,
                                   reason=f"contextd's own quarantine of collection {action.path}, brought back "
                                          f"({action.source}); this is the folder as contextd left it")
    return Applied(action, True, summary(counts, wrote_metadata), quarantine_id=entry.id)


def place_documents(compress: bool, hidden_fd: int, target_fd: int, mode: int) -> dict[str, int]:
    """Every document of the moved folder that decodes, written beside its name in the collection folder,
    made durable at once (one filesystem sync), then linked in where the name is free; the counts."""
    counts = {storefs.PLACED: 0, storefs.ALREADY_THERE: 0, storefs.TAKEN: 0, "damaged": 0}
    ext = layout.extension(compress)
    staged: list[tuple[str, str]] = []
    linked = 0
    try:
        for name in sorted(os.listdir(hidden_fd)):
            if not is_document_name(name):
                continue
            data = store_bytes(hidden_fd, name, compress)
            dest = layout.file_stem(name) + ext
            if data is None:
                counts["damaged"] += 1
            elif storefs.exists_at(dest, target_fd):   # written since, or by an earlier run
                counts[storefs.what_is_there(target_fd, dest, data)] += 1
            else:
                staged.append((storefs.write_temp_at(target_fd, dest, data, mode, sync=False), dest))
        durable(target_fd, [temp for temp, _ in staged])
        for temp, dest in staged:
            counts[storefs.link_new_at(target_fd, temp, dest)] += 1   # (the temp name goes, whatever happens)
            linked += 1
        os.fsync(target_fd)
    finally:
        for temp, _ in staged[linked:]:   # a failure half-way: no temp file is left behind
            storefs.unlink_temp_at(target_fd, temp)
    return counts


def durable(folder_fd_: int, names: list[str]) -> None:
    """The files just written, durable before any is linked in: one syncfs, else an fsync each."""
    if names and not fsutil.sync_filesystem(folder_fd_):
        for name in names:
            fsutil.fsync_at(folder_fd_, name)


def summary(counts: dict, wrote_metadata: str) -> str:
    parts = [f"{counts[storefs.PLACED]} document(s) brought back"]
    if counts[storefs.ALREADY_THERE]:
        parts.append(f"{counts[storefs.ALREADY_THERE]} already in place")
    if counts[storefs.TAKEN]:
        parts.append(f"{counts[storefs.TAKEN]} kept as the collection holds them (written since; the moved copies "
                     "are in the quarantine)")
    if counts["damaged"]:
        parts.append(f"{counts['damaged']} that do not decode left with the moved folder in the quarantine")
    if wrote_metadata:
        parts.append(wrote_metadata)
    return "; ".join(parts)


def folder_fd(applier, rel: str) -> int:
    try:
        return applier.fds().get(rel)
    except storefs.UnsafeFolder as exc:
        raise GuardianError(f"refusing to read {rel} through {exc.filename} ({exc.what})",
                            "replace the symlink by a real folder, then run `guardian check --repair`") from None


def collection_folder(applier, name: str) -> int:
    """The fd of the collection folder at the store root, made (0755, as chromem does) when absent."""
    root_fd = applier.fds().get("")
    info = storefs._lstat_or_none(name, root_fd)
    if info is None:
        storefs.mkdir_at(root_fd, name, 0o755)
    elif not statmod.S_ISDIR(info.st_mode):
        raise GuardianError(f"{name} at the store root is a {storefs.kind_of(info.st_mode)}, not a folder: the "
                            "collection cannot go back there",
                            "run `guardian check --repair` again once it is repaired")
    return folder_fd(applier, name)


def ensure_metadata(applier, action, hidden_fd: int, target_fd: int, mode: int) -> str:
    """Write the collection's metadata unless the folder has one that reads; what was done ("" nothing)."""
    name = layout.metadata_file_name(applier.compress)
    try:
        if chromem.decode_collection(storefs.read_regular(name, limit=chromem.MAX_FILE_BYTES, dir_fd=target_fd)).name:
            return ""
    except (OSError, GobError):
        pass
    data = metadata_bytes(applier, action, hidden_fd)
    if storefs.exists_at(name, target_fd):   # damaged: copied to the quarantine, then replaced
        applier.write(action.__class__("restore_metadata", f"{action.path}/{name}", reason=action.reason), data)
    elif storefs.place_new_at(target_fd, name, data, mode) == storefs.TAKEN:
        raise GuardianError(f"{action.path}/{name} appeared while the collection was brought back",
                            "run `guardian check --repair` again")
    return METADATA_WRITTEN.get(action.metadata_from, "metadata written")


def metadata_bytes(applier, action, hidden_fd: int) -> bytes:
    if action.metadata_from == "snapshot":
        data = applier.repo.read_blob(action.blob)
    elif action.metadata_from == "rebuilt":
        data = chromem.encode_collection(action.name, action.metadata or {}, applier.compress)
    elif action.metadata_from == "hidden":
        data = next((d for d in (store_bytes(hidden_fd, n, applier.compress, metadata=True)
                                 for n in sorted(METADATA_NAMES)) if d is not None), None)
    else:
        raise GuardianError(f"{action.path} has no collection metadata to bring the documents back under",
                            "run `guardian check --repair` again (its metadata is repaired first)")
    name = chromem.decode_collection(data).name if data is not None else ""
    if not name or layout.collection_dir_name(name) != action.path:
        raise GuardianError(f"the metadata for {action.path} does not name its collection",
                            "run `guardian verify`, or give the name with `guardian check --repair --name NAME`")
    return data


def store_bytes(folder_fd_: int, name: str, compress: bool, metadata: bool = False) -> bytes | None:
    """A file of the moved folder as the store's format writes it, when it decodes (None otherwise)."""
    try:
        data = storefs.read_regular(name, limit=chromem.MAX_FILE_BYTES, dir_fd=folder_fd_)
        if data.startswith(layout.GZIP_MAGIC) != compress:   # the other format: the same gob, rewrapped
            payload = chromem.gob_stream(data)
            data = chromem.gzip_bytes(payload) if compress else payload
        if metadata:
            return data if chromem.decode_collection(data).name else None
        chromem.decode_document(data)
    except (OSError, GobError):
        return None
    return data
