"""The HTTP part: the query API (and /healthz, /readyz, /v1/status, /metrics) on 127.0.0.1."""

from __future__ import annotations

from typing import Callable

from guardian.index.embed import embedder_from_config
from guardian.runtime.parts import BasePart
from guardian.server.http import GuardianHTTPServer


class HttpPart(BasePart):
    """``status``, ``health`` and ``ready`` are the providers the API answers from (None: the API's
    own defaults, as in `guardian serve`: healthy, ready when the index is built and clean)."""

    name = "http"

    def __init__(self, ctx, status: Callable[[], dict], health: Callable[[], dict] | None = None,
                 ready: Callable[[], tuple[bool, str]] | None = None) -> None:
        super().__init__(ctx)
        self.providers = {"status_provider": status, "health_provider": health, "ready_provider": ready}
        self.server: GuardianHTTPServer | None = None

    def start(self) -> None:
        ctx = self.ctx
        self.server = GuardianHTTPServer(ctx.index, self.providers["status_provider"], ctx.config,
                                         metrics=ctx.metrics, health_provider=self.providers["health_provider"],
                                         ready_provider=self.providers["ready_provider"],
                                         embedder=embedder_from_config(ctx.config))
        self.server.start()
        ctx.log.info("http_listening", host=ctx.config.http_host, port=self.server.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def status(self) -> dict:
        if self.server is None:
            return {}
        return {"http": {"host": self.ctx.config.http_host, "port": self.server.port}}
