"""What a repair can draw on, computed once before planning (all the I/O of planning lives here).

- snapshot versions of each file the repair needs: newest first, each blob decoded once to know
  whether it is valid (and which document id / collection name it holds);
- the newest collection metadata map any snapshot kept for a collection name;
- document ids readable from the damaged bytes themselves (a truncated file still starts with its id);
- facts about files stored in the other compression format;
- candidate names per folder whose metadata is lost (catalog, config, --name, the documents).
"""

from __future__ import annotations

import contextlib
import os
import stat
import zlib
from pathlib import Path
from typing import Iterable

from guardian.errors import GuardianError, SnapshotError
from guardian.format import chromem, gob
from guardian.format.gob import GobError
from guardian.repair import names as names_mod
from guardian.local import storefs
from guardian.logs import get_logger
from guardian.repair.plan import (DOCUMENT_KINDS, FILE_ENTRY_KINDS, FOLDER_ENTRY_KINDS, METADATA_KINDS, FolderCopy,
                                  HiddenCollection, OtherFormat, RepairSources, Version, metadata_rel)
from guardian.snapshots.repository import Repository
from guardian.store import hidden as hidden_mod
from guardian.store.scan import StoreScan

DOCUMENT_CHUNK = 256


# --------------------------------------------------------------------------- what is needed


def needed_paths(scan: StoreScan) -> dict[str, str]:
    """rel path -> "metadata" | "document": every file the plan may want a snapshot copy of."""
    needs: dict[str, str] = {}
    for coll in scan.collections:
        if any(p.kind in METADATA_KINDS for p in coll.problems):
            needs[metadata_rel(scan, coll)] = "metadata"
    for problem in scan.problems:
        if problem.kind in FILE_ENTRY_KINDS and "/" in problem.path:
            needs[problem.path] = "metadata" if is_metadata_file(problem.path) else "document"
        if problem.kind in DOCUMENT_KINDS:
            needs[problem.path] = "document"
        elif problem.kind == "other_format_file" and not is_metadata_file(problem.path):
            needs[proper_path(problem.path, scan.compress)] = "document"
    return needs


def is_metadata_file(rel: str) -> bool:
    return chromem.file_stem(rel.rsplit("/", 1)[-1]) == chromem.METADATA_STEM


def proper_path(rel: str, compress: bool) -> str:
    folder, _, name = rel.rpartition("/")
    return f"{folder}/{chromem.file_stem(name)}{chromem.extension(compress)}"


# --------------------------------------------------------------------------- snapshots


def gzip_intact(data: bytes) -> bool:
    """False when a gzip file's checksum or length fails: chromem never checks, and loads altered bytes.
    Streamed in bounded pieces (a gzip bomb is inflated chunk by chunk, never held whole); a stream
    inflating past MAX_DECOMPRESSED is not judged here (check reports it as oversized)."""
    if data[:2] != chromem.GZIP_MAGIC:
        return True
    inflater = zlib.decompressobj(31)
    produced = 0
    try:
        pending = data
        while pending and not inflater.eof:
            produced += len(inflater.decompress(pending, 1 << 20))
            pending = inflater.unconsumed_tail
            if produced > chromem.MAX_DECOMPRESSED:
                return True
        if not inflater.eof:
            inflater.flush()
            return False
    except zlib.error:
        return False
    return True


def checksum_failures(scan: StoreScan) -> list[str]:
    """Document files of a gz store that chromem loads although their gzip checksum fails (deep check:
    inflates every file, so only ``check --repair`` runs it, never the launch pre-flight)."""
    if not scan.compress:
        return []
    root = Path(scan.root)
    failing = []
    for coll in scan.collections:
        for path in document_files(root / coll.dir, True):
            with contextlib.suppress(OSError, GobError):
                if not gzip_intact(chromem.read_file(path)):
                    failing.append(f"{coll.dir}/{path.name}")
    return failing


def decode_version(data: bytes, role: str, base: dict) -> Version:
    if not gzip_intact(data):
        return Version(**base, valid=False)
    try:
        if role == "metadata":
            record = chromem.decode_collection(data)
            return Version(**base, valid=bool(record.name), name=record.name or None, metadata=record.metadata)
        doc = chromem.decode_document(data)
        return Version(**base, valid=True, doc_id=doc.id)
    except GobError:
        return Version(**base, valid=False)


