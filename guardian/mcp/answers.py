"""contextd's read-only tools answered from guardian's index, with contextd's filters and shapes.

Each tool mirrors the contextd v0.5 code path that serves it (collection choice, tenant filter,
over-fetch, post-filters, score boosts, output fields) so that an agent sees what contextd would
have shown. Differences, on purpose and listed in the README: numbers stored as strings
(chromem keeps metadata as strings) are parsed instead of read as zero, tags are split into a
list, times are RFC 3339. Shown contents pass through :func:`guardian.mcp.scrub.scrub`, as
contextd's own answers pass through its secret scrubber.

With contextd's embedding model on disk the query is embedded as contextd embeds it
(:mod:`guardian.index.contextd_embed`); without one, search falls back to keywords over the
documents' contents and says so (``source: "grep"``, as contextd's semantic_search does).
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import numpy as np

from guardian.index import query as q
from guardian.index.cache import KEY_COLUMNS
from guardian.mcp import contextd
from guardian.mcp.scrub import scrub
from guardian.mcp.sources import Answer, ToolError

__all__ = ["Answer", "ToolError", "Searcher", "answer"]

SEMANTIC, GREP = "semantic", "grep"
MEMORY_MIN_CONFIDENCE = 0.7
ENTITY_BOOST = np.float32(1.3)
CONSOLIDATED_BOOST = np.float32(1.2)
TEMPORAL = {"recent": np.float32(1.25), "medium": np.float32(1.0), "old": np.float32(0.8)}
MAX_QUERY = 2000
_ENTITY = re.compile(r"\b[A-Z][a-z]+\b", re.ASCII)
_WORD = re.compile(r"\w+")
ENTITY_STOPWORDS = frozenset(
    "what when where which who why how tell show find get give let make did does can could would should "
    "will the this that these those are was were has have had been about for from into with".split())
TEMPORAL_KEYWORDS = ("recent", "recently", "lately", "last", "yesterday", "today", "earlier", "previous",
                     "previously", "past week", "few days", "just now", "this morning", "this week",
                     "month ago", "before")
CONSOLIDATED_MARKS = ("Synthesized from", "Consolidated from")
REFRESH_EVERY = 2.0  # seconds: how stale the index may be when a fallback answer is made
FILTER_KEYS = KEY_COLUMNS  # the metadata every served tool filters on (the index cache keeps their columns)


@dataclass
class Hit:
    row: int
    score: float
    metadata: Mapping[str, str]
    content: str
    doc_id: str


@dataclass
class Searcher:
    """Vector or keyword search over one collection of a StoreIndex, with cached filter rows."""

    index: Any  # guardian.index.store_index.StoreIndex
    embed_query: Callable[[str], np.ndarray] | None = None
    clock: Callable[[], float] = time.monotonic
    upkeep: bool = True  # build and re-stat the index here; False: its owner (the sidecar) keeps it fresh
    _filter_cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _refreshed_at: float | None = None
    _refreshing: bool = False

    def fresh(self) -> None:
        """Build the index once (inline); later, re-stat the store in the background when the last
        look is older than REFRESH_EVERY (writers never stop) while this answer uses the current
        snapshot: a stat walk of a 100k store costs ~0.3 s, too much to put in front of a query.
        Without ``upkeep`` nothing is done here: the sidecar's watcher keeps its index current."""
        if not self.upkeep:
            return
        with self._lock:
            if not self.index.built:
                self.index.build()
                self._refreshed_at = self.clock()
                self._save_cache()
                return
            now = self.clock()
            if self._refreshing or (self._refreshed_at is not None and now - self._refreshed_at < REFRESH_EVERY):
                return
            self._refreshing = True
        threading.Thread(target=self._refresh, name="guardian-mcp-refresh", daemon=True).start()

    def _save_cache(self) -> None:
        """Keep the decoded index in the state dir: the next session starts from it (a stat walk)."""
        try:
            self.index.save_cache()
        except OSError:
            pass

    def _refresh(self) -> None:
        try:
            self.index.refresh_all()
            self._save_cache()
        finally:
            with self._lock:
                self._refreshing = False
                self._refreshed_at = self.clock()

    def collection(self, name: str):
        return self.index.collections().get(name)

    def warm_filters(self) -> None:
        """Build the metadata columns contextd's filters read (tenant and project) for every
        collection now, so that the first search of a session does not pay for them (a pass over
        every row's metadata: ~1 s per million rows and key)."""
        for collection in list(self.index.collections().values()):
            collection.rows.warm_columns(FILTER_KEYS)

    def rows(self, collection, where: Mapping[str, str]) -> np.ndarray | None:
        """Rows passing ``where``, cached per immutable collection snapshot (the loop is the slow part)."""
        if not where:
            return None
        key = (id(collection), tuple(sorted(where.items())))
        cached = self._filter_cache.get(key)
        if cached is not None and cached[0]() is collection:
            return cached[1]
        rows = collection.matching(q.Filters(where=dict(where)))
        if len(self._filter_cache) > 256:
            self._filter_cache.clear()
        self._filter_cache[key] = (weakref.ref(collection), rows)
        return rows

    def search(self, name: str, text: str, k: int, where: Mapping[str, str]) -> tuple[list[Hit], str]:
        """Up to ``k`` hits best first, and how they were found (semantic or grep)."""
        collection = self.collection(name)
        if collection is None or collection.indexed == 0 or k <= 0:
            return [], SEMANTIC if self.embed_query else GREP
        k = min(k, collection.document_count)  # contextd caps k at the collection's count
        rows = self.rows(collection, where)
        vector = self._query_vector(text, collection.dimension)
        if vector is None:
            return keyword_hits(collection, text, k, rows), GREP
        (best, sims), = collection.rank(vector[np.newaxis, :], k, rows)
        return [_hit(collection, int(r), float(s)) for r, s in zip(best, sims)], SEMANTIC

    def _query_vector(self, text: str, dimension: int | None) -> np.ndarray | None:
        if self.embed_query is None or not text:
            return None
        vector = np.asarray(self.embed_query(text), dtype=np.float32)
        if dimension is not None and vector.shape != (dimension,):
            return None  # another model made this collection: its vectors are not comparable
        return q.normalize_query(vector)


