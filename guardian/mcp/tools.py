"""contextd's MCP tools as guardian's fallback serves them: names, schemas, the write tools.

The schemas that count are the ones the running contextd advertises: guardian keeps the child's
own ``tools/list`` answer (see :class:`ToolCatalog`) and serves those definitions while contextd
is down. The built-in copy below is only used when guardian has never seen contextd answer; it
is written from the input/output structs of contextd v0.5 (``internal/mcp/tools.go``): a field
without ``omitempty`` is required, the description is the struct tag's text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from guardian.local.fsutil import atomic_write

# The read-only tools the fallback answers from guardian's index.
SERVED_TOOLS = ("memory_search", "semantic_search", "remediation_search", "checkpoint_list", "checkpoint_resume")

# contextd's tools that change state: refused (nothing is queued) while contextd is down.
WRITE_TOOLS = (
    "memory_record", "memory_feedback", "memory_outcome", "memory_consolidate", "memory_consolidate_session",
    "checkpoint_save", "remediation_record", "remediation_feedback", "repository_index",
    "branch_create", "branch_return", "conversation_index",
)
CATALOG_FILE = "mcp-tools.json"


def _obj(properties: dict[str, dict], required: Iterable[str] = ()) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _s(description: str) -> dict:
    return {"type": "string", "description": description}


def _i(description: str) -> dict:
    return {"type": "integer", "description": description}


def _n(description: str) -> dict:
    return {"type": "number", "description": description}


def _b(description: str) -> dict:
    return {"type": "boolean", "description": description}


def _rows(description: str) -> dict:
    return {"type": "array", "items": {"type": "object"}, "description": description}


TENANT = "Tenant identifier (auto-derived from project_path via git remote if not provided)"

BUILTIN_TOOLS: dict[str, dict] = {
    "memory_search": {
        "name": "memory_search",
        "description": "Search for relevant memories/strategies from past sessions",
        "inputSchema": _obj({"project_id": _s("Project identifier"),
                             "query": _s("Search query for relevant memories"),
                             "limit": _i("Maximum results (default: 5)")}, ["project_id", "query"]),
        "outputSchema": _obj({"memories": _rows("Matching memories"), "count": _i("Number of results"),
                              "metadata": {"type": "object",
                                           "description": "Search metadata for iterative refinement"}},
                             ["memories", "count"]),
    },
    "semantic_search": {
        "name": "semantic_search",
        "description": "Smart search that uses semantic understanding, falling back to grep if needed. "
                       "Use this when the agent would normally use the Search tool.",
        "inputSchema": _obj({"query": _s("Search query (natural language or pattern)"),
                             "project_path": _s("Project path to search within"),
                             "tenant_id": _s("Tenant identifier (defaults to git username)"),
                             "branch": _s("Filter by branch (empty = all branches)"),
                             "limit": _i("Maximum results (default: 10)")}, ["query", "project_path"]),
        "outputSchema": _obj({"results": _rows("Search results with file paths and content"),
                              "count": _i("Number of results returned"), "query": _s("Original search query"),
                              "source": _s("Source of results (semantic or grep)")},
                             ["results", "count", "query", "source"]),
    },
    "remediation_search": {
        "name": "remediation_search",
        "description": "Search for remediations by error message or pattern",
        "inputSchema": _obj({"query": _s("Error message or pattern to search for"), "tenant_id": _s(TENANT),
                             "scope": _s("Search scope (project team or org)"),
                             "category": _s("Error category filter"),
                             "min_confidence": _n("Minimum confidence threshold (0-1)"),
                             "limit": _i("Maximum results (default: 10)"),
                             "team_id": _s("Team ID for team/project scope"),
                             "project_path": _s("Project path for project scope (used to auto-derive "
                                                "tenant_id if empty)"),
                             "include_hierarchy": _b("Search parent scopes (project→team→org)")}, ["query"]),
        "outputSchema": _obj({"remediations": _rows("Matching remediations with scores"),
                              "count": _i("Number of results")}, ["remediations", "count"]),
    },
    "checkpoint_list": {
        "name": "checkpoint_list",
        "description": "List checkpoints for a session or project",
        "inputSchema": _obj({"session_id": _s("Filter by session ID"), "tenant_id": _s(TENANT),
                             "project_path": _s("Filter by project path (used to derive tenant_id via git remote)"),
                             "limit": _i("Maximum results to return (default: 20)"),
                             "auto_only": _b("Only return auto-created checkpoints")}),
        "outputSchema": _obj({"checkpoints": _rows("List of checkpoints"),
                              "count": _i("Number of checkpoints returned")}, ["checkpoints", "count"]),
    },
    "checkpoint_resume": {
        "name": "checkpoint_resume",
        "description": "Resume from a checkpoint at specified level (summary, context, or full)",
        "inputSchema": _obj({"checkpoint_id": _s("Checkpoint ID to resume"), "tenant_id": _s("Tenant identifier"),
                             "level": _s("Resume level (summary context or full)")},
                            ["checkpoint_id", "tenant_id", "level"]),
        "outputSchema": _obj({"checkpoint_id": _s("Checkpoint ID"), "session_id": _s("Original session ID"),
                              "content": _s("Restored content at requested level"),
                              "token_count": _i("Token count of restored content"),
                              "level": _s("Resume level used")},
                             ["checkpoint_id", "session_id", "content", "token_count", "level"]),
    },
}


class ToolCatalog:
    """The tools' definitions: learned from contextd's ``tools/list``, kept in the state dir.

    ``learn`` is called with every ``tools/list`` result the child sends; it is written atomically
    to ``<state>/mcp-tools.json``: ``tools``, the served tools' definitions (what a later session
    whose contextd is down advertises), and ``contextd_tools``, contextd's whole list in its order
    (what a later session lists while its contextd is still loading: the write tools too, since
    their calls then wait for contextd instead of being refused).
    """

    def __init__(self, state_dir: Path | None) -> None:
        self.path = Path(state_dir) / CATALOG_FILE if state_dir else None
        self.learned: dict[str, dict] = {}
        self.listed: list[dict] = []  # contextd's whole last list, empty until one was seen
        self._load()

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(data, dict):
            return
        self.learned = {t["name"]: t for t in _tools(data.get("tools")) if t["name"] in SERVED_TOOLS}
        self.listed = _tools(data.get("contextd_tools"))

    def learn(self, list_result: Any) -> bool:
        """Keep one ``tools/list`` result (its served tools, and the whole list); True when something changed."""
        tools = _tools(list_result.get("tools") if isinstance(list_result, dict) else None)
        seen = {t["name"]: t for t in tools if t["name"] in SERVED_TOOLS}
        merged = {**self.learned, **seen}
        if not tools or (merged == self.learned and tools == self.listed):
            return False
        self.learned, self.listed = merged, tools
        if self.path is not None:
            body = {"tools": [merged[n] for n in SERVED_TOOLS if n in merged], "contextd_tools": tools}
            atomic_write(self.path, json.dumps(body, indent=1, sort_keys=True).encode())
        return True

    def definitions(self) -> list[dict]:
        """Each served tool: contextd's own definition when known, else the built-in copy."""
        return [self.learned.get(name, BUILTIN_TOOLS[name]) for name in SERVED_TOOLS]

    def listing(self) -> list[dict]:
        """What guardian lists while contextd loads: contextd's own last list (write tools
        included), else the served tools."""
        return list(self.listed) or self.definitions()

    def source(self, name: str) -> str:
        return "contextd" if name in self.learned else "builtin"


def _tools(value: Any) -> list[dict]:
    """The valid tool definitions of a list (anything else in it is skipped)."""
    return [t for t in value if _valid_tool(t)] if isinstance(value, list) else []


def _valid_tool(tool: Any) -> bool:
    return (isinstance(tool, dict) and isinstance(tool.get("name"), str)
            and isinstance(tool.get("inputSchema"), dict))
