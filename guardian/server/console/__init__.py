"""guardian's console: pages to see the store's health, its snapshots, its memories, and to undo.

Server-side rendered HTML (Jinja2 templates, autoescaped: a memory's text is whatever an agent
wrote), one stylesheet, one small script (the glance refreshes itself; everything reads without
JavaScript), charts as inline SVG; all of it package data, nothing fetched at run time.

Routes (beside the API's in ``guardian.server.api``; who may ask is ``guardian.server.access``'s call):

    GET  /                      -> /console/
    GET  /console/              at a glance (``?part=glance``: the panel alone, for the refresh)
    GET  /console/open?key=     signs this browser in (the URL `guardian console` prints), -> /console/
    GET  /console/timeline      snapshots over time; pick two to diff (``from``, ``to``)
    GET  /console/diff          ``from``, ``to`` (none: the store now), ``collection``
    GET  /console/memories      ``collection``, ``q`` (text or keywords), ``where`` (KEY=VALUE lines), ``offset``
    GET  /console/memory        ``collection``, ``id``, ``at``: one memory and its history
    GET  /console/restore       ``at`` (a snapshot), ``collection``, ``id`` (repeats): the preview
    POST /console/restore       the same fields + the form token: the restore itself
    POST /console/undo          ``restore``: put the store back as before that restore
    GET  /console/quarantine    what guardian took out of the store
    POST /console/quarantine    ``entry``, ``replace``: put one back
    GET  /console/static/NAME   console.css, console.js

The data comes from a backend object (``guardian.runtime.console_backend.ConsoleBackend``: this
package sits below the domain packages, so it is handed one rather than importing them).
"""

from __future__ import annotations

import threading
from datetime import datetime
from importlib import resources
from typing import Any, Mapping
from urllib.parse import parse_qs, urlencode, urlsplit

from guardian.errors import GuardianError, UsageError
from guardian.logs import get_logger
from guardian.server.access import OPEN_PATH, PAGE_HEADERS, Access, Verdict
from guardian.server.api import Response
from guardian.server.console.chart import build_chart
from guardian.words import count, human_duration

HTML = "text/html; charset=utf-8"
STATIC_TYPES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8",
                "favicon.svg": "image/svg+xml"}
POST_ROUTES = ("/console/restore", "/console/undo", "/console/quarantine")
GET_ROUTES = ("/", "/console", "/console/", OPEN_PATH, "/console/timeline", "/console/diff", "/console/memories",
              "/console/memory", "/console/restore", "/console/quarantine")
