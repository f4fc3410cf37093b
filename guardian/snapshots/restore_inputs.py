"""The restore planner's inputs beyond the snapshot and the store: good copies of what it lacks.

For a snapshot (in a scope) this judges the snapshot's own metadata copies (a blob gone or one
chromem would refuse is unusable), then finds a good copy of every file it lacks: another
snapshot's (``good_copies``: older ones newest first, then newer ones), and for a collection's
metadata with no good copy anywhere, a metadata file rebuilt from a name that hashes to the
folder, as ``check --repair`` rebuilds one (from the names guardian has seen for the store: its
catalog, the snapshots' collections, the ``--collection`` asked for). contextd creates its
collections with no collection metadata, so the rebuilt file holds what contextd itself wrote.
"""

from __future__ import annotations

from typing import Iterable

from guardian.format import layout
from guardian.snapshots.collection_files import is_metadata, metadata_path
from guardian.snapshots.good_copies import (BlobJudge, FoundCopy, Snapshots, document_copies, header_row,
                                            metadata_copies, search_order)
from guardian.snapshots.manifest import Manifest, ManifestEntry
from guardian.snapshots.repository import Repository, sha256_hex
from guardian.snapshots.restore_plan import GoodCopy, PlanInputs, copies_wanted, in_scope


def gather_inputs(repo: Repository, manifest: Manifest, scope: str | None, names: Iterable[str] = (),
                  allow_damaged: bool = False, known: dict[str, Manifest] | None = None,
                  judge: BlobJudge | None = None) -> PlanInputs:
    """What ``plan_restore`` needs to write a store chromem loads from ``manifest`` (in ``scope``).
    ``names``: collection names known besides the snapshots' own; ``known``: manifests already read,
    by id (filled as more are read), and ``judge``: blobs already judged, so that verifying every
    snapshot reads each manifest and judges each blob once."""
    compress = manifest.compress
    judge = judge or BlobJudge(repo)
    files = manifest.files or [] if scope is None else [e for e in manifest.files or () if in_scope(e.path, scope)]
    ending = "/" + layout.metadata_file_name(compress)
    unusable = frozenset(e.path for e in files if e.path.endswith(ending) and is_metadata(e.path, compress) and e.hash
                         and judge.good(e.path, e.hash) is None)
    paths, folders = copies_wanted(files, compress, scope, unusable)
    inputs = PlanInputs(compress, unusable, allow_damaged=allow_damaged)
    if not paths and not folders:
        return inputs
    snapshots = Snapshots(repo, known)
    order = search_order(repo.list_ids(), manifest.id)
    found = list(metadata_copies(judge, folders, compress, order, snapshots).values())
    lacking = folders - {copy.path.partition("/")[0] for copy in found}
    if lacking:
        for snapshot_id in order:   # every header: the names they recorded
            snapshots.header(snapshot_id)
        seen = snapshots.names() | {c.name for c in manifest.collections if c.name} | {n for n in names if n}
        found += [copy for copy in (_rebuilt(folder, compress, seen, manifest) for folder in sorted(lacking)) if copy]
    if paths:
        found += list(document_copies(judge, paths, order, snapshots).values())
    for copy in found:
        inputs.copies[copy.path] = GoodCopy(ManifestEntry(*copy.row), copy.source)
        if copy.data is not None:
            inputs.rebuilt[copy.digest] = copy.data
    return inputs


def _rebuilt(folder: str, compress: bool, names: set[str], manifest: Manifest) -> FoundCopy | None:
    """A metadata file for ``folder`` rebuilt from the known name that hashes to it (None: none does)."""
    matching = sorted(name for name in names if layout.collection_dir_name(name) == folder)
    if not matching:
        return None
    from guardian.format.chromem import encode_collection   # the codec (numpy): only when a file is rebuilt

    data = encode_collection(matching[0], None, compress)
    rel = metadata_path(folder, compress)
    source = f"a metadata file rebuilt with the name {matching[0]!r} (its sha256 matches the folder)"
    return FoundCopy(rel, source, header_row(rel, data, sha256_hex(data), manifest.time), data)


def known_names(catalog_file, collection: str | None = None) -> set[str]:
    """The collection names guardian has seen for the store (its catalog) and the one asked for."""
    from guardian.local.catalog import Catalog

    return Catalog(catalog_file).names() | ({collection} if collection else set())


def store_rebuilt(repo: Repository, blobs: dict[str, bytes]) -> None:
    """Store the rebuilt files a restore writes as blobs (staged like every other file; unreferenced,
    they go with the next garbage collection). RestoreError when the state dir cannot take them."""
    if not blobs:
        return
    try:
        for digest, data in blobs.items():
            repo.put_blob(data, digest)
        repo.sync()
    except OSError as exc:
        from guardian.errors import RestoreError

        raise RestoreError(f"cannot store the rebuilt metadata in guardian's state dir: {exc.strerror or exc}; "
                           "nothing was changed", "free space there (or fix its permissions) and run the restore "
                           "again") from None
