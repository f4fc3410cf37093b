"""The address of the running sidecar's console, and the link that signs a browser in to it.

`guardian console` and `guardian status` print it; only who can read the state dir (the user: it
is 0700, the secret file 0600) can make it.
"""

from __future__ import annotations

from guardian.server.access import OPEN_PATH, SecretFileError, read_secret


def console_base(status: dict) -> str | None:
    """``http://host:port`` of the running sidecar's HTTP server, from its status; None when none runs."""
    sidecar = status.get("sidecar") or {}
    http = sidecar.get("http") if sidecar.get("running") else None
    if not isinstance(http, dict) or not http.get("port"):
        return None
    host = str(http.get("host") or "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"   # listening everywhere: loopback reaches it
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http['port']}"


def console_link(paths, status: dict) -> str | None:
    """The opening link (the console's address with the secret), None when no sidecar runs or its
    secret cannot be read here."""
    base = console_base(status)
    if base is None:
        return None
    try:
        secret = read_secret(paths.console_secret)
    except SecretFileError:
        return None
    return f"{base}{OPEN_PATH}?key={secret}" if secret else None
