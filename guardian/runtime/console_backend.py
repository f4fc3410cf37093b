"""What the console's pages show and do, gathered from the runtime: the server renders, this answers.

``guardian.server.console`` (below the domain packages) renders pages from plain dicts; this object,
made by the HTTP part, answers them from the same code the CLI runs, never a copy:

- at a glance: the status `guardian status --json` prints through the sidecar (``Runtime.status_dict``),
  the runtime's shared scan for the collections, the quarantine's repair entries and the incidents
  this sidecar saw (damage found, repairs, the child exiting or FATAL);
- the timeline: every snapshot's header (cached by id: a manifest never changes) and, as marks, the
  repairs and restores recorded in the quarantine and the restore journal;
- memories: the index (``StoreIndex``: chromem's filters, text search with the configured embedder)
  and ``memories.MemoryBrowser`` (show, history, diff);
- undo: ``restoring.Restore`` (the dry run plans it, as `guardian restore --dry-run`), the restore
  itself through the control part's service (the very code `guardian restore` reaches through the
  control socket: the child stopped around it, the store lock), and the quarantine's put-back
  (``repair.putback``, as `guardian quarantine restore`).
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from guardian.errors import GuardianError, UsageError
from guardian.index import query as q
from guardian.local.quarantine import Quarantine
from guardian.memories.browser import MemoryBrowser
from guardian.memories.points import NotFound, iso, snapshot_time
from guardian.memories.versions import FACT_KEYS, title_of
from guardian.repair.putback import put_back
from guardian.restoring.journal import Journal
from guardian.restoring.pipeline import Restore
from guardian.restoring.request import RestoreRequest
from guardian.runtime.context import CHILD_STATE, DAMAGE_FOUND, REPAIRED, RESTORE, UNDO_RESTORE
from guardian.snapshots.manifest import ID_PATTERN
from guardian.snapshots.repository import Repository

MAX_INCIDENTS = 200
MAX_CHART_POINTS = 240      # a chart wider than this many snapshots shows an even sample of them
INCIDENT_STATES = ("EXITED", "BACKOFF", "FATAL")
PAGE_SIZE = 50


class ConsoleBackend:
    """``status`` gives `guardian status --json`'s dict; ``embedder`` (or None) turns text into vectors."""

    def __init__(self, ctx, status: Callable[[], dict], embedder: Any = None) -> None:
        self.ctx = ctx
        self.status = status
        self.embedder = embedder
        self.memories = MemoryBrowser.for_paths(ctx.paths)
        self.repo = Repository(ctx.paths.snapshots)
        self._headers: dict[str, dict | None] = {}
        self._lock = threading.Lock()
        self.incidents: deque = deque(maxlen=MAX_INCIDENTS)
        ctx.on(DAMAGE_FOUND, self._damage_found)
        ctx.on(REPAIRED, self._repaired)
        ctx.on(CHILD_STATE, self._child_state)

    # ---- incidents (what this sidecar saw) ------------------------------------------------------

    def _note(self, kind: str, text: str) -> None:
        self.incidents.append({"time": iso(datetime.fromtimestamp(self.ctx.wall_clock(), timezone.utc)),
                               "kind": kind, "text": text})

    def _damage_found(self, damages, **_) -> None:
        for damage in damages:
            self._note("damage", f"{damage.path}: {damage.kind} ({damage.reason})")

    def _repaired(self, actions, **_) -> None:
        self._note("repair", f"{len(actions)} repaired: " + ", ".join(str(a.get("path")) for a in actions[:5]))

    def _child_state(self, old: str, new: str, snapshot: dict, **_) -> None:
        if str(new).upper() in INCIDENT_STATES:
            exit_code = snapshot.get("last_exit", snapshot.get("last_exit_code"))
            self._note("child", f"child {str(old).lower()} -> {str(new).lower()}"
                       + (f" (exit {exit_code})" if exit_code is not None else ""))

    # ---- at a glance ---------------------------------------------------------------------------

    def glance(self) -> dict:
        scan = self.ctx.last_scan
        collections = [] if scan is None else [
            {"name": c.name or f"({c.dir})", "dir": c.dir, "documents": c.documents, "status": c.status,
             "problems": [{"path": p.path, "kind": p.kind, "severity": p.severity, "message": p.message}
                          for p in c.problems][:10]}
            for c in sorted(scan.collections, key=lambda c: (c.name or "", c.dir)) if c.status != "skipped"]
        repairs = [e.to_dict() for e in self._quarantine_entries() if e.source == "repair"][-10:][::-1]
        return {"status": self.status(), "collections": collections, "repairs": repairs,
                "incidents": list(self.incidents)[-10:][::-1]}

    # ---- the timeline --------------------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        return self.repo.list_ids() if self.ctx.paths.snapshots.exists() else []

    def timeline(self) -> dict:
        ids = self.snapshot_ids()
        shown = sample(ids, MAX_CHART_POINTS)
        points = [point for point in (self._header(i) for i in shown) if point is not None]
        marks = [{"time": e.time, "kind": e.source or "quarantine", "text": f"{e.original_path}: {e.reason}"}
                 for e in self._quarantine_entries() if e.source in ("repair", "restore")]
        marks += [{"time": r.time, "kind": "restore", "text": f"restore {r.id} of snapshot {r.snapshot} ({r.state})"}
                  for r in Journal(self.ctx.paths).records()]
        marks += [dict(i) for i in self.incidents]
        return {"snapshots": len(ids), "points": points, "marks": sorted(marks, key=lambda m: m["time"]),
                "ids": ids[::-1][:500]}

    def _header(self, snapshot_id: str) -> dict | None:
        with self._lock:
            if snapshot_id in self._headers:
                return self._headers[snapshot_id]
        try:
            manifest = self.repo.read_header(snapshot_id)
            point = {"id": snapshot_id, "time": iso(manifest.time),
                     "counts": {c.name or f"({c.dir})": c.documents for c in manifest.collections}}
        except (GuardianError, OSError):
            point = None   # a damaged manifest: `guardian verify` names it; the chart leaves it out
        with self._lock:
            self._headers[snapshot_id] = point
        return point

    # ---- memories ------------------------------------------------------------------------------

    def collection_names(self) -> list[str]:
        index = self.ctx.index
        return sorted(index.collections()) if index is not None else []

    def browse(self, collection: str, text: str = "", where: dict[str, str] | None = None,
               offset: int = 0, limit: int = PAGE_SIZE) -> dict:
        """One page of a collection's memories: those passing ``where`` (chromem's metadata filter);
        with ``text``, the nearest to it (an embedder configured) or those holding every word of it."""
        index = self.ctx.index
        if index is None or not index.built:
            raise GuardianError("the index is still being built", "reload in a moment")
        found = index.collection(collection)
        filters = q.parse_filters(where or None)
        rows = found.matching(filters)
        rows = np.arange(found.indexed, dtype=np.intp) if rows is None else rows
        similarities: list[float] | None = None
        mode = "all"
        if text.strip() and self.embedder is not None and found.indexed:
            mode = "text"
            vectors = q.query_matrix(list(self.embedder.embed([text])), found.dimension)
            k = min(len(rows), offset + limit)
            best, scores = found.rank(vectors, k, rows)[0] if k else (np.empty(0, np.intp), np.empty(0))
            rows, similarities, total = best[offset:], scores[offset:].tolist(), len(best)
        else:
            if text.strip():
                mode = "keywords"
                rows = keyword_rows(found, rows, text)
            total = len(rows)
            rows = rows[offset:offset + limit]
        ids, contents, metadatas = found.rows.shown(rows) if len(rows) else ([], [], [])
        items = []
        for n, (doc_id, content, metadata) in enumerate(zip(ids, contents, metadatas)):
            items.append({"id": doc_id, "title": title_of(metadata or {}, content),
                          "facts": {k: metadata[k] for k in FACT_KEYS if metadata and metadata.get(k)},
                          "similarity": similarities[n] if similarities is not None else None})
        return {"collection": found.name, "documents": found.document_count, "mode": mode, "total": total,
                "offset": offset, "limit": limit, "items": items, "embedder": self.embedder is not None,
                "fields": metadata_keys(found)}

    def memory(self, memory_id: str, collection: str | None, at: str | None = None) -> dict:
        """One memory (now, or at a snapshot) and its history; a memory gone from the store still
        has its history."""
        shown, missing = None, ""
        try:
            shown = self.memories.show(memory_id, at, collection).to_dict()
        except NotFound as exc:
            missing = exc.message
        try:
            history = self.memories.history(memory_id, collection).to_list()
        except NotFound as exc:
            if shown is None:
                raise NotFound(f"{missing}; {exc.message}", exc.hint) from None
            history = []
        return {"memory": shown, "missing": missing, "history": history, "at": at}

    def diff(self, from_text: str, to_text: str | None, collection: str | None) -> dict:
        return self.memories.diff(from_text, to_text, collection).to_dict()

    # ---- undo ----------------------------------------------------------------------------------

    def restore_request(self, form: dict) -> RestoreRequest:
        snapshot = (form.get("at") or "").strip()
        if not ID_PATTERN.match(snapshot) or snapshot not in self.snapshot_ids():
            raise NotFound(f"there is no snapshot {snapshot!r} of this store", "pick one on the timeline")
        ids = tuple(i for i in form.get("ids", ()) if i)
        return RestoreRequest(snapshot_id=snapshot, collection=form.get("collection") or None, ids=ids,
                              force=form.get("force") == "1")

    def restore_preview(self, form: dict) -> dict:
        """What `guardian restore --dry-run` says for the same request, and who uses the store."""
        outcome = Restore.of_store(self.ctx.paths, self.restore_request(form)).plan()
        data = outcome.to_dict(action_limit=500)
        child = self.ctx.child.snapshot() if self.ctx.child is not None else None
        for user in data["users"]:
            if child and user.get("pid") == child.get("pid"):
                user["supervised_child"] = True
        data["child"] = child
        return data

    def restore(self, form: dict) -> dict:
        """The restore, exactly as the control socket's ``restore`` runs it for `guardian restore`."""
        request = self.restore_request(form)
        answer = self.ctx.ask(RESTORE, **request.to_wire())
        if answer is None:
            raise UsageError("this server does not guard the store", "restore with `guardian restore`")
        return answer["restore"]

    def undo(self, restore_id: str | None, force: bool = False) -> dict:
        answer = self.ctx.ask(UNDO_RESTORE, restore_id=restore_id or None, force=force)
        if answer is None:
            raise UsageError("this server does not guard the store", "undo with `guardian restore --undo`")
        return answer

    def restores(self) -> list[dict]:
        return [r.__dict__ for r in Journal(self.ctx.paths).records()][::-1]

    # ---- the quarantine ------------------------------------------------------------------------

    def _quarantine_entries(self) -> list:
        try:
            return Quarantine(self.ctx.paths).listing()[0]
        except OSError:
            return []

    def quarantine(self) -> dict:
        entries, unreadable = Quarantine(self.ctx.paths).listing()
        return {"entries": [e.to_dict() for e in entries][::-1],
                "unreadable": [{"name": n, "reason": r} for n, r in unreadable]}

    def put_back(self, entry_id: str, replace: bool = False) -> dict:
        entry, replaced = put_back(Quarantine(self.ctx.paths), entry_id, self.ctx.paths, replace=replace)
        self.ctx.refresh_index()
        return {**entry.to_dict(), "replaced_by_entry": replaced.id if replaced else None}


