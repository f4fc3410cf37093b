"""Stores written by the real chromem (``chromemh gen`` for new and updated documents under their own
ID, ``chromemh writer`` for additions), snapshots of them, and what chromem itself holds then
(``chromemh dump``): the truth the memory answers are checked against."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from guardian.format.layout import collection_dir_name, document_stem
from guardian.local.paths import StatePaths
from guardian.snapshots.take import take_snapshot

DIM = 8


def vector(seed: int) -> list[float]:
    values = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return [float(x) for x in values / np.linalg.norm(values)]


def doc(doc_id: str, content: str, seed: int, **metadata: str) -> dict:
    return {"id": doc_id, "content": content, "metadata": metadata, "embedding": vector(seed)}


class ChromemStore:
    """A store written by the real chromem, its snapshots (one clock: ids in order), and dumps."""

    def __init__(self, chromemh: Path, root: Path) -> None:
        self.chromemh = chromemh
        self.store = root / "store"
        self.paths = StatePaths.for_store(self.store, root / "state")
        self.now = datetime.now(timezone.utc) - timedelta(days=1)
        self.snapshots: list[str] = []

    def gen(self, *collections: tuple[str, list[dict]]) -> None:
        spec = [{"name": name, "metadata": {}, "docs": docs} for name, docs in collections]
        spec_file = self.store.parent / "spec.json"
        spec_file.write_text(json.dumps(spec))
        done = subprocess.run([str(self.chromemh), "gen", str(spec_file), str(self.store), "0"],
                              capture_output=True, timeout=120, check=True)
        assert json.loads(done.stdout.splitlines()[-1])["ok"], done.stdout

    def writer(self, collection: str, count: int, seed: int) -> list[str]:
        """``count`` documents added by chromem's own live writer; their ids."""
        done = subprocess.run([str(self.chromemh), "writer", str(self.store), "0", collection, str(count), "0",
                               str(seed)], capture_output=True, timeout=120, check=True)
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert lines[-1]["ok"], lines[-1]
        return [line["id"] for line in lines[:-1]]

    def delete(self, collection: str, doc_id: str) -> None:
        """What chromem's Delete does: the document's file goes."""
        self.file(collection, doc_id).unlink()

    def file(self, collection: str, doc_id: str) -> Path:
        return self.store / collection_dir_name(collection) / f"{document_stem(doc_id)}.gob"

    def sha256(self, collection: str, doc_id: str) -> str:
        return hashlib.sha256(self.file(collection, doc_id).read_bytes()).hexdigest()

    def snapshot(self) -> str:
        self.now += timedelta(minutes=1)
        moment = self.now
        result = take_snapshot(self.paths, clock=lambda: moment)
        self.snapshots.append(result.id)
        return result.id

    def dump(self) -> dict[tuple[str, str], dict]:
        """(collection, id) -> {content, metadata, embedding}, as chromem loads the store now."""
        done = subprocess.run([str(self.chromemh), "dump", str(self.store), "0"], capture_output=True,
                              timeout=120, check=True)
        data = json.loads(done.stdout)
        assert data["ok"], data
        return {(c["name"], d["id"]): {"content": d["content"], "metadata": d["metadata"] or {},
                                       "embedding": d["embedding"]}
                for c in data["collections"] for d in c["documents"]}


def expected_changes(before: dict, after: dict) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """(collection, id, change, fields) between two dumps: the truth a diff must name."""
    found = set()
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old is None:
            found.add((*key, "added", ()))
        elif new is None:
            found.add((*key, "removed", ()))
        else:
            fields = tuple(name for name in ("content", "metadata", "embedding")
                           if (np.float32(old[name]).tobytes() != np.float32(new[name]).tobytes()
                               if name == "embedding" else old[name] != new[name]))
            if fields:
                found.add((*key, "changed", fields))
    return found


@pytest.fixture
def chromem_store(chromemh, tmp_path) -> ChromemStore:
    return ChromemStore(chromemh, tmp_path)


def three_snapshots(s: ChromemStore) -> list[str]:
    """A small history for the command and HTTP tests: a memory added, changed (content, then
    metadata) and another removed, over three snapshots; the same ID in two collections."""
    s.gen(("notes", [doc("n1", "Rotate the JWT signing key\nevery 90 days", 1, title="JWT key rotation",
                         outcome="success", state="active", tags="[auth security]", updated_at="1767225600"),
                     doc("n2", "a note without a title\nsecond line", 2), doc("shared", "in notes", 3)]),
          ("lessons", [doc("shared", "in lessons", 4, name="Shared lesson")]))
    s.snapshot()
    s.gen(("notes", [doc("n1", "Rotate the JWT signing key\nevery 30 days", 1, title="JWT key rotation",
                         outcome="success", state="active", tags="[auth security]", updated_at="1767312000")]))
    s.delete("notes", "n2")
    s.snapshot()
    s.gen(("notes", [doc("n1", "Rotate the JWT signing key\nevery 30 days", 1, title="JWT key rotation",
                         outcome="failure", state="active", tags="[auth security]", updated_at="1767398400"),
                     doc("n3", "x" * 300, 5, title="A very long title " * 8)]))
    s.snapshot()
    return s.snapshots