def _hit(collection, row: int, score: float) -> Hit:
    return Hit(row, score, collection.rows.metadatas[row] or {}, collection.rows.contents[row],
               collection.rows.ids[row])


def keyword_terms(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 1]
    return list(dict.fromkeys(words)) or ([text.lower()] if text else [])


def keyword_hits(collection, text: str, k: int, rows: np.ndarray | None) -> list[Hit]:
    """Keyword search: the share of the query's words found in a document (case-insensitive)."""
    terms = keyword_terms(text)
    candidates = range(collection.indexed) if rows is None else rows.tolist()
    scored = []
    for row in candidates:
        content = collection.rows.contents[row].lower()
        found = sum(1 for term in terms if term in content)
        if found:
            scored.append((-found, row))
    scored.sort()
    return [_hit(collection, row, -neg / len(terms)) for neg, row in scored[:k]]


# ----------------------------------------------------------------------------- argument helpers


def _text(args: Mapping, key: str, required: bool = False, what: str = "") -> str:
    value = args.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ToolError(f"{key} must be a string")
    if required and not value:
        raise ToolError(what or f"{key} is required")
    return value


def _int(args: Mapping, key: str, default: int) -> int:
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ToolError(f"{key} must be an integer")
    return int(value)


def number(value: Any) -> float:
    """strconv.ParseFloat of a stored string; 0 when it is not a number (as contextd)."""
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        return 0.0
    return parsed if np.isfinite(parsed) else 0.0


