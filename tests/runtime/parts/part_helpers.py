"""Helpers for testing one runtime part at a time (the ``parts`` fixture in tests/conftest.py): a real
RuntimeContext on a copy of the fixture store, and alerts that go through the real Alerter to a
command that appends them to a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from guardian.config import Config
from guardian.local.paths import StatePaths
from guardian.runtime import alerts
from guardian.runtime.context import RuntimeContext

ALERT_SINK = """
import sys
with open(sys.argv[1], "a") as out:
    out.write(sys.stdin.read().strip() + "\\n")
"""


class PartSetup:
    """``make(**config)`` builds a context; ``alerts()`` reads what the real alerter sent; ``heard``
    collects events the test listens to (``listen(ctx, EVENT)``)."""

    def __init__(self, store: Path, tmp: Path) -> None:
        self.store, self.tmp = store, tmp
        self.alerts_file = tmp / "alerts.jsonl"
        (tmp / "alert_sink.py").write_text(ALERT_SINK)
        self.heard: list[tuple[str, dict]] = []

    def make(self, cmd=None, **config) -> RuntimeContext:
        config = Config(store=str(self.store), http_port=0, **config)
        paths = StatePaths.for_store(config.store_path, str(self.tmp / "state")).ensure()
        alerter = alerts.Alerter(command=f"{sys.executable} {self.tmp / 'alert_sink.py'} {self.alerts_file}",
                                 store=str(config.store_path))
        return RuntimeContext(config, paths, cmd, alerter=alerter)

    def alerts(self) -> list[str]:
        if not self.alerts_file.exists():
            return []
        return [json.loads(line)["event"] for line in self.alerts_file.read_text().splitlines() if line.strip()]

    def listen(self, ctx: RuntimeContext, event: str) -> None:
        ctx.on(event, lambda **fields: self.heard.append((event, fields)))

    def events(self, event: str) -> list[dict]:
        return [fields for name, fields in self.heard if name == event]



def add_document(store: Path, dir_name: str, doc_id: str, axis: int = 0) -> str:
    """Write one new plain document into a collection folder (as chromem does); its store-relative path."""
    import numpy as np

    from guardian.format import chromem

    vector = np.zeros(384, dtype=np.float32)
    vector[axis] = 1.0
    rel = f"{dir_name}/{chromem.document_stem(doc_id)}.gob"
    (store / rel).write_bytes(chromem.encode_document(chromem.Document(doc_id, {}, vector, doc_id), False))
    return rel


def changed(*rels: str, kind: str = "modified"):
    """The raw watcher events a write of ``rels`` produces (what STORE_CHANGED carries)."""
    from pathlib import PurePosixPath

    from guardian.runtime.watcher import RawEvent

    return [RawEvent(kind, PurePosixPath(rel)) for rel in rels]


def first_document(store: Path, dir_name: str = "40917930") -> Path:
    """The first document file of a collection folder (its metadata file excluded)."""
    from guardian.format.layout import METADATA_STEM

    return sorted(p for p in (store / dir_name).iterdir() if not p.name.startswith(METADATA_STEM))[0]