def read_version(repo: Repository, digest: str, role: str, base: dict) -> Version:
    try:
        data = repo.read_blob(digest)
    except SnapshotError:
        return Version(**base, valid=False)
    return decode_version(data, role, base)


def manifests_newest_first(repo: Repository):
    for snapshot_id in reversed(repo.list_ids()):
        try:
            manifest = repo.read_manifest(snapshot_id)
        except SnapshotError as exc:   # damaged or hostile: skipped (verify counts it)
            get_logger("guardian.repair").warning("snapshot_skipped", snapshot=snapshot_id, error=exc.message)
            continue
        yield manifest


def load_versions(repo: Repository, needs: dict[str, str]) -> dict[str, list[Version]]:
    """For each needed path, its distinct snapshot copies newest first (stops once all have a valid one)."""
    versions: dict[str, list[Version]] = {rel: [] for rel in needs}
    decoded: dict[tuple[str, str], Version] = {}
    if not needs:
        return versions
    for manifest in manifests_newest_first(repo):
        stamp = manifest.time.isoformat().replace("+00:00", "Z")
        for entry in manifest.files or ():
            role = needs.get(entry.path)
            if role is None or not entry.hash or any(v.blob == entry.hash for v in versions[entry.path]):
                continue
            base = {"snapshot_id": manifest.id, "time": stamp, "blob": entry.hash, "path": entry.path}
            key = (entry.hash, role)
            if key not in decoded:
                decoded[key] = read_version(repo, entry.hash, role, base)
            found = decoded[key]
            versions[entry.path].append(Version(**{**base, "valid": found.valid, "doc_id": found.doc_id,
                                                   "name": found.name, "metadata": found.metadata}))
        if all(any(v.valid for v in found) for found in versions.values()):
            break
    return versions


def load_named_metadata(repo: Repository, wanted: Iterable[str], compress: bool) -> dict[str, Version]:
    """The newest valid collection metadata each snapshot kept for a collection name (any folder)."""
    wanted = set(wanted)
    found: dict[str, Version] = {}
    if not wanted:
        return found
    for snapshot_id in reversed(repo.list_ids()):
        try:
            header = repo.read_header(snapshot_id)
        except SnapshotError:
            continue
        stamp = header.time.isoformat().replace("+00:00", "Z")
        for info in header.collections:
            if info.name in wanted and info.name not in found and info.metadata_hash:
                base = {"snapshot_id": header.id, "time": stamp, "blob": info.metadata_hash,
                        "path": f"{info.dir}/{chromem.metadata_file_name(header.compress)}"}
                version = read_version(repo, info.metadata_hash, "metadata", base)
                if version.valid and version.name == info.name:
                    found[info.name] = version
        if wanted <= set(found):
            break
    return found


# --------------------------------------------------------------------------- the damaged bytes


def salvage_document_id(data: bytes, file_name: str | None = None) -> str | None:
    """The document id at the start of a damaged document's gob value, if it is still there.

    Confirmed only when sha256(id)[:8] is the file's name (when ``file_name`` is given).
    """
    try:
        stream = chromem.gob_stream(data)
        doc_id = gob.first_string_field(stream)
    except (GobError, UnicodeDecodeError, IndexError):
        return None
    if not doc_id:
        return None
    if file_name is not None and chromem.document_stem(doc_id) != chromem.file_stem(file_name):
        return None
    return doc_id