def integer(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return int(number(value))


def unix_time(value: Any) -> float | None:
    """A stored time: unix seconds (what contextd writes) or RFC 3339 text."""
    if value in (None, ""):
        return None
    try:
        return float(int(str(value)))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def rfc3339(value: Any) -> str:
    seconds = unix_time(value)
    if seconds is None:
        seconds = 0.0
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_list(value: Any) -> list[str]:
    """Tags as contextd stores them: Go's "[a b]" rendering of a list, or "a,b" / "a||b"."""
    text = str(value or "").strip()
    if not text:
        return []
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1].split()
    for separator in ("||", ","):
        if separator in text:
            return [t.strip() for t in text.split(separator) if t.strip()]
    return [text]


# ----------------------------------------------------------------------------- memory_search


def entities(text: str) -> list[str]:
    """extractQueryEntities: capitalised words, stopwords dropped, deduplicated case-blind."""
    found, seen = [], set()
    for match in _ENTITY.findall(text[:MAX_QUERY]):
        lower = match.lower()
        if lower in ENTITY_STOPWORDS or lower in seen:
            continue
        seen.add(lower)
        found.append(match)
    return found


def is_temporal(text: str) -> bool:
    lower = text[:MAX_QUERY].lower()
    return any(keyword in lower for keyword in TEMPORAL_KEYWORDS)


def memory_of(hit: Hit) -> dict:
    meta = hit.metadata
    title = meta.get("title", "")
    content = hit.content
    if title and content.startswith(title + "\n\n"):
        content = content[len(title) + 2:]
    return {"id": meta.get("id") or hit.doc_id, "title": title, "content": content,
            "outcome": meta.get("outcome", ""), "confidence": number(meta.get("confidence")),
            "tags": tag_list(meta.get("tags")), "description": meta.get("description", ""),
            "state": meta.get("state", "") or "active", "consolidation_id": meta.get("consolidation_id", ""),
            "updated_at": unix_time(meta.get("updated_at")) or 0.0}


def boosted(memory: dict, score: float, query_entities: list[str], temporal: bool, now: float) -> np.float32:
    """applyScoreBoosting, in float32 as contextd computes it."""
    value = np.float32(score)
    description = memory["description"]
    if (not memory["consolidation_id"] and memory["state"] == "active"
            and any(mark in description for mark in CONSOLIDATED_MARKS)):
        value = np.float32(value * CONSOLIDATED_BOOST)
    if query_entities:
        haystack = f"{memory['title']} {memory['content']} {description}".lower()
        if any(e.lower() in haystack for e in query_entities):
            value = np.float32(value * ENTITY_BOOST)
    if temporal:
        age = now - memory["updated_at"]
        band = "recent" if age < 7 * 86400 else "medium" if age < 30 * 86400 else "old"
        value = np.float32(value * TEMPORAL[band])
    return value


def memory_search(searcher: Searcher, args: Mapping, now: float | None = None) -> Answer:
    project_id = _text(args, "project_id", True,
                       "project_id is required (typically your repository name, e.g., 'my-app')")
    query = _text(args, "query", True, "memory search failed: query cannot be empty")
    limit = _int(args, "limit", 5)
    limit = limit if limit > 0 else 5
    fetch = min(max(limit * 3, 30), 200)
    where = {"tenant_id": project_id, "project_id": project_id}
    hits, source = searcher.search(contextd.project_collection(project_id, "memories"), query, fetch, where)
    now = time.time() if now is None else now
    query_entities, temporal = entities(query), is_temporal(query)
    scored, seen = [], set()
    for position, hit in enumerate(hits):
        memory = memory_of(hit)
        if memory["id"] in seen:
            continue
        seen.add(memory["id"])
        if memory["confidence"] < MEMORY_MIN_CONFIDENCE or memory["state"] == "archived":
            continue
        scored.append((-float(boosted(memory, hit.score, query_entities, temporal, now)), position, memory))
    scored.sort(key=lambda item: (item[0], item[1]))
    rows = [_memory_row(memory, -neg) for neg, _, memory in scored[:limit]]
    structured = {"memories": rows, "count": len(rows),
                  "metadata": search_metadata(rows, query_entities) | {"source": source}}
    return Answer(structured, f"Found {len(rows)} relevant memories", source)


