"""structlog set-up: JSON lines when stderr is not a terminal, readable text when it is.

Logs always go to stderr (in `guardian exec` mode stdout belongs to the child's protocol),
and optionally to a log file as JSON lines.

``configure`` only records the settings; structlog is imported and set up on the first
``get_logger``: importing it (it imports asyncio) is a good share of a short command's start-up,
and `guardian check` of a healthy store logs nothing.
"""

from __future__ import annotations

import os
import sys

_configured = False
_settings: tuple | None = None


def configure(level: str = "info", json_output: bool | None = None, log_file: str | None = None) -> None:
    """Set up logging: applied when the first logger is asked for (see the module docstring)."""
    global _configured, _settings
    _settings = (level, json_output, log_file)
    _configured = False


def _apply(level: str = "info", json_output: bool | None = None, log_file: str | None = None) -> None:
    global _configured
    import logging   # with the first logger too: `guardian check` of a healthy store never makes one

    import structlog  # ~30 ms, with the first logger: `guardian check` and `status` never make one

    if json_output is None:
        json_output = not sys.stderr.isatty()
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(message)s"))
        handlers.append(file_handler)
    root = logging.getLogger("guardian")
    root.handlers = handlers
    root.setLevel(numeric)
    root.propagate = False
    structlog.configure(
        processors=shared + [renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str = "guardian"):
    import structlog

    if not _configured:
        _apply(*(_settings or (os.environ.get("GUARDIAN_LOG_LEVEL", "warning"),)))
    return structlog.get_logger(name)


LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}   # logging's numbers (not imported)


class LazyLogger:
    """A logger that imports structlog only for a line that will be written: a call below the level
    is dropped without it. For `guardian exec`: with a sidecar vouching for the store it logs only at
    info, below the default level, and importing structlog (and asyncio) was most of its overhead."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger = None

    def _threshold(self) -> int:
        level = (_settings or (os.environ.get("GUARDIAN_LOG_LEVEL", "warning"),))[0]
        return LEVELS.get(str(level).lower(), LEVELS["info"])

    def _log(self, method: str, level: int, event: str, **fields) -> None:
        if self._logger is None:
            if level < self._threshold():
                return
            self._logger = get_logger(self.name)
        getattr(self._logger, method)(event, **fields)

    def debug(self, event: str, **fields) -> None:
        self._log("debug", LEVELS["debug"], event, **fields)

    def info(self, event: str, **fields) -> None:
        self._log("info", LEVELS["info"], event, **fields)

    def warning(self, event: str, **fields) -> None:
        self._log("warning", LEVELS["warning"], event, **fields)

    def error(self, event: str, **fields) -> None:
        self._log("error", LEVELS["error"], event, **fields)

    def critical(self, event: str, **fields) -> None:
        self._log("critical", LEVELS["critical"], event, **fields)
