"""find: the memories of any snapshot that match, first and last seen, each distinct blob read once."""

from __future__ import annotations

import numpy as np
import pytest

from guardian.errors import UsageError
from guardian.format.chromem import Document
from guardian.memories.browser import MemoryBrowser
from guardian.memories.find import LOWERS_TO_ASCII, FindQuery
from guardian.memories.versions import document_file
from tests.memories.conftest import doc


def test_query_matching_rules():
    metadata = {"outcome": "success", "title": "Größe of JWT"}
    document = Document("id-1", metadata, np.zeros(2, np.float32), "About Tokens")
    assert FindQuery("tokens").matched(document) == ["content"]
    assert FindQuery("jwt").matched(document) == ["metadata:title"]
    assert FindQuery("GRÖßE").matched(document) == ["metadata:title"]   # lower case, not case folding
    assert FindQuery("grösse").matched(document) == []
    assert FindQuery(where=(("outcome", "success"),)).matched(document) == ["metadata:outcome"]
    assert FindQuery(where=(("outcome", "succ"),)).matched(document) == []
    assert FindQuery("tokens", (("outcome", "success"),), "id-1").matched(document) == ["content", "id",
                                                                                      "metadata:outcome"]
    assert FindQuery(memory_id="id-2").matched(document) == []
    with pytest.raises(UsageError, match="nothing to find"):
        FindQuery()
    with pytest.raises(UsageError, match="KEY=VALUE"):
        FindQuery.parse_where(["outcome"])


def test_prefilter_never_drops_a_match():
    query = FindQuery("JwT", (("outcome", "success"),))
    assert query.could_match(b"...outcome...success...jwt...")
    assert not query.could_match(b"...outcome...success...")
    assert not query.could_match(b"...outcome...jwt...")
    kelvin = Document("s", {}, np.zeros(1, np.float32), "300 \u212a")
    assert FindQuery("300 k").matched(kelvin) == ["content"]
    assert FindQuery("300 k").could_match("300 \u212a".encode())   # its bytes do not hold "k": decoded to decide


def test_the_characters_lowering_to_ascii_are_all_known():
    lowering = [chr(c).encode() for c in range(128, 0x110000) if not 0xD800 <= c < 0xE000
                and any(ord(x) < 128 for x in chr(c).lower())]
    assert sorted(lowering) == sorted(LOWERS_TO_ASCII)


def test_find_over_snapshots_first_and_last_seen(chromem_store):
    s = chromem_store
    s.gen(("notes", [doc("a", "talks about JWT", 1, title="Alpha"), doc("b", "nothing here", 2, outcome="success"),
                     doc("c", "jwt again", 3)]))
    s1 = s.snapshot()
    s.gen(("notes", [doc("a", "talks about JWT, revised", 1, title="Alpha"), doc("b", "now jwt too", 2)]))
    s2 = s.snapshot()
    s.delete("notes", "c")
    s3 = s.snapshot()
    s.writer("notes", 3, seed=1)
    s4 = s.snapshot()
    browser = MemoryBrowser.for_paths(s.paths)

    found = browser.find("jwt")
    matches = {m.id: m for m in found.matches}
    assert set(matches) == {"a", "b", "c"}
    assert (matches["a"].first_seen, matches["a"].last_seen, matches["a"].versions, matches["a"].snapshots) == \
        (s1, s4, 2, 4)
    assert (matches["b"].first_seen, matches["b"].last_seen, matches["b"].versions) == (s2, s4, 1)
    assert (matches["c"].first_seen, matches["c"].last_seen, matches["c"].in_latest) == (s1, s2, False)
    assert matches["a"].title == "Alpha" and matches["c"].title == "jwt again"

    # every distinct blob of the snapshots' documents read once, nothing else
    distinct = set()
    for snapshot_id in (s1, s2, s3, s4):
        _, rows = browser.repo.read_manifest_rows(snapshot_id)
        distinct |= {row[5] for row in rows if document_file(row[0])}
    assert found.blobs_read == len(distinct) == 3 + 2 + 3

    assert [m.id for m in browser.find(where=["outcome=success"]).matches] == ["b"]
    only = browser.find(memory_id="c")
    assert [m.id for m in only.matches] == ["c"] and only.blobs_read == 1   # its file name: one blob
    assert browser.find("jwt", collection="elsewhere").matches == []