def sample(ids: list[str], most: int) -> list[str]:
    """At most ``most`` of ``ids``, evenly spread, the first and the last always among them."""
    if len(ids) <= most:
        return list(ids)
    step = (len(ids) - 1) / (most - 1)
    return [ids[round(i * step)] for i in range(most)]


def keyword_rows(found, rows: np.ndarray, text: str) -> np.ndarray:
    """The rows (of ``rows``) whose content holds every word of ``text`` as written, in lower case,
    capitalised or in upper case ("jwt", "Jwt", "JWT"): byte searches over the packed contents, no
    content decoded. A word no stored bytes can hold (a lone surrogate) matches nothing."""
    keep = np.zeros(found.indexed, dtype=bool)
    keep[rows] = True
    for word in text.split():
        holds = np.zeros(found.indexed, dtype=bool)
        for form in {word, word.lower(), word.capitalize(), word.upper()}:
            try:
                holds |= found.rows.contains_mask(form.encode("utf-8"))
            except UnicodeEncodeError:
                pass
        keep &= holds
    return np.flatnonzero(keep).astype(np.intp)


def metadata_keys(found, most: int = 200) -> list[str]:
    """The metadata keys of a collection's first rows (what ``where`` can name), for the form's hints."""
    _, _, metadatas = found.rows.shown(range(min(found.indexed, most)))
    return sorted({key for metadata in metadatas for key in (metadata or {})})


def snapshot_label(snapshot_id: str) -> str:
    return snapshot_time(snapshot_id).astimezone().strftime("%Y-%m-%d %H:%M:%S")