def _memory_row(memory: dict, relevance: float) -> dict:
    return {key: memory[key] for key in ("id", "title", "outcome", "confidence", "tags")} | {
        "content": scrub(memory["content"]), "relevance": relevance}


def search_metadata(rows: list[dict], query_entities: list[str]) -> dict:
    """SearchWithMetadata's refinement hints: result entities not in the query, mean relevance."""
    if not rows:
        return {"suggested_refinements": [], "query_coverage": 0.0, "entity_matches": 0}
    found: dict[str, None] = {}
    for row in rows:
        for entity in entities(row["title"]) + entities(row["content"]):
            found.setdefault(entity)
    asked = set(query_entities)
    refinements = [e for e in found if e not in asked][:5]
    return {"suggested_refinements": refinements,
            "query_coverage": sum(r["relevance"] for r in rows) / len(rows), "entity_matches": len(found)}


# ----------------------------------------------------------------------------- remediation_search


def remediation_search(searcher: Searcher, args: Mapping, environ=os.environ) -> Answer:
    query = _text(args, "query", True, "remediation search failed: query is required")
    project_path = _text(args, "project_path")
    tenant = _text(args, "tenant_id") or (contextd.tenant_for_path(project_path, environ) if project_path else "")
    if not tenant:
        raise ToolError("tenant_id is required for data isolation. It is usually auto-detected from your git "
                        "repository. Try running from within a git repository, or set tenant_id explicitly")
    team, scope = _text(args, "team_id"), _text(args, "scope")
    category = _text(args, "category")
    min_confidence = number(args.get("min_confidence", 0))
    limit = _int(args, "limit", 10) or 10
    fetch = min(max(limit * 3, 30), 200)
    found, source = [], SEMANTIC
    for scope_name, scope_team, scope_path in search_scopes(scope, team, project_path,
                                                            bool(args.get("include_hierarchy"))):
        where = {"tenant_id": tenant} | ({"team_id": scope_team} if scope_team else {}) | (
            {"project_id": scope_path} if scope_path else {}) | ({"category": category} if category else {})
        collection = contextd.remediation_collection(tenant, scope_name, scope_team, scope_path)
        hits, source = searcher.search(collection, query, fetch, where)
        for hit in hits:
            row = _remediation_row(hit)
            if min_confidence > 0 and row["confidence"] < min_confidence:
                continue
            found.append(row)
    found.sort(key=lambda r: -r["score"])
    rows = found[:limit]
    return Answer({"remediations": rows, "count": len(rows)}, f"Found {len(rows)} remediations", source)


def search_scopes(scope: str, team: str, project_path: str, hierarchy: bool) -> list[tuple[str, str, str]]:
    """getSearchScopes: (scope, team, project path) in the order contextd searches them."""
    if scope == "project":
        return [("project", team, project_path)] + ([("team", team, ""), ("org", "", "")] if hierarchy else [])
    if scope == "team":
        return [("team", team, "")] + ([("org", "", "")] if hierarchy else [])
    if scope == "org":
        return [("org", "", "")]
    return ([("project", team, project_path)] if project_path else []) + (
        [("team", team, "")] if team else []) + [("org", "", "")]


def _remediation_row(hit: Hit) -> dict:
    meta = hit.metadata
    return {"id": meta.get("id") or hit.doc_id, "title": meta.get("title", ""), "problem": meta.get("problem", ""),
            "root_cause": meta.get("root_cause", ""), "solution": meta.get("solution", ""),
            "category": meta.get("category", ""), "confidence": number(meta.get("confidence")),
            "score": hit.score, "usage_count": integer(meta.get("usage_count", 0))}


# ----------------------------------------------------------------------------- checkpoints


