"""One error hierarchy: every error guardian raises on purpose carries a hint that says what to do.

The CLI prints ``error: <message> (hint: <hint>)`` on one line (under ``--json`` also the object
``{"error", "hint", "exit_code"}`` on stdout) and exits with ``exit_code``, one of
:class:`ExitCode` -- the one list of guardian's exit codes (README's exit-code table mirrors it).

The rule every command follows: the code says what to do next, not how far guardian got.

- 2 (``USAGE``): change the request. guardian refused it before changing anything -- a bad flag,
  value, configuration or store path, a time no snapshot matches, a ``--target`` that is not
  empty, a step that needs ``--force`` or ``--replace``, a quarantined file chromem would refuse,
  an output file that cannot be created. Asking again the same way gets 2 again. Raise
  :class:`UsageError`, :class:`ConfigError`, :class:`StoreError` or :class:`Refused`.
- 5 (``FAILED``): fix the cause and run it again. guardian started the work and could not finish
  (an I/O error, a full disk, damaged snapshot data); what it was writing was left as it was.
  Raise :class:`SnapshotError`, :class:`RestoreError`, :class:`RepairError` or :class:`OutputError`.
- The others name their cause: 3 the store (chromem would refuse it), 4 the child, 6 the
  supervisor, 7 another guardian, 8 a replica, 9 guardian's own state dir, 127 a command that
  cannot be found, 130 Ctrl-C, 70 a bug (never raised on purpose).
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code of every command. Scripts and monitoring rely on these: never renumber."""

    OK = 0
    WARNINGS = 1        # done, with warnings (check, status), problems found (verify), a restore left it unloadable
    USAGE = 2           # change the request: refused before anything changed (bad flags, configuration,
                        # store path, a time no snapshot matches, a step that needs --force ...)
    UNLOADABLE = 3      # chromem would refuse the store (check, status) or a file cannot be decoded
    CHILD_FATAL = 4     # status: the supervised child is FATAL (restarts stopped)
    FAILED = 5          # started and could not finish: a snapshot, restore, repair or output file failed
                        # (I/O error, full disk, damaged snapshot data); what it wrote was left as it was
    SUPERVISOR = 6      # the child could not be started or controlled; no sidecar answers (restart)
    LOCKED = 7          # another guardian (a sidecar, a repair) holds this store's lock
    REPLICA = 8         # a replica is unusable: unreachable, credentials refused, bucket missing, full or
                        # read-only, tampered object, wrong key (nothing local was changed)
    STATE_DIR = 9       # guardian's state dir cannot be created or written (permissions, read-only, full)
    INTERNAL = 70       # a bug in guardian (EX_SOFTWARE); GUARDIAN_DEBUG=1 shows the traceback
    NOT_RUNNABLE = 127  # exec, install: the command cannot be found or run (as a shell says)
    INTERRUPTED = 130   # Ctrl-C (128 + SIGINT)


# What an OSError on a path the user named means: one of these, that the path cannot be used as
# given (pick another: exit 2); any other (a full disk, an I/O error), that the write failed (5).
PATH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                         errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST})


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


class Refused(GuardianError):
    """guardian would not do what was asked, as asked: nothing was changed, and the hint says what
    to change (a flag such as --force or --replace, another --at or --target). Not a failure."""

    exit_code = ExitCode.USAGE


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
    """A restore started and failed; the store was left as it was. (A refused one is :class:`Refused`.)"""

    exit_code = ExitCode.FAILED


class RepairError(GuardianError):
    """A repair could not be planned or applied."""

    exit_code = ExitCode.FAILED


class OutputError(GuardianError):
    """A file the user asked for (``export -o``, ``key export -o``) could not be written to the end
    (a full disk, an I/O error); nothing partial was left behind."""

    exit_code = ExitCode.FAILED
    default_hint = "free some space on that disk or pick another file, then run it again"


class QueryError(GuardianError):
    """A query was malformed (HTTP 4xx); ``status`` is the HTTP status to answer with."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, hint: str | None = None, status: int = 400) -> None:
        super().__init__(message, hint)
        self.status = status


class SupervisorError(GuardianError):
    """The supervised child could not be started or controlled."""

    exit_code = ExitCode.SUPERVISOR


class NotRunnable(GuardianError):
    """A command guardian is to run (or write into a service file) cannot be found or run."""

    exit_code = ExitCode.NOT_RUNNABLE
    default_hint = "check the command and PATH, or pass its full path"


class ReplicaError(GuardianError):
    """A replica (S3 bucket or folder on another disk) could not be used; nothing local was changed."""

    exit_code = ExitCode.REPLICA
    default_hint = "check the replica URL, its credentials and that it is reachable (guardian replicate)"
