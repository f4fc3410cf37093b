"""The catalog: every collection name guardian has ever seen for a store.

Fed by every scan and snapshot; read by metadata repair, which recovers a lost collection
name by hashing candidates against the folder name (sha256(name)[:8]).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from guardian.local.fsutil import atomic_write_text, ensure_dir


class Catalog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        names = data.get("names", {}) if isinstance(data, dict) else {}
        return {k: v for k, v in names.items() if isinstance(k, str) and isinstance(v, dict)}

    def names(self) -> set[str]:
        return set(self.load())

    def add(self, names: Iterable[str], source: str) -> bool:
        """Record ``names``; writes (atomically) only when something new was seen."""
        known = self.load()
        new = [n for n in names if n and n not in known]
        if not new:
            return False
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for name in new:
            known[name] = {"first_seen": now, "source": source}
        ensure_dir(self.path.parent)
        atomic_write_text(self.path, json.dumps({"names": known}, indent=1, sort_keys=True) + "\n")
        return True