def _tenant_for_checkpoints(args: Mapping, environ) -> tuple[str, str, str]:
    project_path = _text(args, "project_path")
    tenant = _text(args, "tenant_id") or (contextd.tenant_for_path(project_path, environ) if project_path else "")
    if not tenant:
        raise ToolError("tenant_id is required for data isolation. It is usually auto-detected from your git "
                        "repository. Try running from within a git repository, or set tenant_id explicitly")
    return tenant, contextd.project_id_from_path(project_path), project_path


def checkpoint_list(searcher: Searcher, args: Mapping, environ=os.environ) -> Answer:
    tenant, project_id, project_path = _tenant_for_checkpoints(args, environ)
    limit = _int(args, "limit", 20) or 20
    where = {"tenant_id": tenant} | ({"project_id": project_id} if project_id else {})
    if _text(args, "session_id"):
        where["session_id"] = args["session_id"]
    if project_path:
        where["project_path"] = project_path
    if args.get("auto_only"):
        where["auto_created"] = "true"
    hits, source = searcher.search("checkpoints", "checkpoint", limit, where)
    if source == GREP:  # no model: no similarity to order by, so newest first
        hits = _newest_checkpoints(searcher, where, limit)
    rows = [_checkpoint_row(hit) for hit in hits]
    return Answer({"checkpoints": rows, "count": len(rows)}, f"Found {len(rows)} checkpoints", source)


def _newest_checkpoints(searcher: Searcher, where: Mapping[str, str], limit: int) -> list[Hit]:
    collection = searcher.collection("checkpoints")
    if collection is None:
        return []
    rows = searcher.rows(collection, where)
    candidates = range(collection.indexed) if rows is None else rows.tolist()
    hits = [_hit(collection, row, 1.0) for row in candidates]
    hits.sort(key=lambda h: -(unix_time(h.metadata.get("created_at")) or 0.0))
    return hits[:limit]


def _checkpoint_row(hit: Hit) -> dict:
    meta = hit.metadata
    return {"id": meta.get("id") or hit.doc_id, "session_id": meta.get("session_id", ""),
            "name": meta.get("name", ""), "description": scrub(meta.get("description", "")),
            "summary": scrub(meta.get("summary", "")), "token_count": integer(meta.get("token_count", 0)),
            "threshold": number(meta.get("threshold")), "auto_created": meta.get("auto_created") == "true",
            "created_at": rfc3339(meta.get("created_at"))}


def find_checkpoint(searcher: Searcher, checkpoint_id: str, tenant: str) -> Mapping[str, str] | None:
    """contextd's Get: the checkpoint whose metadata ``id`` (else document id) matches, of this tenant."""
    collection = searcher.collection("checkpoints")
    if collection is None:
        return None
    rows = searcher.rows(collection, {"id": checkpoint_id, "tenant_id": tenant})
    if rows is not None and rows.size:
        return collection.rows.metadatas[int(rows[0])] or {}
    row = collection.row_of(checkpoint_id)
    if row is not None and (collection.rows.metadatas[row] or {}).get("tenant_id") == tenant:
        return collection.rows.metadatas[row] or {}
    return None


def checkpoint_resume(searcher: Searcher, args: Mapping) -> Answer:
    checkpoint_id = _text(args, "checkpoint_id", True, "checkpoint_id is required")
    tenant = _text(args, "tenant_id", True, "invalid tenant_id: tenant_id is required")
    level = _text(args, "level") or "summary"
    meta = find_checkpoint(searcher, checkpoint_id, tenant)
    if meta is None:
        raise ToolError(f"checkpoint resume failed: checkpoint not found: {checkpoint_id}")
    summary, context_text = meta.get("summary", ""), meta.get("context", "")
    if level == "context":
        content = summary + "\n\n---\n\n" + context_text
    elif level == "full":
        content = meta.get("full_state", "")
    else:
        content = summary
    tokens = integer(meta.get("token_count", 0)) if level == "full" else len(content.encode()) // 4
    structured = {"checkpoint_id": meta.get("id") or checkpoint_id, "session_id": meta.get("session_id", ""),
                  "content": scrub(content), "token_count": tokens, "level": level}
    return Answer(structured, f"Resumed checkpoint {structured['checkpoint_id']} at level {level}")


