"""Who may ask the HTTP server what: every request passes :meth:`Access.screen` before its body is read.

The server listens on loopback, but on a shared machine loopback is everyone's, and the user's own
browser runs pages from anywhere. So, for every route:

- **Host** must name this server (an IP literal, ``localhost`` or the configured ``http_host``,
  with our port): a DNS-rebinding page (``evil.example`` resolving to 127.0.0.1) reaches the port
  with its own name in ``Host`` and is refused (421) before it can read a byte.
- **Fetch metadata**: a browser says where a request comes from (``Sec-Fetch-Site``, ``Origin``).
  A request from another site (or another port of 127.0.0.1: ``same-site``) is refused unless it is
  the user following a link to a page (a top-level navigation: its answer is shown, never handed to
  the page that linked it). No route answers CORS: no ``Access-Control-*`` header is ever sent.
- **Bearer token** (``http_token``) for the API routes, as before.

The console (the pages under ``/console/``) adds the **console secret**: 32 random bytes the
sidecar keeps in its state dir (0600, ``console.secret``). `guardian console` (and `guardian
status`) print a URL carrying it; opening that URL once sets a cookie derived from it (HttpOnly,
SameSite=Strict, so a cross-site request never carries it), then redirects to the console without
it. A state-changing request (POST: a restore, a put-back) needs that cookie, the form's token
(derived from the secret too: a request made without reading one of our pages cannot carry it) and
a same-origin ``Origin``/``Sec-Fetch-Site`` when the browser sends them. Reading pages need the
cookie (or the bearer token) when ``http_token`` is set or the server listens beyond loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

from guardian.local.fsutil import atomic_write

SECRET_BYTES = 32
MAX_SECRET_FILE = 4096
OPEN_PATH = "/console/open"
STATIC_PREFIX = "/console/static/"   # the stylesheet, the script, the icon: the same for everyone
# Answers every console page carries: nothing from elsewhere, no framing, no sniffing, no referrer
# to another site (the opening URL carries the secret), never cached.
PAGE_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),   # (not no-referrer: Chromium then posts our own forms with Origin: null)
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
# Every answer: a page elsewhere may not embed or sniff it (a <script src> of our JSON reads nothing).
COMMON_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Cross-Origin-Resource-Policy", "same-origin"))


class SecretFileError(OSError):
    """The console secret file is not a private regular file of ours."""


def load_or_create_secret(path: Path) -> str:
    """The console secret kept in ``path``: read (a regular file, not a symlink, readable by its owner
    only), or made and written atomically (0600) when there is none."""
    secret = read_secret(path)
    if secret is not None:
        return secret
    secret = secrets.token_urlsafe(SECRET_BYTES)
    try:
        atomic_write(path, (secret + "\n").encode("ascii"), overwrite=False)
    except FileExistsError:   # another process made it meanwhile: use theirs
        return read_secret(path) or secret
    return secret


def read_secret(path: Path) -> str | None:
    """The secret in ``path``, or None when there is no such file; SecretFileError for a file that is
    not a private regular file (never followed through a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretFileError(exc.errno, f"cannot open the console secret {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077 or info.st_uid != os.getuid():
            raise SecretFileError(0, f"{path} is not a private file of this user (mode {stat.filemode(info.st_mode)})")
        text = os.read(fd, MAX_SECRET_FILE).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if len(text) < 32:
        raise SecretFileError(0, f"{path} holds no usable secret")
    return text


def derive(secret: str, purpose: str) -> str:
    """A value for one purpose (the cookie, the form token) from the secret; the secret itself never
    travels after the first opening."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` as (lower-case name, port or None); None when it is not a host[:port]."""
    try:
        parts = urlsplit("//" + value.strip())
        port = parts.port
    except ValueError:
        return None
    name = (parts.hostname or "").lower()
    if not name or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return name, port


@dataclass(frozen=True)
class Verdict:
    """What :meth:`Access.screen` decided: refused (status, message, hint), or let through with what
    the request may do (``signed_in``: it carries the console cookie or the bearer token)."""

    status: int = 0
    message: str = ""
    hint: str = ""
    signed_in: bool = False

    @property
    def refused(self) -> bool:
        return self.status != 0


class Access:
    """The one place that decides who may ask what (see the module docstring).

    ``port`` is read per request (the server may bind port 0 and learn its port later);
    ``secret`` is None where no console secret is kept (`guardian serve` without a state dir)."""

    def __init__(self, token: str, host: str, port: Callable[[], int | None], secret: str | None = None) -> None:
        self.token = token or ""
        self.host = host.lower()
        self.port = port
        self.secret = secret
        self.cookie_name = f"guardian_{derive(secret, 'cookie-name')[:10]}" if secret else ""
        self.cookie_value = derive(secret, "cookie") if secret else ""
        self.form_token = derive(secret, "form") if secret else ""

    @property
    def reading_needs_sign_in(self) -> bool:
        return bool(self.token) or not is_loopback(self.host)

    # ---- the checks ------------------------------------------------------------------------

    def screen(self, method: str, path: str, headers: Mapping[str, str], *, console: bool,
               open_route: bool = False) -> Verdict:
        """Host, then where the request comes from, then the credentials the route needs."""
        get = _getter(headers)
        refused = self._host(get("host")) or self._origin(method, get)
        if refused is not None:
            return refused
        signed_in = self.bearer_ok(get("authorization")) or self.cookie_ok(get("cookie"))
        if console:
            if path == OPEN_PATH or (path.startswith(STATIC_PREFIX) and method in ("GET", "HEAD")):
                return Verdict()   # the opening link checks its key itself; a refusal page needs its stylesheet
            if method not in ("GET", "HEAD") and not self.cookie_ok(get("cookie")):
                return Verdict(403, "a console action needs the console's cookie",
                               "open the console through the URL `guardian console` prints")
            if self.reading_needs_sign_in and not signed_in:
                return Verdict(401, "this console needs signing in",
                               "open it through the URL `guardian console` prints")
            return Verdict(signed_in=signed_in)
        if not open_route and self.token and not self.bearer_ok(get("authorization")):
            return Verdict(401, "missing or wrong bearer token", "send Authorization: Bearer <http_token>")
        return Verdict(signed_in=signed_in)

    def _host(self, value: str | None) -> Verdict | None:
        if value is None:
            return None   # HTTP/1.0 without Host: no browser sends that (browsers always name the host)
        parsed = split_host(value)
        port = self.port()
        if parsed is not None:
            name, given = parsed
            if (port is None or given in (None, port)) and (_is_ip(name) or name in ("localhost", self.host)):
                return None
        return Verdict(421, f"Host {value[:100]!r} does not name this server",
                       f"ask for it as 127.0.0.1:{port} or localhost:{port}")

    def _origin(self, method: str, get) -> Verdict | None:
        """Another site (or another port here) may only navigate to a page; never call a route."""
        site = (get("sec-fetch-site") or "").lower()
        origin = get("origin")
        ours = origin is None or origin == self.origin_of(get("host"))
        navigation = method == "GET" and (get("sec-fetch-mode") or "navigate").lower() == "navigate" \
            and (get("sec-fetch-dest") or "document").lower() == "document"
        if site in ("", "same-origin", "none") and ours:
            return None
        if navigation and site != "same-origin" and origin is None:
            return None
        return Verdict(403, "a request from another site is refused",
                       "open the console itself (the URL `guardian console` prints)")

    def origin_of(self, host: str | None) -> str | None:
        return f"http://{host}" if host else None

    def bearer_ok(self, value: str | None) -> bool:
        if not self.token or not value:
            return False
        scheme, _, given = value.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def cookie_ok(self, value: str | None) -> bool:
        if not self.cookie_name or not value:
            return False
        for part in value.split(";"):
            name, _, given = part.strip().partition("=")
            if name == self.cookie_name and hmac.compare_digest(given.encode(), self.cookie_value.encode()):
                return True
        return False

    def key_ok(self, given: str | None) -> bool:
        return bool(self.secret and given) and hmac.compare_digest(given.encode(), self.secret.encode())

    def form_ok(self, given: str | None) -> bool:
        return bool(self.form_token and given) and hmac.compare_digest(given.encode(), self.form_token.encode())

    def set_cookie(self) -> tuple[str, str]:
        return ("Set-Cookie", f"{self.cookie_name}={self.cookie_value}; Path=/; HttpOnly; SameSite=Strict")

    def opening_url(self, base: str) -> str | None:
        """The URL that signs a browser in (None without a secret)."""
        return f"{base}{OPEN_PATH}?key={self.secret}" if self.secret else None


def _getter(headers: Mapping[str, str]):
    lowered = {name.lower(): value for name, value in headers.items()}
    return lowered.get
