"""One error hierarchy: every error guardian raises on purpose carries a hint that says what to do.

The CLI prints ``error: <message> (hint: <hint>)`` on one line and exits with ``exit_code``, one
of :class:`ExitCode` -- the one list of guardian's exit codes (README's exit-code table mirrors it).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code of every command. Scripts and monitoring rely on these: never renumber."""

    OK = 0
    WARNINGS = 1        # done, with warnings (check, status), problems found (verify), a restore left it unloadable
    USAGE = 2           # bad flags, configuration, store path or request
    UNLOADABLE = 3      # chromem would refuse the store (check, status) or a file cannot be decoded
    CHILD_FATAL = 4     # status: the supervised child is FATAL (restarts stopped)
    FAILED = 5          # a snapshot, restore or repair failed (the store was left as it was)
    SUPERVISOR = 6      # the child could not be started or controlled; no sidecar answers (restart)
    LOCKED = 7          # another guardian (a sidecar, a repair) holds this store's lock
    REPLICA = 8         # a replica is unusable: unreachable, credentials refused, bucket missing, full or
                        # read-only, tampered object, wrong key (nothing local was changed)
    STATE_DIR = 9       # guardian's state dir cannot be created or written (permissions, read-only, full)
    INTERNAL = 70       # a bug in guardian (EX_SOFTWARE); GUARDIAN_DEBUG=1 shows the traceback
    NOT_RUNNABLE = 127  # exec: the command cannot be run (as a shell says)
    INTERRUPTED = 130   # Ctrl-C (128 + SIGINT)


class GuardianError(Exception):
    """Base of every error guardian reports to a user."""

    exit_code = ExitCode.USAGE
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

    exit_code = ExitCode.USAGE
    default_hint = "see `guardian --help`"


class ConfigError(GuardianError):
    """The configuration file, environment or flags hold an invalid value; the message names the field."""

    exit_code = ExitCode.USAGE
    default_hint = "fix the named field in config.toml, the GUARDIAN_* environment or the flag"


class StateDirError(GuardianError):
    """guardian's own state dir (outside the store) cannot be written: the message names the path."""

    exit_code = ExitCode.STATE_DIR
    default_hint = ("fix its permissions or free space, or pass --state-dir DIR (GUARDIAN_STATE_DIR); "
                    "check, status, snapshots, verify, query and export still work without writing it")


class NoStoreYet(GuardianError):
    """The store folder does not exist yet. Normal on a new machine: contextd creates it on first start."""

    exit_code = ExitCode.WARNINGS   # a warning, as `check` and `status` give for store_missing
    default_hint = "start contextd once (it creates the store), or pass --store with the right folder"

    def one_line(self) -> str:
        return "warning" + super().one_line()[len("error"):]


class StoreError(GuardianError):
    """The store root cannot be used at all (missing, not a folder, unreadable)."""

    exit_code = ExitCode.USAGE
    default_hint = "pass --store with the path of contextd's vectorstore folder"


class CodecError(GuardianError):
    """A gob stream (a chromem file) could not be decoded. Carries the file and the reason."""

    exit_code = ExitCode.UNLOADABLE

    def __init__(self, reason: str, path: str | None = None, hint: str | None = None) -> None:
        self.reason = reason
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{reason}", hint)

    def with_path(self, path: str) -> "CodecError":
        return type(self)(self.reason, path, self.hint)


class LockError(GuardianError):
    """Another guardian holds the lock for this store."""

    exit_code = ExitCode.LOCKED
    default_hint = "another guardian is working on this store; wait for it or stop it (guardian status)"


class SnapshotError(GuardianError):
    """Taking, reading or verifying a snapshot failed."""

    exit_code = ExitCode.FAILED
    default_hint = "run `guardian verify` to see which snapshots are affected"


class RestoreError(GuardianError):
    """A restore was refused or failed; the store was left as it was."""

    exit_code = ExitCode.FAILED


class RepairError(GuardianError):
    """A repair could not be planned or applied."""

    exit_code = ExitCode.FAILED


class QueryError(GuardianError):
    """A query was malformed (HTTP 4xx); ``status`` is the HTTP status to answer with."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, hint: str | None = None, status: int = 400) -> None:
        super().__init__(message, hint)
        self.status = status


class SupervisorError(GuardianError):
    """The supervised child could not be started or controlled."""

    exit_code = ExitCode.SUPERVISOR


class ReplicaError(GuardianError):
    """A replica (S3 bucket or folder on another disk) could not be used; nothing local was changed."""

    exit_code = ExitCode.REPLICA
    default_hint = "check the replica URL, its credentials and that it is reachable (guardian replicate)"