MAX_FORM = 64 * 1024
log = get_logger("guardian.server")


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("guardian.server.console", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(age=human_duration, local=local_time, size=human_size, count=count)
    env.globals.update(urlencode=urlencode)
    return env


class Console:
    def __init__(self, backend: Any, access: Access) -> None:
        self.backend = backend
        self.access = access
        self.request = threading.local()   # what one request's pages need to know (cheroot: one thread a request)
        self.env = _environment()
        self.static = {name: resources.files(__package__).joinpath("static", name).read_bytes()
                       for name in STATIC_TYPES}
        for name in self.env.list_templates():   # compiled now, not on the first page a user opens
            self.env.get_template(name)

    # ---- what the API asks -----------------------------------------------------------------

    @staticmethod
    def handles(path: str) -> bool:
        return path == "/" or path == "/console" or path.startswith("/console/")

    def refuse_method(self, method: str, path: str) -> Response | None:
        if path.startswith("/console/static/"):
            allowed = ("GET", "HEAD")
        elif path in POST_ROUTES:
            allowed = ("GET", "HEAD", "POST") if path in GET_ROUTES else ("POST",)
        elif path in GET_ROUTES:
            allowed = ("GET", "HEAD")
        else:
            return self.page(404, "error.html", title="Not found", message=f"there is no page {path}",
                             hint="start from the console's front page")
        if method not in allowed:
            return self.page(405, "error.html", title="Not allowed", message=f"{path} answers {', '.join(allowed)}",
                             hint="use the console's links and buttons", extra=(("Allow", ", ".join(allowed)),))
        return None

    def refusal(self, verdict: Verdict) -> Response:
        return self.page(verdict.status, "error.html", title="Refused", message=verdict.message, hint=verdict.hint)

    def answer(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path = parts.path
        self.request.signed_in = self.access.cookie_ok(_header(headers, "cookie"))
        params = parse_qs(parts.query, keep_blank_values=True)
        try:
            if path in ("/", "/console"):
                return redirect("/console/")
            if path.startswith("/console/static/"):
                return self.static_file(path.rsplit("/", 1)[-1])
            if path == OPEN_PATH:
                return self.sign_in(one(params, "key"))
            if method == "POST":
                form = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"), keep_blank_values=True)
                if not self.access.form_ok(one(form, "token")):
                    return self.page(403, "error.html", title="Refused", message="the form's token is missing or wrong",
                                     hint="reload the page and try again")
                return self.act(path, form)
            return self.show(path, params)
        except GuardianError as exc:
            status = getattr(exc, "http_status", None) or getattr(exc, "status", None) or \
                (400 if isinstance(exc, UsageError) else 503)
            return self.page(status, "error.html", title="Cannot do that", message=exc.message, hint=exc.hint)
        except Exception as exc:   # a bug: a page that says so, and the details in the log
            log.exception("console_page_failed", path=path)
            return self.page(500, "error.html", title="Internal error", message=f"{type(exc).__name__}: {exc}",
                             hint="report this bug")

    # ---- pages -----------------------------------------------------------------------------

    def show(self, path: str, params: dict[str, list[str]]) -> Response:
        backend = self.backend
        if path == "/console/":
            glance = backend.glance()
            if one(params, "part") == "glance":
                return self.page(200, "_glance.html", g=glance)
            return self.page(200, "glance.html", g=glance, nav="glance")
        if path == "/console/timeline":
            timeline = backend.timeline()
            chosen = {"from": one(params, "from"), "to": one(params, "to")}
            return self.page(200, "timeline.html", nav="timeline", t=timeline, chosen=chosen,
                             chart=build_chart(timeline["points"], timeline["marks"]))
        if path == "/console/diff":
            start, end = one(params, "from"), one(params, "to") or None   # no "to": the store now
            if not start:
                return redirect("/console/timeline")
            collection = one(params, "collection") or None
            return self.page(200, "diff.html", nav="timeline", d=backend.diff(start, end, collection),
                             collection=collection)
        if path == "/console/memories":
            return self.memories(params)
        if path == "/console/memory":
            memory_id = one(params, "id")
            if not memory_id:
                return redirect("/console/memories")
            return self.page(200, "memory.html", nav="memories",
                             m=backend.memory(memory_id, one(params, "collection") or None, one(params, "at") or None))
        if path == "/console/restore":
            form = {"at": one(params, "at"), "collection": one(params, "collection"),
                    "ids": [i for i in params.get("id", []) if i], "force": one(params, "force")}
            return self.page(200, "restore.html", nav="undo", p=backend.restore_preview(form), form=form)
        return self.page(200, "quarantine.html", nav="undo", q=backend.quarantine(), restores=backend.restores(),
                         done=None)

    def memories(self, params: dict[str, list[str]]) -> Response:
        names = self.backend.collection_names()
        collection = one(params, "collection") or (names[0] if names else None)
        text = one(params, "q") or ""
        where_text = one(params, "where") or ""
        where, bad = parse_where(where_text)
        try:
            offset = max(0, int(one(params, "offset") or 0))
        except ValueError:
            offset = 0
        listing = None
        if collection is not None and not bad:
            listing = self.backend.browse(collection, text, where, offset)
        return self.page(200, "memories.html", nav="memories", names=names, collection=collection, text=text,
                         where_text=where_text, bad=bad, listing=listing)

    def act(self, path: str, form: dict[str, list[str]]) -> Response:
        backend = self.backend
        if path == "/console/restore":
            request = {"at": one(form, "at"), "collection": one(form, "collection"),
                       "ids": [i for i in form.get("id", []) if i], "force": one(form, "force")}
            outcome = backend.restore(request)
            return self.page(200, "restored.html", nav="undo", o=outcome, form=request)
        if path == "/console/undo":
            return self.page(200, "undone.html", nav="undo",
                             u=backend.undo(one(form, "restore"), force=one(form, "force") == "1"))
        result = backend.put_back(one(form, "entry") or "", replace=one(form, "replace") == "1")
        return self.page(200, "quarantine.html", nav="undo", q=backend.quarantine(), restores=backend.restores(),
                         done=result)

    def sign_in(self, key: str | None) -> Response:
        if not self.access.key_ok(key):
            return self.page(403, "error.html", title="Refused", message="this opening link is wrong or outdated",
                             hint="open the URL `guardian console` prints now")
        return redirect("/console/", (self.access.set_cookie(),))

    def static_file(self, name: str) -> Response:
        body = self.static.get(name)
        if body is None:
            return self.page(404, "error.html", title="Not found", message=f"no file {name}", hint="")
        return Response(200, body, STATIC_TYPES[name], (("Cache-Control", "no-cache"),))

    def page(self, status: int, template: str, extra: tuple = (), **data) -> Response:
        data.setdefault("nav", "")
        signed_in = getattr(self.request, "signed_in", False)
        data.update(token=self.access.form_token if signed_in else "", signed_in=signed_in)
        body = self.env.get_template(template).render(**data).encode("utf-8")
        return Response(status, body, HTML, PAGE_HEADERS + tuple(extra))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def redirect(location: str, extra: tuple = ()) -> Response:
    return Response(303, b"", HTML, (("Location", location),) + PAGE_HEADERS + tuple(extra))


def one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def parse_where(text: str) -> tuple[dict[str, str], str]:
    """``KEY=VALUE`` lines (or ``;``-separated) as chromem's ``where``; the offending part when one is not."""
    where: dict[str, str] = {}
    for part in text.replace(";", "\n").splitlines():
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            return {}, part
        where[key.strip()] = value.strip()
    return where, ""


def local_time(value: str | None) -> str:
    if not value:
        return "?"
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def human_size(count: int | None) -> str:
    size = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
