"""Which store pushes to a replica: one store per replica prefix.

Two stores pushing to one prefix (a config synced between two laptops, say) would interleave their
snapshots — `restore --at` could bring back the other machine's memories — and each push's
retention would forget the other's snapshots. So a replica's header names its owner: an opaque
random id kept in the pushing store's state dir (no host or path, which an encrypted replica must
not reveal). A push from another id is refused with the way out: a store that replaces the old one
(restored onto a new machine) takes the replica over once with ``guardian replicate --take-over``.
Replicas made before owners existed are claimed by the first push that finds them.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import datetime, timezone
from pathlib import Path

from guardian.errors import ReplicaError
from guardian.local.fsutil import atomic_write_text, ensure_dir

OWNER_FILE = "replica-owner"
OWNER_ID = re.compile(r"^[0-9a-f]{32}$")


class ReplicaOwnedElsewhere(ReplicaError):
    """The replica's header names another store as its owner."""


def local_owner_id(state_root: Path) -> str:
    """This store's owner id (created on first use, atomically; a damaged file is replaced)."""
    path = Path(state_root) / OWNER_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
        if OWNER_ID.match(text):
            return text
    except (OSError, UnicodeDecodeError):
        pass
    owner = os.urandom(16).hex()
    ensure_dir(path.parent)
    atomic_write_text(path, owner + "\n")
    return owner


def owner_record(owner_id: str) -> dict:
    return {"id": owner_id, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def needs_claim(header: dict, owner_id: str, take_over: bool, display: str, url: str | None = None) -> bool:
    """Whether the header must be rewritten naming ``owner_id``; ReplicaOwnedElsewhere when another
    store owns the replica and this push does not take it over (its hint: the command to paste, with
    the whole ``url`` quoted for the shell)."""
    current = header.get("owner") if isinstance(header.get("owner"), dict) else None
    if current is None or take_over:
        return current is None or current.get("id") != owner_id
    if current.get("id") == owner_id:
        return False
    raise ReplicaOwnedElsewhere(
        f"another store pushes to replica {display} (owner {str(current.get('id'))[:8]}…, "
        f"since {current.get('since', '?')}); two stores on one prefix would mix their snapshots",
        "give each store its own prefix; if this store replaces that one (restored onto a new machine), "
        f"take it over once: guardian replicate --take-over --to {shlex.quote(url or display)}")
