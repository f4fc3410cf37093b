"""Recover a lost collection name: generate candidates, keep the one that hashes to the folder name.

chromem names a collection's folder ``sha256(name)[:8]``, so a name is confirmed (not guessed)
when it hashes to the folder. Candidates come from the catalog, the config and the command line,
and from the documents in the folder: contextd writes ``project_id``, ``tenant_id``, ``team_id`` and
``project_path`` into document metadata and derives its collection names from them
(``{project}_memories``, ``checkpoints``, ``remediations_org_{tenant}``, ...).

contextd sanitises names: lower-case, every character outside ``[a-z0-9_]`` becomes ``_``, runs of
``_`` collapse, leading/trailing ``_`` are trimmed, an empty result is ``default``; a name longer
than 64 characters is cut and gets ``_`` + sha256(name)[:8]. Versions differ in the details, so
every plausible variant is generated: candidates cost microseconds each.

Everything here is pure (no I/O).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Iterable, Mapping

MAX_NAME = 64
HASH_SUFFIX = 9  # "_" + 8 hex digits
FIELDS = ("project_id", "tenant_id", "team_id", "project_path")
FIXED_NAMES = ("checkpoints", "contextd_default", "memories", "remediations", "default")
PROJECT_SUFFIXES = ("memories", "checkpoints", "remediations", "codebase", "conversations")
MAX_VALUES_PER_FIELD = 64
_INVALID = re.compile(r"[^a-z0-9_]")
_RUNS = re.compile(r"_{2,}")

# Where a candidate came from, strongest first (a name given by the user outranks a derived one).
SOURCE_RANK = {"flag": 0, "config": 1, "catalog": 2, "documents": 3}


def dir_name(name: str) -> str:
    """chromem's folder for ``name`` (same rule as guardian.format.chromem.collection_dir_name)."""
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def sha8(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def sanitize_variants(value: str) -> set[str]:
    """The ways contextd versions may have sanitised one value (the raw value included)."""
    if not value:
        return {"default"}
    lowered = value.lower()
    replaced = _INVALID.sub("_", lowered)
    collapsed = _RUNS.sub("_", replaced)
    out = {value, lowered, replaced, collapsed, replaced.strip("_"), collapsed.strip("_")}
    return {v if v else "default" for v in out}


def shorten_variants(name: str) -> set[str]:
    """``name`` itself plus the ways a name over 64 characters may have been cut and suffixed."""
    out = {name}
    if len(name) <= MAX_NAME:
        return out
    digest = sha8(name)
    for keep in (MAX_NAME - HASH_SUFFIX, MAX_NAME - HASH_SUFFIX + 1, MAX_NAME - HASH_SUFFIX - 1):
        base = name[:keep]
        out.add(f"{base}_{digest}")
        out.add(f"{base.rstrip('_')}_{digest}")
    return out


def final_variants(name: str) -> set[str]:
    """Whole-name sanitising and shortening applied to one assembled name."""
    out: set[str] = set()
    for variant in sanitize_variants(name) | {name}:
        out |= shorten_variants(variant)
    return out


def metadata_values(metadatas: Iterable[Mapping[str, str]]) -> dict[str, set[str]]:
    """Every distinct non-empty value of contextd's naming fields across documents' metadata."""
    values: dict[str, set[str]] = {f: set() for f in FIELDS}
    for metadata in metadatas:
        if not metadata:
            continue
        for field in FIELDS:
            value = metadata.get(field)
            if value and len(values[field]) < MAX_VALUES_PER_FIELD:
                values[field].add(value)
    return values


def component_variants(values: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for value in values:
        out |= sanitize_variants(value)
    return out


def project_tokens(values: Mapping[str, set[str]]) -> set[str]:
    """Values that may stand for "the project": project ids, and the last part of project paths."""
    raw = set(values.get("project_id", ()))
    for path in values.get("project_path", ()):
        raw.add(os.path.basename(path.rstrip("/")) or path)
    return component_variants(raw)


def assembled_names(values: Mapping[str, set[str]]) -> set[str]:
    """contextd's collection-name patterns filled with every combination of the values seen."""
    projects = project_tokens(values)
    tenants = component_variants(values.get("tenant_id", ()))
    teams = component_variants(values.get("team_id", ()))
    paths = component_variants(values.get("project_path", ())) | projects
    names: set[str] = set(FIXED_NAMES)
    for project in projects:
        names.update(f"{project}_{suffix}" for suffix in PROJECT_SUFFIXES)
    for tenant in tenants:
        names.add(f"remediations_org_{tenant}")
        names.update(f"remediations_team_{tenant}_{team}" for team in teams)
        names.update(f"remediations_project_{tenant}_{path}" for path in paths)
        for project in projects:
            names.update(f"{tenant}_{project}_{suffix}" for suffix in PROJECT_SUFFIXES)
    return names


def candidates_from_documents(metadatas: Iterable[Mapping[str, str]]) -> set[str]:
    """Every candidate name derived from the documents' metadata of one folder."""
    return candidates_from_values(metadata_values(metadatas))


def merge_candidates(**named_sources: Iterable[str]) -> dict[str, str]:
    """{name: source}; a name offered by several sources keeps the strongest (see SOURCE_RANK)."""
    merged: dict[str, str] = {}
    for source in sorted(named_sources, key=lambda s: SOURCE_RANK.get(s, 99)):
        for name in named_sources[source]:
            if name and name not in merged:
                merged[name] = source
    return merged


def matching_names(folder: str, candidates: Mapping[str, str] | Iterable[str]) -> list[str]:
    """The candidates whose chromem folder is ``folder``, sorted."""
    return sorted(name for name in candidates if dir_name(name) == folder)


def merge_values(into: dict[str, set[str]], more: Mapping[str, set[str]]) -> bool:
    """Add ``more`` into ``into`` (bounded per field); True when something new was added."""
    grew = False
    for field in FIELDS:
        bucket = into.setdefault(field, set())
        for value in more.get(field, ()):
            if value not in bucket and len(bucket) < MAX_VALUES_PER_FIELD:
                bucket.add(value)
                grew = True
    return grew


def candidates_from_values(values: Mapping[str, set[str]]) -> set[str]:
    out: set[str] = set()
    for name in assembled_names(values):
        out |= final_variants(name)
    return out
