"""contextd's read-only tools answered from guardian's index of a store written by the real chromem-go."""

from __future__ import annotations

import numpy as np
import pytest

from guardian.index.contextd_embed import ContextdEmbedder, find_contextd_model
from guardian.index.store_index import StoreIndex
from guardian.mcp import answers, contextd
from guardian.mcp.answers import Searcher, ToolError

from tests.mcp_relay.conftest import FASTEMBED_FOLDER, MEMORIES, PROJECT, expected_memory_ids, generate_store


@pytest.fixture
def searcher(contextd_store, model_dir):
    embedder = ContextdEmbedder(find_contextd_model("BAAI/bge-small-en-v1.5", model_dir))
    return Searcher(StoreIndex(contextd_store), embedder.embed_query)


@pytest.fixture
def keyword_searcher(chromemh, tmp_path):
    return Searcher(StoreIndex(generate_store(chromemh, tmp_path / "kw-store", None)), None)


def ids(answer):
    return [m["id"] for m in answer.structured["memories"]]


def test_memory_search_ranks_as_contextd_and_drops_what_contextd_hides(searcher, model_dir):
    for query in ("jwt refresh token rotation", "postgres connection pool", "flaky test on ci"):
        got = answers.answer(searcher, "memory_search", {"project_id": PROJECT, "query": query})
        assert ids(got) == expected_memory_ids(model_dir / FASTEMBED_FOLDER, query), query
        assert got.source == "semantic" and got.structured["count"] == len(ids(got))
    got = answers.answer(searcher, "memory_search", {"project_id": PROJECT, "query": "jwt refresh token", "limit": 20})
    hidden = {m["id"] for m in MEMORIES if m["metadata"]["title"] in ("auth lesson low", "auth lesson archived",
                                                                       "other tenant")}
    assert hidden.isdisjoint(ids(got)) and len(ids(got)) == 7


def test_memory_rows_have_contextds_fields(searcher):
    got = answers.answer(searcher, "memory_search", {"project_id": PROJECT, "query": "jwt refresh token", "limit": 1})
    row = got.structured["memories"][0]
    assert set(row) == {"id", "title", "content", "outcome", "confidence", "relevance", "tags"}
    stored = next(m for m in MEMORIES if m["id"] == row["id"])
    assert stored["content"] == f"{row['title']}\n\n{row['content']}"  # contextd strips the title
    assert row["confidence"] == 0.8 and row["tags"] == ["auth", "lesson"] and row["outcome"] == "success"
    assert got.text == "Found 1 relevant memories"
    meta = got.structured["metadata"]
    assert meta["query_coverage"] == pytest.approx(row["relevance"]) and meta["source"] == "semantic"


def test_score_boosts_are_contextds():
    base = {"title": "db", "content": "postgres pool", "description": "", "state": "active",
            "consolidation_id": "", "updated_at": 1_000_000.0}
    now = 1_000_000.0 + 3 * 86400
    f32 = np.float32
    assert answers.boosted(base, 0.5, [], False, now) == f32(0.5)
    assert answers.boosted(base, 0.5, ["Postgres"], False, now) == f32(f32(0.5) * f32(1.3))
    assert answers.boosted(base, 0.5, ["Redis"], False, now) == f32(0.5)
    consolidated = base | {"description": "Synthesized from 3 memories"}
    assert answers.boosted(consolidated, 0.5, [], False, now) == f32(f32(0.5) * f32(1.2))
    assert answers.boosted(consolidated | {"consolidation_id": "c1"}, 0.5, [], False, now) == f32(0.5)
    assert answers.boosted(base, 0.5, [], True, now) == f32(f32(0.5) * f32(1.25))
    assert answers.boosted(base, 0.5, [], True, now + 40 * 86400) == f32(f32(0.5) * f32(0.8))
    assert answers.is_temporal("what did we fix recently") and not answers.is_temporal("postgres pool")
    assert answers.entities("What is Caroline doing with Alice and caroline") == ["Caroline", "Alice"]


def test_keyword_fallback_without_a_model(keyword_searcher):
    got = answers.answer(keyword_searcher, "memory_search", {"project_id": PROJECT, "query": "jwt refresh token"})
    assert got.source == "grep" and got.structured["metadata"]["source"] == "grep"
    assert ids(got)[:2] == ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000010"]
    assert "00000000-0000-4000-8000-000000000005" not in ids(got)  # low confidence stays hidden


def test_unknown_project_is_empty_and_bad_arguments_are_tool_errors(searcher):
    got = answers.answer(searcher, "memory_search", {"project_id": "nope", "query": "x"})
    assert got.structured == {"memories": [], "count": 0, "metadata": {"suggested_refinements": [],
                                                                       "query_coverage": 0.0, "entity_matches": 0,
                                                                       "source": "semantic"}}
    with pytest.raises(ToolError, match="project_id is required"):
        answers.answer(searcher, "memory_search", {"query": "x"})
    with pytest.raises(ToolError, match="limit must be an integer"):
        answers.answer(searcher, "memory_search", {"project_id": PROJECT, "query": "x", "limit": "many"})


