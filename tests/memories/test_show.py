"""show: one memory in full, at a snapshot or now, equal to what the real chromem loads."""

from __future__ import annotations

import numpy as np
import pytest

from guardian.errors import UsageError
from guardian.memories.browser import MemoryBrowser
from guardian.memories.points import NotFound
from tests.memories.conftest import doc


def test_show_at_a_snapshot_and_now_is_what_chromem_holds(chromem_store):
    s = chromem_store
    s.gen(("notes", [doc("mem", "first words\nsecond line", 1, title="A title", tags="[a b]")]))
    first, then = s.snapshot(), s.dump()[("notes", "mem")]
    s.gen(("notes", [doc("mem", "rewritten", 2, title="A title")]))
    now = s.dump()[("notes", "mem")]
    browser = MemoryBrowser.for_paths(s.paths)

    for shown, truth, point in ((browser.show("mem", first), then, first), (browser.show("mem", "latest"), then, first),
                                (browser.show("mem"), now, "store")):
        data = shown.to_dict()
        assert data["snapshot"] == point and data["collection"] == "notes" and data["title"] == "A title"
        assert (data["content"], data["metadata"]) == (truth["content"], truth["metadata"])
        assert np.float32(data["embedding"]["values"]).tobytes() == np.float32(truth["embedding"]).tobytes()
        assert data["embedding"]["dimension"] == 8 and data["embedding"]["norm"] == pytest.approx(1.0, abs=1e-6)
    assert browser.show("mem").to_dict()["sha256"] == s.sha256("notes", "mem")


def test_show_asks_which_collection_and_says_what_is_missing(chromem_store):
    s = chromem_store
    s.gen(("notes", [doc("mem", "a", 1)]), ("lessons", [doc("mem", "b", 2)]))
    first = s.snapshot()
    browser = MemoryBrowser.for_paths(s.paths)
    with pytest.raises(UsageError, match="in 2 collections") as raised:
        browser.show("mem", first)
    assert "--collection" in raised.value.hint
    assert browser.show("mem", first, "lessons").version.document.content == "b"
    with pytest.raises(NotFound, match="not in snapshot"):
        browser.show("nope", first)
    with pytest.raises(NotFound, match="not in the store now"):
        browser.show("mem", None, "elsewhere")
    with pytest.raises(NotFound, match="no snapshot was taken at or before"):
        browser.show("mem", "2000-01-01T00:00Z")