def salvaged_ids(store_root: Path, rels: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for rel in rels:
        with contextlib.suppress(OSError):
            found = salvage_document_id(storefs.read_regular(store_root / rel, limit=chromem.MAX_FILE_BYTES,
                                                             prefix=True), rel.rsplit("/", 1)[-1])
            if found:
                out[rel] = found
    return out


def other_format_facts(store_root: Path, scan: StoreScan) -> dict[str, OtherFormat]:
    facts: dict[str, OtherFormat] = {}
    for problem in scan.problems:
        if problem.kind != "other_format_file" or is_metadata_file(problem.path):
            continue
        target = proper_path(problem.path, scan.compress)
        payload = gob_payload(store_root / problem.path)
        doc_id = None
        if payload is not None:
            with contextlib.suppress(GobError):
                doc_id = chromem.decode_document(payload).id
        facts[problem.path] = OtherFormat(problem.path, target, doc_id, target_state(store_root / target, payload))
    return facts


def gob_payload(path: Path) -> bytes | None:
    try:
        return chromem.gob_stream(chromem.read_file(path))
    except (OSError, GobError):
        return None


def target_state(target: Path, payload: bytes | None) -> str:
    if not os.path.lexists(target):
        return "absent"
    if payload is not None and target.is_file() and gob_payload(target) == payload:
        return "same"
    return "different"


# --------------------------------------------------------------------------- candidate names


def base_candidates(catalog_names: Iterable[str], config_names: Iterable[str], flag_names: Iterable[str]) -> dict:
    return names_mod.merge_candidates(flag=flag_names, config=config_names, catalog=catalog_names)


def document_files(folder: Path, compress: bool | None) -> list[Path]:
    """The document files of ``folder`` in the format of ``compress`` (None: either format)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    if compress is None:
        return [Path(e.path) for e in entries if hidden_mod.is_document_name(e.name) and _is_file(e)]
    ext = chromem.extension(compress)
    meta = chromem.metadata_file_name(compress)
    return [Path(e.path) for e in entries if e.name.endswith(ext) and e.name != meta and _is_file(e)]


def _is_file(entry: os.DirEntry) -> bool:
    """A regular file (a symlink to one counts: chromem follows it); a symlink loop is not (ELOOP)."""
    try:
        return entry.is_file()
    except OSError:
        return False


def folder_candidates(folder: Path, compress: bool | None, base: dict[str, str]) -> dict[str, str]:
    """``base`` plus names derived from the folder's documents, read in chunks until one matches the
    folder's name (``compress`` None: documents of either format)."""
    if names_mod.matching_names(folder.name, base):
        return dict(base)
    values: dict[str, set[str]] = {}
    derived: set[str] = set(names_mod.FIXED_NAMES)
    files = document_files(folder, compress)
    for start in range(0, len(files), DOCUMENT_CHUNK):
        batch = chromem.read_documents(files[start:start + DOCUMENT_CHUNK])
        if names_mod.merge_values(values, names_mod.metadata_values(batch.metadatas)):
            derived = names_mod.candidates_from_values(values)
            if names_mod.matching_names(folder.name, derived):
                break
    return {**{name: "documents" for name in derived}, **base}


# --------------------------------------------------------------------------- everything at once


def collect_inputs(scan: StoreScan, snapshots_dir, catalog_names, config_names, flag_names,
                   checksum_failed: Iterable[str] = ()):
    """(RepairSources, candidate names per folder) for ``plan_repair``."""
    root = Path(scan.root)
    repo = Repository(snapshots_dir)
    needs = needed_paths(scan)
    sources = RepairSources(checksum_failures=list(checksum_failed))
    sources.hidden = hidden_collections(root, scan)
    hidden_targets = {facts.target for facts in sources.hidden.values() if facts.target_state == "absent"}
    needs.update({f"{target}/{chromem.metadata_file_name(scan.compress)}": "metadata" for target in hidden_targets})
    needs.update({rel: "document" for rel in sources.checksum_failures})
    try:
        sources.versions = load_versions(repo, needs)
    except (OSError, GuardianError):
        sources.versions = {rel: [] for rel in needs}
    base = base_candidates(catalog_names, config_names, flag_names)
    candidates: dict[str, dict[str, str]] = {}
    for rel, role in needs.items():
        folder = rel.split("/", 1)[0]
        if role == "metadata" and sources.newest_valid(rel) is None and folder not in hidden_targets:
            candidates[folder] = folder_candidates(root / folder, scan.compress, base)
    for facts in sources.hidden.values():   # a hidden collection's name, from its own documents
        rel = f"{facts.target}/{chromem.metadata_file_name(scan.compress)}"
        if facts.target_state == "absent" and facts.own_metadata is None and sources.newest_valid(rel) is None:
            candidates[facts.path] = folder_candidates(root / facts.path, None, base)
    matched = {n for folder, names in candidates.items()   # (a hidden folder's key ends in its target's name)
               for n in names_mod.matching_names(folder.rsplit("/", 1)[-1], names)}
    with contextlib.suppress(OSError, GuardianError):
        sources.metadata_by_name = load_named_metadata(repo, matched, scan.compress)
    damaged = [rel for rel, role in needs.items() if role == "document" and sources.newest_valid(rel) is None]
    sources.salvaged_ids = salvaged_ids(root, damaged)
    sources.other_format = other_format_facts(root, scan)
    with contextlib.suppress(OSError, GuardianError):
        sources.folder_copies = folder_copies(root, repo, scan)
    return sources, candidates


def folder_copies(root: Path, repo: Repository, scan: StoreScan) -> dict[str, FolderCopy]:
    """For each top entry that hides a collection (a symlinked folder, a non-folder named like one):
    the symlink's target when it is a real folder holding chromem files, else the newest snapshot
    that held files in a folder of that name."""
    wanted = {p.path for p in scan.problems if p.kind in FOLDER_ENTRY_KINDS}
    found: dict[str, FolderCopy] = {}
    for name in sorted(wanted):
        target = usable_target(root, name, scan.compress)
        if target:
            found[name] = FolderCopy(target=target)
    missing = wanted - set(found)
    for manifest in manifests_newest_first(repo) if missing else ():
        stamp = manifest.time.isoformat().replace("+00:00", "Z")
        for name in sorted(missing):
            files = tuple((e.path, e.hash) for e in manifest.files or () if e.hash and e.path.startswith(name + "/")
                          and "/" not in e.path[len(name) + 1:])
            if files:
                found[name] = FolderCopy(snapshot_id=manifest.id, time=stamp, files=files)
        missing -= set(found)
        if not missing:
            break
    return found


def usable_target(root: Path, name: str, compress: bool) -> str:
    """The real folder a top-level symlink points to, if it holds chromem files ("" otherwise)."""
    link = root / name
    if not link.is_symlink() or not link.is_dir():
        return ""
    target = os.path.realpath(link)
    if target == str(root) or target.startswith(str(root) + os.sep):
        return ""   # a folder of the store itself: chromem loads it already
    ext = chromem.extension(compress)
    with contextlib.suppress(OSError):
        if any(n.endswith(ext) for n in os.listdir(target)):
            return target
    return ""


# --------------------------------------------------------------------------- collections moved below the root


def hidden_collections(root: Path, scan: StoreScan) -> dict[str, HiddenCollection]:
    """The folders contextd's own recovery moved to ``.quarantine/<hash>/`` (a hidden_documents problem
    there), each with the collection folder it belongs in and what is there now."""
    found: dict[str, HiddenCollection] = {}
    for problem in scan.problems:
        if problem.kind != "hidden_documents" or not hidden_mod.contextd_quarantined(problem.path):
            continue
        target = problem.path.rsplit("/", 1)[-1]
        found[problem.path] = HiddenCollection(problem.path, problem.documents, target,
                                               collection_state(root, scan, target),
                                               own_metadata(root / problem.path, target))
    return found


def collection_state(root: Path, scan: StoreScan, target: str) -> str:
    """What is at the store root where a hidden collection belongs (HiddenCollection.target_state)."""
    coll = scan.collection(target)
    if coll is not None:
        if coll.name:
            return "named"
        metadata_trouble = any(p.kind in METADATA_KINDS for p in coll.problems)
        return "absent" if coll.documents == 0 and not metadata_trouble else "unnamed"
    try:
        info = os.lstat(root / target)
    except FileNotFoundError:
        return "absent"
    except OSError:
        return "blocked"
    return "unnamed" if stat.S_ISDIR(info.st_mode) else "blocked"


def own_metadata(folder: Path, target: str) -> Version | None:
    """A metadata file in the moved folder (either format) naming a collection whose folder is ``target``
    (put there by hand, as ``ctxd metadata quarantine restore`` asks for)."""
    for name in sorted(hidden_mod.METADATA_NAMES):
        with contextlib.suppress(OSError, GobError):
            record = chromem.decode_collection(storefs.read_regular(folder / name, limit=chromem.MAX_FILE_BYTES))
            if record.name and chromem.collection_dir_name(record.name) == target:
                return Version("", "", "", True, name=record.name, metadata=record.metadata, path=name)
    return None
