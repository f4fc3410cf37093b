"""What guardian remembers about each replica (in the state dir): last push, errors, bytes sent,
damage found and not mended.

One small JSON file per replica URL, written atomically after every push attempt by whoever pushed
(the sidecar or `guardian replicate`); `status`, `/metrics` and the alerts read it. No credential
and no key is ever written here.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from guardian.local.fsutil import atomic_write_text, ensure_dir


UNMENDED_KEPT = 20


def replica_id(display: str) -> str:
    return hashlib.sha256(display.encode()).hexdigest()[:16]


def state_file(state_root: Path, display: str) -> Path:
    return state_root / "replicas" / f"{replica_id(display)}.json"


def lock_file(state_root: Path, display: str) -> Path:
    return state_root / "replicas" / f"{replica_id(display)}.lock"


@dataclass
class ReplicaState:
    url: str = ""
    last_attempt: float = 0.0
    last_success: float = 0.0
    last_error: str = ""
    consecutive_errors: int = 0
    errors_total: int = 0
    bytes_sent_total: int = 0
    objects_sent_total: int = 0
    remote_snapshots: int = 0
    newest_remote: str | None = None
    objects_mended_total: int = 0       # damaged or missing objects pushed again
    unmended: list = field(default_factory=list)   # damage the last push found and could not mend from here

    def to_dict(self) -> dict:
        return asdict(self)


def load_state(path: Path) -> ReplicaState:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ReplicaState()
    known = {f.name for f in fields(ReplicaState)}
    try:
        return ReplicaState(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        return ReplicaState()


def _save(path: Path, state: ReplicaState) -> None:
    ensure_dir(path.parent)
    atomic_write_text(path, json.dumps(state.to_dict()) + "\n")


def note_success(path: Path, display: str, result, now: float | None = None) -> ReplicaState:
    state = load_state(path)
    now = time.time() if now is None else now
    state.url, state.last_attempt, state.last_success = display, now, now
    state.last_error, state.consecutive_errors = "", 0
    state.bytes_sent_total += result.bytes_sent
    state.objects_sent_total += result.objects_sent
    state.remote_snapshots, state.newest_remote = result.remote_snapshots, result.newest_remote
    state.objects_mended_total += len(result.mend.mended)
    state.unmended = [f"{key}: {why}" for key, why in sorted(result.mend.unmendable.items())][:UNMENDED_KEPT]
    _save(path, state)
    return state


def note_failure(path: Path, display: str, message: str, bytes_sent: int = 0, now: float | None = None) -> ReplicaState:
    state = load_state(path)
    state.url, state.last_attempt = display, time.time() if now is None else now
    state.last_error = message
    state.consecutive_errors += 1
    state.errors_total += 1
    state.bytes_sent_total += bytes_sent
    _save(path, state)
    return state
