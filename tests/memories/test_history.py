"""history: every version of one memory across the snapshots, from the one row each snapshot holds."""

from __future__ import annotations

import numpy as np
import pytest

from guardian.format.chromem import Document
from guardian.memories.browser import MemoryBrowser
from guardian.memories.history import Sighting, timeline
from guardian.memories.points import NotFound
from guardian.memories.versions import Version
from guardian.snapshots.repository import Repository
from tests.memories.conftest import doc


def version(digest: str, doc_id: str = "m", content: str = "") -> Version:
    return Version("f", "notes", "f/x.gob", digest, Document(doc_id, {}, np.zeros(2, np.float32), content or digest))


def test_timeline_appears_changes_goes_and_comes_back():
    versions = {("f", "a"): version("a"), ("f", "b"): version("b"), ("f", "c"): None,
                ("f", "o"): version("o", doc_id="other")}
    seen = [Sighting("s1", {}), Sighting("s2", {"f": ("f/x.gob", "a")}), Sighting("s3", {"f": ("f/x.gob", "a")}),
            Sighting("s4", {"f": ("f/x.gob", "c")}),     # unreadable: says nothing
            Sighting("s5", {"f": ("f/x.gob", "b")}), Sighting("s6", {}),
            Sighting("s7", {"f": ("f/x.gob", "o")}),     # another ID in the same file: not this memory
            Sighting("s8", {"f": ("f/x.gob", "b")})]
    steps = [(s.snapshot, s.change, s.version.sha256, s.last_seen) for s in timeline(seen, versions, "m")]
    assert steps == [("s2", "added", "a", "s3"), ("s5", "changed", "b", "s5"), ("s6", "removed", "b", None),
                     ("s8", "added", "b", "s8")]


def test_history_lists_every_version_chromem_wrote(chromem_store):
    s = chromem_store
    s.gen(("notes", [doc("other", "unrelated", 9)]))
    s.snapshot()                                            # before the memory exists
    expected = []
    for round_, (content, seed, meta) in enumerate([("v1", 1, {"title": "T"}), ("v2", 1, {"title": "T"}),
                                                    ("v2", 1, {"title": "T", "state": "archived"}),
                                                    ("v2", 2, {"title": "T", "state": "archived"})]):
        s.gen(("notes", [doc("mem", content, seed, **meta)]), ("lessons", [doc("mem", f"lesson {round_}", 5)]))
        snapshot = s.snapshot()
        expected.append((snapshot, s.sha256("notes", "mem")))
        s.snapshot()                                        # an unchanged snapshot: no entry
    s.delete("notes", "mem")
    gone = s.snapshot()

    history = MemoryBrowser.for_paths(s.paths).history("mem", "notes").to_list()
    assert [(e["snapshot"], e["sha256"]) for e in history[:4]] == expected
    assert [e["change"] for e in history] == ["added", "changed", "changed", "changed", "removed"]
    assert [e["fields"] for e in history] == [[], ["content"], ["metadata"], ["embedding"], []]
    assert history[2]["metadata_keys"] == ["state"] and history[4]["snapshot"] == gone
    assert history[4]["sha256"] is None and all(e["title"] == "T" for e in history)
    assert history[0]["last_seen"] == s.snapshots[s.snapshots.index(expected[0][0]) + 1]

    both = MemoryBrowser.for_paths(s.paths).history("mem").to_list()   # every collection: two memories
    assert {e["collection"] for e in both} == {"notes", "lessons"}
    assert [e["change"] for e in both if e["collection"] == "lessons"] == ["added", "changed", "changed", "changed"]


def test_a_memory_never_seen_is_not_found(chromem_store):
    s = chromem_store
    s.gen(("notes", [doc("n1", "x", 1)]))
    s.snapshot()
    with pytest.raises(NotFound, match="in none of the 1 snapshots"):
        MemoryBrowser.for_paths(s.paths).history("nope")


def test_a_damaged_snapshot_is_passed_over_and_named(chromem_store):
    s = chromem_store
    for content in ("one", "two", "three"):
        s.gen(("notes", [doc("mem", content, 1)]))
        s.snapshot()
    damaged = Repository(s.paths.snapshots).manifest_path(s.snapshots[1])
    damaged.write_bytes(damaged.read_bytes()[:40])
    browser = MemoryBrowser.for_paths(s.paths)
    history = browser.history("mem")
    assert [(step.snapshot, step.change) for step in history.steps] == [(s.snapshots[0], "added"),
                                                                        (s.snapshots[2], "changed")]
    assert [item["snapshot"] for item in history.skipped] == [s.snapshots[1]]
    found = browser.find("two")
    assert found.matches == [] and [item["snapshot"] for item in found.skipped] == [s.snapshots[1]]
