"""One event, one name: every structlog event guardian emits is a snake_case name, and each name
is emitted from one place only (no `http api listening` + `http_listening` pairs)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

GUARDIAN = Path(__file__).resolve().parent.parent / "guardian"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
LOGGERS = {"log", "logger", "_log"}


def _is_logger(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in LOGGERS
    return isinstance(node, ast.Attribute) and node.attr in LOGGERS   # self.log


def log_events() -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(GUARDIAN.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LEVELS
                    and _is_logger(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                found[node.args[0].value].append(f"{path.relative_to(GUARDIAN.parent)}:{node.lineno}")
    return found


def test_every_event_is_a_snake_case_name():
    events = log_events()
    assert len(events) > 20  # the scan finds the log calls
    bad = {name: places for name, places in events.items() if not NAME.match(name)}
    assert bad == {}


def test_no_two_names_for_one_event():
    events = log_events()
    assert len(events["http_listening"]) == 1, events["http_listening"]
    assert len(events["snapshot_failed"]) <= 2  # the sidecar's reporter, or the bare scheduler's
    squashed = defaultdict(set)
    for name in events:
        squashed[name.replace("_", "")].add(name)
    assert [names for names in squashed.values() if len(names) > 1] == []