def test_checkpoints_list_and_resume(searcher):
    listed = answers.answer(searcher, "checkpoint_list",
                            {"tenant_id": "alice", "project_path": "/home/alice/src/webapp"})
    assert listed.structured["count"] == 4
    row = listed.structured["checkpoints"][0]
    assert set(row) == {"id", "session_id", "name", "description", "summary", "token_count", "threshold",
                        "auto_created", "created_at"}
    auto = answers.answer(searcher, "checkpoint_list", {"tenant_id": "alice", "auto_only": True})
    assert sorted(r["id"] for r in auto.structured["checkpoints"]) == ["ckpt-1", "ckpt-3"]
    for level, content, tokens in (("summary", "summary 2", 2), ("context", "summary 2\n\n---\n\ncontext 2", 6),
                                   ("full", "full state 2", 102)):
        got = answers.answer(searcher, "checkpoint_resume", {"checkpoint_id": "ckpt-2", "tenant_id": "alice",
                                                            "level": level})
        assert got.structured == {"checkpoint_id": "ckpt-2", "session_id": "sess-1", "content": content,
                                  "token_count": tokens, "level": level}
    with pytest.raises(ToolError, match="checkpoint not found"):
        answers.answer(searcher, "checkpoint_resume", {"checkpoint_id": "ckpt-2", "tenant_id": "bob", "level": "full"})


def test_semantic_search_greps_the_project_when_nothing_is_indexed(searcher, tmp_path):
    project = tmp_path / "proj"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "a.go").write_text("package pkg\n// JWT refresh here\nfunc A() {}\n")
    (project / ".git").mkdir()
    (project / ".git" / "x").write_text("jwt refresh in git internals\n")
    got = answers.answer(searcher, "semantic_search", {"query": "jwt refresh", "project_path": str(project),
                                                       "tenant_id": "alice"})
    assert got.structured["source"] == "grep" and got.structured["count"] == 1
    assert got.structured["results"][0] == {"file_path": "pkg/a.go", "content": "// JWT refresh here",
                                            "line_number": 2, "score": 1.0}
    assert got.text == "Found 1 results for query: jwt refresh (source: grep)"


def test_contextd_names():
    assert contextd.project_collection("my-app", "memories") == "my_app_memories"
    assert contextd.project_collection("My  Project!", "memories") == "my_project_memories"
    assert contextd.identifier("") == "default" and contextd.identifier("!!!") == "default"
    long_name = contextd.project_collection("x" * 80, "memories")
    assert len(long_name) == 64 and long_name.startswith("x" * 55)
    assert contextd.remediation_collection("alice", "org") == "remediations_org_alice"
    assert contextd.remediation_collection("al-ice", "team", "core") == "remediations_team_al_ice_core"
    assert contextd.codebase_collection("alice", "webapp") == "alice_webapp_codebase"


def test_tenant_from_the_git_remote(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "config").write_text('[remote "origin"]\n\turl = git@github.com:Alice-Dev/webapp.git\n')
    assert contextd.tenant_for_path(str(repo), {}, home=tmp_path) == "alice_dev"
    (tmp_path / ".gitconfig").write_text("[user]\n\tname = Bob Smith\n")
    assert contextd.tenant_for_path(str(tmp_path / "none"), {}, home=tmp_path) == "bob_smith"
    assert contextd.tenant_for_path("", {"USER": "Carol"}, home=tmp_path / "empty") == "carol"
    assert contextd.tenant_for_path("", {}, home=tmp_path / "empty") == "local"


def test_the_callers_user_decides_the_tenant(searcher, tmp_path):
    """The sidecar answers for sessions of its user: the session's $HOME (its git user.name) and
    $USER, not the sidecar's, derive the tenant contextd would use."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Alice\n")
    project = str(tmp_path / "webapp")  # no git remote: the tenant is the caller's git user.name
    caller = {"HOME": str(home), "USER": "someone_else"}
    listed = answers.answer(searcher, "checkpoint_list", {"project_path": project}, environ=caller)
    assert listed.structured["count"] == 0  # tenant alice, but another project path
    listed = answers.answer(searcher, "checkpoint_list", {"project_path": "/home/alice/src/webapp"},
                            environ=caller)
    assert listed.structured["count"] == 4
    nobody = answers.answer(searcher, "checkpoint_list", {"project_path": "/home/alice/src/webapp"},
                            environ={"HOME": str(tmp_path / "nowhere"), "USER": "bob"})
    assert nobody.structured["count"] == 0  # tenant bob


def test_filter_rows_are_cached_per_snapshot(searcher):
    searcher.fresh()
    collection = searcher.collection(f"{PROJECT}_memories")
    first = searcher.rows(collection, {"tenant_id": PROJECT})
    assert searcher.rows(collection, {"tenant_id": PROJECT}) is first
    assert isinstance(first, np.ndarray) and first.size == 9


def test_a_memory_written_meanwhile_shows_up(searcher, contextd_store, monkeypatch):
    """contextd's siblings keep writing: the fallback re-stats the store in the background."""
    from guardian.format import chromem
    from tests.mcp_relay.conftest import DIM, memory
    from tests.waiting import wait_until

    monkeypatch.setattr(answers, "REFRESH_EVERY", 0.0)
    args = {"project_id": PROJECT, "query": "jwt refresh token", "limit": 20}
    assert len(ids(answers.answer(searcher, "memory_search", args))) == 7
    new = memory(42, "new lesson", "written while contextd was down")
    vector = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
    folder = contextd_store / chromem.collection_dir_name(f"{PROJECT}_memories")
    (folder / (chromem.document_stem(new["id"]) + ".gob")).write_bytes(
        chromem.encode_document(chromem.Document(new["id"], new["metadata"], vector, new["content"])))
    assert wait_until(lambda: new["id"] in ids(answers.answer(searcher, "memory_search", args)), timeout=60)


def test_the_decoded_index_is_kept_for_the_next_session(contextd_store, tmp_path):
    cache = tmp_path / "cache"
    first = Searcher(StoreIndex(contextd_store, cache_dir=cache), None)
    first.fresh()
    assert any(cache.rglob("*")), "nothing cached"
    second = StoreIndex(contextd_store, cache_dir=cache).build()
    assert second.cached_collections == 2  # both collections came from the cache, not decoded again
