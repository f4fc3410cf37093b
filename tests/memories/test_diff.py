"""diff: the memories added, removed and changed between two points, checked against what the real
chromem holds at each (its own dump), on stores the real chromem wrote."""

from __future__ import annotations

import subprocess

import numpy as np

from guardian.format.chromem import Document
from guardian.memories.browser import MemoryBrowser
from guardian.memories.diff import classify, diff_filesets, differing_files, every_row_pair
from guardian.memories.filelists import FileLists
from guardian.memories.versions import Version
from guardian.snapshots.repository import Repository
from tests.memories.conftest import doc, expected_changes, vector


def named(diff) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {(c["collection"], c["id"], c["change"], tuple(c["fields"])) for c in diff.to_dict()["changes"]}


def test_differing_files_compares_hashes_and_keeps_document_files_only():
    old = {"aaaa/11.gob": "h1", "aaaa/22.gob": "h2", "aaaa/00000000.gob": "m1", "bbbb/33.gob": "h3"}
    new = {"aaaa/11.gob": "h1", "aaaa/22.gob": "hX", "aaaa/00000000.gob": "m2", "bbbb/44.gob.gz": "h4", "top.gob": "t"}
    assert differing_files(old, new) == ["aaaa/22.gob", "bbbb/33.gob", "bbbb/44.gob.gz"]
    assert differing_files(old, new, {"bbbb"}) == ["bbbb/33.gob", "bbbb/44.gob.gz"]


def version(folder: str, doc_id: str, content: str, seed: int = 0, **metadata) -> Version:
    document = Document(doc_id, metadata, np.array(vector(seed), dtype=np.float32), content)
    return Version(folder, folder, f"{folder}/x.gob", f"{folder}{doc_id}{content}{seed}{metadata}", document)


def test_classify_keys_memories_by_collection_and_id_and_names_the_fields():
    before = {("a", "1"): version("a", "1", "same"), ("a", "2"): version("a", "2", "old", outcome="x"),
              ("b", "1"): version("b", "1", "gone"), ("a", "3"): version("a", "3", "c", seed=1)}
    after = {("a", "1"): version("a", "1", "same"), ("a", "2"): version("a", "2", "new", outcome="y"),
             ("c", "1"): version("c", "1", "new"), ("a", "3"): version("a", "3", "c", seed=2)}
    found = {(c.version.collection, c.version.id, c.change, tuple(c.fields)) for c in classify(before, after)}
    assert found == {("a", "2", "changed", ("content", "metadata")), ("b", "1", "removed", ()),
                     ("c", "1", "added", ()), ("a", "3", "changed", ("embedding",))}


def test_diff_names_exactly_what_chromem_changed(chromem_store):
    s = chromem_store
    s.gen(("notes", [doc("n1", "first note\nmore", 1, title="Note one", outcome="success"),
                     doc("n2", "second note", 2), doc("n3", "third", 3), doc("shared", "in notes", 4)]),
          ("lessons", [doc("l1", "a lesson", 5, name="Lesson one"), doc("shared", "in lessons", 6)]))
    first, before = s.snapshot(), s.dump()
    s.gen(("notes", [doc("n1", "first note, rewritten", 1, title="Note one", outcome="success"),   # content
                     doc("n2", "second note", 2, state="archived"),                               # metadata
                     doc("shared", "in notes", 40)]),                                             # embedding
          ("lessons", [doc("l1", "a lesson", 5, name="Lesson one")]))                             # the same again
    added = s.writer("notes", 2, seed=7)
    s.delete("notes", "n3")
    second, after = s.snapshot(), s.dump()
    truth = expected_changes(before, after)
    assert len(truth) == 6 and {(c, i) for c, i, kind, _ in truth if kind == "added"} == {("notes", i) for i in added}

    browser = MemoryBrowser.for_paths(s.paths)
    assert named(browser.diff(first, second)) == truth
    assert named(browser.diff(first)) == truth                # to the store now: the same
    assert named(browser.diff(second)) == set()
    assert named(browser.diff(first, second, "lessons")) == set()
    assert {c for c in named(browser.diff(second, first))} == {
        (c, i, {"added": "removed", "removed": "added"}.get(k, k), f) for c, i, k, f in truth}


def test_diff_json_carries_titles_hashes_and_changed_keys(chromem_store):
    s = chromem_store
    s.gen(("notes", [doc("n1", "body", 1, title="Note one", outcome="success")]))
    first, old_hash = s.snapshot(), s.sha256("notes", "n1")
    s.gen(("notes", [doc("n1", "body", 1, title="Note one", outcome="failure"), doc("n2", "\n  fresh line\nx", 2)]))
    second = s.snapshot()
    data = MemoryBrowser.for_paths(s.paths).diff(first, second).to_dict()
    assert (data["from"], data["to"]) == (first, second)
    changes = {c["id"]: c for c in data["changes"]}
    assert changes["n1"]["title"] == "Note one" and changes["n1"]["metadata_keys"] == ["outcome"]
    assert changes["n1"]["after"] == s.sha256("notes", "n1") and changes["n1"]["before"] == old_hash
    assert changes["n2"]["title"] == "fresh line"   # no title: the first line of the content
    assert changes["n2"]["change"] == "added" and changes["n2"]["before"] is None


def test_diff_on_one_base_list_looks_at_what_differs_only(chromem_store):
    """Above 500 files a snapshot's list is a delta against a base list: the diff of two snapshots on
    one base compares their deltas, and names what chromem changed, as comparing every row does."""
    s = chromem_store
    subprocess.run([str(s.chromemh), "synth", str(s.store), "600", "8", "0"], check=True, capture_output=True,
                   timeout=120)
    first, before = s.snapshot(), s.dump()
    name, ids = next((c, [i for c2, i in before if c2 == c]) for c, _ in before)
    one, two = before[(name, ids[0])], before[(name, ids[1])]
    s.gen((name, [doc(ids[0], "rewritten", 1, **one["metadata"]),                       # content and embedding
                  {**doc(ids[1], two["content"], 2), "embedding": two["embedding"]}]))   # metadata
    s.delete(name, ids[2])
    s.writer(name, 2, seed=3)
    second, after = s.snapshot(), s.dump()
    repo = Repository(s.paths.snapshots)
    bases = {repo.read_header(first).files_dict, repo.read_header(second).files_dict}
    assert len(bases) == 1 and None not in bases
    truth = expected_changes(before, after)
    assert {kind for _, _, kind, _ in truth} == {"added", "removed", "changed"} and len(truth) == 5
    assert named(MemoryBrowser.for_paths(s.paths).diff(first, second)) == truth
    lists = FileLists(repo)
    assert named(diff_filesets(*every_row_pair(lists.open(first), lists.open(second)))) == truth
