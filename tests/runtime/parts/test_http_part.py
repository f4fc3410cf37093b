"""The HTTP part: the API on 127.0.0.1 answers from the context's index, then closes on stop."""

from __future__ import annotations

import json
import urllib.request

from guardian.runtime.parts.http import HttpPart
from guardian.runtime.parts.index import IndexPart
from tests.waiting import http_status, wait_for


def test_serves_health_readiness_status_and_queries_then_stops(parts):
    ctx = parts.make()
    index = IndexPart(ctx, background=False)
    index.start()
    part = HttpPart(ctx, status_file_data=lambda: {"running": True},
                    ready=lambda: (ctx.index.built, "index ready"))
    part.start()
    try:
        url = part.url
        assert url.startswith("http://127.0.0.1:") and part.status()["http"]["port"] == int(url.rsplit(":", 1)[1])
        assert http_status(f"{url}/healthz") == 200
        wait_for(lambda: http_status(f"{url}/readyz") == 200, what="ready")
        with urllib.request.urlopen(f"{url}/v1/collections", timeout=10) as answer:
            names = [c["name"] for c in json.loads(answer.read())["collections"]]
        assert "checkpoints" in names
    finally:
        part.stop()
        index.stop()
    assert http_status(f"{url}/healthz") == 0                 # nothing listens any more
