"""The HTTP part: the query API (and /healthz, /readyz, /v1/status, /metrics) on 127.0.0.1.

/v1/status is built from facts kept current by :class:`~guardian.runtime.live_status.LiveStatus`
(started and stopped with this part), so a status call never rescans the store.
"""

from __future__ import annotations

from typing import Callable

from guardian.index.embed import embedder_from_config
from guardian.memories.browser import MemoryBrowser
from guardian.runtime.console_backend import ConsoleBackend
from guardian.runtime.live_status import LiveStatus
from guardian.runtime.parts import BasePart
from guardian.server.access import SecretFileError, load_or_create_secret
from guardian.server.console import Console
from guardian.server.http import GuardianHTTPServer


class HttpPart(BasePart):
    """``status_file_data`` gives the sidecar's own section of the status (the runtime's, or what a
    running sidecar's status file says, in `guardian serve`); ``health`` and ``ready`` are the
    providers the API answers from (None: the API's own defaults, as in `guardian serve`: healthy,
    ready when the index is built and clean)."""

    name = "http"

    def __init__(self, ctx, status_file_data: Callable[[], dict | None],
                 health: Callable[[], dict] | None = None,
                 ready: Callable[[], tuple[bool, str]] | None = None,
                 status: Callable[[], dict] | None = None) -> None:
        super().__init__(ctx)
        self.status_file_data = status_file_data
        self.providers = {"health_provider": health, "ready_provider": ready}
        self.full_status = status   # `guardian status --json`'s dict (the console shows it); None: /v1/status's
        self.live_status: LiveStatus | None = None
        self.server: GuardianHTTPServer | None = None

    def start(self) -> None:
        ctx = self.ctx
        self.live_status = LiveStatus(ctx, self.status_file_data).start()
        embedder = embedder_from_config(ctx.config)
        backend = ConsoleBackend(ctx, self.full_status or self.live_status, embedder)
        self.server = GuardianHTTPServer(ctx.index, self.live_status, ctx.config, metrics=ctx.metrics,
                                         health_provider=self.providers["health_provider"],
                                         ready_provider=self.providers["ready_provider"],
                                         embedder=embedder, memories=MemoryBrowser.for_paths(ctx.paths),
                                         console=lambda access: Console(backend, access),
                                         console_secret=self._secret())
        try:
            self.server.start()  # it logs http_listening itself (one event, one name)
        except Exception:
            self.live_status.stop()
            raise

    def _secret(self) -> str | None:
        """The console secret in the state dir (made on first start); None (a console without actions,
        which then answers 403 to every one) when it cannot be kept there."""
        try:
            return load_or_create_secret(self.ctx.paths.console_secret)
        except (SecretFileError, OSError) as exc:
            self.ctx.log.warning("console_secret_unavailable", error=str(exc),
                                 hint="the console's pages read, its actions are refused")
            return None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.live_status is not None:
            self.live_status.stop()

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def status(self) -> dict:
        if self.server is None:
            return {}
        return {"http": {"host": self.ctx.config.http_host, "port": self.server.port}}
