"""The console's backend over a real store and index: browsing pages, search by meaning (an
embedder), by keywords, chromem's ``where``, one memory, and nothing of it writes to the store."""

from __future__ import annotations

import numpy as np
import pytest

from guardian.index.store_index import StoreIndex
from guardian.memories.points import NotFound
from guardian.runtime.console_backend import ConsoleBackend, keyword_rows, sample

WEBAPP = "webapp_memories"


class FixedEmbedder:
    """An embedding service that turns every text into one known document's embedding."""

    def __init__(self, vector) -> None:
        self.vector = np.asarray(vector, dtype=np.float32)

    def embed(self, texts):
        return np.stack([self.vector] * len(texts))


def documents(contents: dict, name: str) -> list[dict]:
    return next(c for c in contents["collections"] if c["name"] == name)["documents"]


@pytest.fixture
def backend(parts, contents):
    def make(embedder=None) -> ConsoleBackend:
        ctx = parts.make()
        ctx.index = StoreIndex(parts.store).build()
        return ConsoleBackend(ctx, lambda: {"health": "ok"}, embedder)
    return make


def test_browsing_pages_through_a_collection(backend, contents):
    listing = backend().browse(WEBAPP, offset=0, limit=15)
    assert listing["mode"] == "all" and listing["total"] == listing["documents"] == len(documents(contents, WEBAPP))
    seen = [item["id"] for item in listing["items"]]
    seen += [item["id"] for item in backend().browse(WEBAPP, offset=15, limit=100)["items"]]
    assert sorted(seen) == sorted(d["id"] for d in documents(contents, WEBAPP))
    assert "outcome" in listing["fields"] and all(item["title"] for item in listing["items"])


def test_search_by_meaning_keywords_and_where(backend, contents):
    docs = documents(contents, WEBAPP)
    wanted = docs[5]
    by_meaning = backend(FixedEmbedder(wanted["embedding"])).browse(WEBAPP, text="which key signed the release?")
    assert by_meaning["mode"] == "text" and by_meaning["items"][0]["id"] == wanted["id"]
    assert by_meaning["items"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    sims = [item["similarity"] for item in by_meaning["items"]]
    assert sims == sorted(sims, reverse=True)

    word = "GORELEASER"   # the content says "goreleaser": found in any of its usual cases
    found = backend().browse(WEBAPP, text=word)
    assert found["mode"] == "keywords"
    assert {i["id"] for i in found["items"]} == {d["id"] for d in docs if "goreleaser" in d["content"]}

    failures = backend().browse(WEBAPP, where={"outcome": "failure"})
    assert {i["id"] for i in failures["items"]} == {d["id"] for d in docs if d["metadata"].get("outcome") == "failure"}
    both = backend().browse(WEBAPP, text="lesson", where={"outcome": "failure", "state": "active"})
    assert {i["id"] for i in both["items"]} == {
        d["id"] for d in docs if "lesson" in d["content"] and d["metadata"].get("outcome") == "failure"
        and d["metadata"].get("state") == "active"}


def test_a_memory_now_and_one_that_is_nowhere(backend, contents):
    doc = documents(contents, WEBAPP)[0]
    shown = backend().memory(doc["id"], WEBAPP)
    assert shown["memory"]["content"] == doc["content"] and shown["history"] == []   # no snapshot yet
    with pytest.raises(NotFound):
        backend().memory("no-such-memory", WEBAPP)


def test_keyword_rows_and_sampling_are_exact():
    assert sample(list(range(10)), 20) == list(range(10))
    picked = sample(list(range(1000)), 5)
    assert picked[0] == 0 and picked[-1] == 999 and len(picked) == 5 and picked == sorted(picked)


def test_keywords_need_every_word(backend):
    found = backend().ctx.index.collection(WEBAPP)
    everything = np.arange(found.indexed, dtype=np.intp)
    assert len(keyword_rows(found, everything, "lesson")) > len(keyword_rows(found, everything, "lesson goreleaser"))
    assert len(keyword_rows(found, everything, "lesson zzzz-not-there")) == 0
    assert len(keyword_rows(found, everything[:0], "lesson")) == 0