# ----------------------------------------------------------------------------- semantic_search

GREP_SKIP_DIRS = frozenset({".git", "node_modules", "vendor", ".venv", "__pycache__", "dist", "build", ".idea"})
GREP_MAX_FILE = 1 << 20
GREP_MAX_FILES = 20000


def semantic_search(searcher: Searcher, args: Mapping, environ=os.environ) -> Answer:
    query = _text(args, "query", True, "search failed: query cannot be empty")
    project_path = _text(args, "project_path", True, "invalid project_path: project_path is required")
    tenant = _text(args, "tenant_id") or contextd.tenant_for_path(project_path, environ)
    limit = _int(args, "limit", 10)
    limit = limit if limit > 0 else 10
    project = os.path.basename(os.path.normpath(project_path))
    where = {"tenant_id": contextd.identifier(tenant), "project_id": contextd.identifier(project)}
    if _text(args, "branch"):
        where["branch"] = args["branch"]
    hits, source = [], GREP
    if searcher.embed_query is not None:
        hits, source = searcher.search(contextd.codebase_collection(tenant, project), query, limit, where)
    if source == SEMANTIC and hits:
        rows = [{"file_path": h.metadata.get("file_path", ""), "content": scrub(h.content), "score": h.score,
                 "branch": h.metadata.get("branch", ""), "metadata": dict(h.metadata)} for h in hits]
    else:
        source, rows = GREP, grep_project(project_path, query, limit)
    structured = {"results": rows, "count": len(rows), "query": query, "source": source}
    return Answer(structured, f"Found {len(rows)} results for query: {query} (source: {source})", source)


def grep_project(project_path: str, query: str, limit: int) -> list[dict]:
    """contextd's grep fallback: case-insensitive lines of the project's text files that hold the query."""
    needle = query.lower()
    found: list[dict] = []
    seen_files = 0
    for folder, dirs, files in os.walk(project_path):
        dirs[:] = sorted(d for d in dirs if d not in GREP_SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            seen_files += 1
            if seen_files > GREP_MAX_FILES:
                return found
            path = os.path.join(folder, name)
            for number_, line in _matching_lines(path, needle):
                found.append({"file_path": os.path.relpath(path, project_path), "content": scrub(line),
                              "line_number": number_, "score": 1.0})
                if len(found) >= limit:
                    return found
    return found


def _matching_lines(path: str, needle: str):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not _is_regular(st.st_mode) or st.st_size > GREP_MAX_FILE:
            return
        data = handle.read(GREP_MAX_FILE)
    if b"\0" in data[:8192]:
        return  # binary
    for number_, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if needle in line.lower():
            yield number_, line


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


TOOLS: dict[str, Callable[..., Answer]] = {
    "memory_search": memory_search,
    "semantic_search": semantic_search,
    "remediation_search": remediation_search,
    "checkpoint_list": checkpoint_list,
    "checkpoint_resume": checkpoint_resume,
}


# The tools whose answer depends on who asks: a tenant derived from the caller's git remote,
# git user.name or $USER (the sidecar answers for sessions of the same user, with their environment).
CALLER_TOOLS = frozenset({"semantic_search", "remediation_search", "checkpoint_list"})


def answer(searcher: Searcher, tool: str, args: Mapping, environ: Mapping[str, str] | None = None) -> Answer:
    """Run one served tool (ToolError for bad arguments or an unknown tool); ``environ`` (USER,
    HOME) is the caller's when it is not this process's own."""
    handler = TOOLS.get(tool)
    if handler is None:
        raise ToolError(f"unknown tool {tool!r}")
    if not isinstance(args, Mapping):
        raise ToolError("arguments must be an object")
    searcher.fresh()
    if environ is not None and tool in CALLER_TOOLS:
        return handler(searcher, args, environ=environ)
    return handler(searcher, args)
