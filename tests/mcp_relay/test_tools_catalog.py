"""The served tools' definitions: learned from contextd's tools/list, kept in the state dir."""

from __future__ import annotations

import json

from guardian.mcp.fallback import refusal
from guardian.mcp.tools import BUILTIN_TOOLS, CATALOG_FILE, SERVED_TOOLS, ToolCatalog


def contextd_list(marker: str) -> dict:
    tools = [dict(BUILTIN_TOOLS[name], description=f"{name} {marker}") for name in SERVED_TOOLS]
    return {"tools": tools + [{"name": "memory_record", "inputSchema": {"type": "object"}}, {"name": 3}, "junk"]}


def test_builtin_until_contextd_is_seen_then_contextds_own(tmp_path):
    catalog = ToolCatalog(tmp_path)
    assert catalog.definitions() == [BUILTIN_TOOLS[n] for n in SERVED_TOOLS]
    assert catalog.source("memory_search") == "builtin"
    assert catalog.learn(contextd_list("v1")) is True
    assert [t["description"] for t in catalog.definitions()] == [f"{n} v1" for n in SERVED_TOOLS]
    assert catalog.learn(contextd_list("v1")) is False  # unchanged: no rewrite
    saved = json.loads((tmp_path / CATALOG_FILE).read_text())
    assert [t["name"] for t in saved["tools"]] == list(SERVED_TOOLS)  # what the fallback serves while it is down
    again = ToolCatalog(tmp_path)
    assert again.definitions() == catalog.definitions() and again.source("checkpoint_list") == "contextd"


def test_while_contextd_loads_its_whole_list_is_listed(tmp_path):
    catalog = ToolCatalog(tmp_path)
    assert catalog.listing() == [BUILTIN_TOOLS[n] for n in SERVED_TOOLS]  # never seen contextd: served ones
    assert catalog.learn(contextd_list("v1")) is True
    listed = [t["name"] for t in ToolCatalog(tmp_path).listing()]
    assert listed == [*SERVED_TOOLS, "memory_record"]  # contextd's order, write tools too, junk skipped
    assert catalog.learn({"tools": [{"name": "memory_record", "inputSchema": {"type": "object"}}]}) is True
    again = ToolCatalog(tmp_path)
    assert [t["name"] for t in again.listing()] == ["memory_record"]  # the newest list, as it was
    assert [t["description"] for t in again.definitions()] == [f"{n} v1" for n in SERVED_TOOLS]


def test_partial_or_damaged_catalogs(tmp_path):
    catalog = ToolCatalog(tmp_path)
    catalog.learn({"tools": [dict(BUILTIN_TOOLS["memory_search"], description="only this one")]})
    definitions = catalog.definitions()
    assert definitions[0]["description"] == "only this one" and definitions[1] == BUILTIN_TOOLS["semantic_search"]
    (tmp_path / CATALOG_FILE).write_text("{not json")
    assert ToolCatalog(tmp_path).definitions() == [BUILTIN_TOOLS[n] for n in SERVED_TOOLS]
    assert ToolCatalog(None).learn(contextd_list("x")) is True  # no state dir: kept in memory only
    assert catalog.learn("nonsense") is False and catalog.learn({"tools": None}) is False


def test_refusals_say_what_happened():
    assert "Nothing was stored" in refusal("memory_record", "contextd exited with status 1")
    assert "contextd exited with status 1" in refusal("memory_record", "contextd exited with status 1")
    assert "memory_search" in refusal("troubleshoot_diagnose", "down")
