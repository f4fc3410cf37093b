"""One error hierarchy: every error guardian raises on purpose carries a hint that says what to do.

The CLI prints ``error: <message> (hint: <hint>)`` on one line and exits with ``exit_code``.
"""

from __future__ import annotations


class GuardianError(Exception):
    """Base of every error guardian reports to a user."""

    exit_code = 2
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def one_line(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text.replace("\n", " ")


class UsageError(GuardianError):
    """The command line or a request was malformed."""

    exit_code = 2
    default_hint = "see `guardian --help`"


class ConfigError(GuardianError):
    """The configuration file, environment or flags hold an invalid value; the message names the field."""

    exit_code = 2
    default_hint = "fix the named field in config.toml, the GUARDIAN_* environment or the flag"


class StoreError(GuardianError):
    """The store root cannot be used at all (missing, not a folder, unreadable)."""

    exit_code = 2
    default_hint = "pass --store with the path of contextd's vectorstore folder"


class CodecError(GuardianError):
    """A gob stream (a chromem file) could not be decoded. Carries the file and the reason."""

    exit_code = 3

    def __init__(self, reason: str, path: str | None = None, hint: str | None = None) -> None:
        self.reason = reason
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{reason}", hint)

    def with_path(self, path: str) -> "CodecError":
        return type(self)(self.reason, path, self.hint)


class LockError(GuardianError):
    """Another guardian holds the lock for this store."""

    exit_code = 4
    default_hint = "another guardian is working on this store; wait for it or stop it (guardian status)"


class SnapshotError(GuardianError):
    """Taking, reading or verifying a snapshot failed."""

    exit_code = 5
    default_hint = "run `guardian verify` to see which snapshots are affected"


class RestoreError(GuardianError):
    """A restore was refused or failed; the store was left as it was."""

    exit_code = 5


class RepairError(GuardianError):
    """A repair could not be planned or applied."""

    exit_code = 5


class QueryError(GuardianError):
    """A query was malformed (HTTP 4xx); ``status`` is the HTTP status to answer with."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, status: int = 400) -> None:
        super().__init__(message, hint)
        self.status = status


class SupervisorError(GuardianError):
    """The supervised child could not be started or controlled."""

    exit_code = 6
