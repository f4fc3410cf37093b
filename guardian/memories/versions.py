"""One version of one memory (a decoded document file), what a person recognises it by, and what
changed between two versions.

contextd keeps its records' fields in a document's metadata (a ``map[string]string``): a memory's
and a remediation's ``title``, a checkpoint's ``name``, a ``description``, and facts such as
``outcome``, ``state``, ``tags`` and ``updated_at`` (Unix seconds as contextd writes them; other
writers use ISO 8601). A document without them is recognised by the first line of its content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from guardian.format.chromem import Document
from guardian.format.layout import GOB_EXT, GZ_EXT, METADATA_STEM

TITLE_KEYS = ("title", "name", "description")   # the first one present names the memory
FACT_KEYS = ("outcome", "state", "tags", "updated_at")
FIELDS = ("content", "metadata", "embedding")   # what can change in a document kept under one ID
MAX_TITLE = 200


@dataclass(frozen=True)
class DocumentFile:
    """Where a document lives in the store: ``<collection dir>/<stem>.gob[.gz]``."""

    dir: str
    stem: str


def document_file(path: str) -> DocumentFile | None:
    """The collection folder and stem of a document file's store path; None for anything else (a
    collection's metadata file, a file at the top or deeper down, another extension)."""
    folder, sep, name = path.partition("/")
    if not sep or "/" in name:
        return None
    for ext in (GZ_EXT, GOB_EXT):
        if name.endswith(ext):
            stem = name[:-len(ext)]
            return DocumentFile(folder, stem) if stem and stem != METADATA_STEM else None
    return None


@dataclass
class Version:
    """One version of a memory: its document as one snapshot (or the store) holds it."""

    dir: str            # the collection's folder (sha256(name)[:8]): with ``id``, the memory's identity
    collection: str     # the collection's name ("(<dir>)" when no metadata file names it)
    path: str           # the store-relative file
    sha256: str
    document: Document

    @property
    def id(self) -> str:
        return self.document.id

    @property
    def key(self) -> tuple[str, str]:
        return self.dir, self.document.id

    @property
    def title(self) -> str:
        return title_of(self.document.metadata, self.document.content)

    def facts(self) -> dict[str, str]:
        """contextd's facts about it that are present (outcome, state, tags, updated_at)."""
        return {key: self.document.metadata[key] for key in FACT_KEYS if self.document.metadata.get(key)}

    def embedding_summary(self) -> dict:
        vector = self.document.embedding
        norm = float(np.linalg.norm(vector.astype(np.float64))) if vector.size else 0.0
        return {"dimension": int(vector.size), "norm": norm if math.isfinite(norm) else None}

    def to_dict(self, full: bool = False) -> dict:
        data = {"collection": self.collection, "id": self.id, "path": self.path, "sha256": self.sha256,
                "title": self.title}
        if full:
            vector = self.document.embedding
            data.update(content=self.document.content, metadata=dict(sorted(self.document.metadata.items())),
                        embedding={**self.embedding_summary(),
                                   "values": [float(x) if math.isfinite(x) else None for x in vector.tolist()]})
        return data


def one_line(text: str, limit: int = MAX_TITLE) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def title_of(metadata: dict[str, str], content: str) -> str:
    """What a person recognises a memory by: its title (a checkpoint's name, else its description),
    else the first non-empty line of its content."""
    for key in TITLE_KEYS:
        value = (metadata.get(key) or "").strip()
        if value:
            return one_line(value)
    for line in content.splitlines():
        if line.strip():
            return one_line(line)
    return ""


def changed_fields(old: Document, new: Document) -> list[str]:
    """Which of content, metadata and embedding differ (bit for bit) between two documents."""
    changed = []
    if old.content != new.content:
        changed.append("content")
    if old.metadata != new.metadata:
        changed.append("metadata")
    if old.embedding.shape != new.embedding.shape or \
            old.embedding.astype(np.float32).tobytes() != new.embedding.astype(np.float32).tobytes():
        changed.append("embedding")
    return changed


def changed_keys(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The metadata keys added, removed or given another value."""
    return sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))


def when(value: str) -> str:
    """A contextd time (Unix seconds, or ISO 8601) as local ``YYYY-MM-DD HH:MM``; else as it is."""
    text = value.strip()
    try:
        moment = datetime.fromtimestamp(int(text), timezone.utc) if text.isdigit() else \
            datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
