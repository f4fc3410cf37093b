"""The thin command line: parse, build a :class:`Context`, dispatch to ``guardian.commands.<name>``.

Each command module exposes ``HELP``, ``add_arguments(parser)`` and ``run(args, ctx) -> int``.
Errors become one line on stderr and an exit code (under ``--json`` also an object on stdout:
scripts read stdout); nothing here knows what a command does.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from functools import cached_property

from guardian import __version__
from guardian.config import Config, load_config
from guardian.errors import ConfigError, ExitCode, GuardianError, UsageError
from guardian.local.paths import StatePaths

COMMANDS = (
    "check", "export", "snapshot", "snapshots", "restore", "verify", "quarantine",
    "run", "exec", "mcp", "status", "restart", "serve", "query", "install", "replicate", "key",
)


@dataclass
class Context:
    """What every command gets: the validated config and the state paths of its store."""

    config: Config

    @cached_property
    def paths(self) -> StatePaths:
        return StatePaths.for_store(self.config.store_path, self.config.state_dir or None)


def command_module(name: str):
    return importlib.import_module(f"guardian.commands.{name.replace('-', '_')}_cmd")


def given_path(text: str) -> str:
    """A path option's value: an empty one is refused (Python reads "" as the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not allowed (it would mean the current folder); "
                                         "leave the option out for the default")
    return text


# Options every command takes; they may come before the command too (`guardian --store X check`).
GLOBAL_OPTIONS = (
    (("--store",), {"type": given_path,
                    "help": "the chromem store root (default: contextd's ~/.config/contextd/vectorstore)"}),
    (("--state-dir",), {"dest": "state_dir", "type": given_path,
                        "help": "guardian's state folder (default: $XDG_STATE_HOME/guardian)"}),
    (("--config",), {"type": given_path, "help": "config file (default: $XDG_CONFIG_HOME/guardian/config.toml)"}),
    (("--compress",), {"choices": ("auto", "true", "false"),
                       "help": "the store's compression as chromem is configured (default: detect)"}),
    (("--log-level",), {"dest": "log_level", "choices": ("debug", "info", "warning", "error")}),
)
VALUE_OPTIONS = frozenset(flag for flags, _ in GLOBAL_OPTIONS for flag in flags)


# Options whose value may start with "-": `--at -5m` (five minutes ago) is read as `--at=-5m`
# (argparse would take "-5m" for an unknown option and say --at lacks its argument).
DASH_VALUE_OPTIONS = frozenset({"--at"})


def join_dash_values(argv: list[str]) -> list[str]:
    """``--at -5m`` -> ``--at=-5m`` (a value "-" and a digit); nothing after ``--`` (a child's own
    arguments) is touched, and ``--at --json`` still says --at lacks its value."""
    joined, i = [], 0
    while i < len(argv):
        arg, value = argv[i], argv[i + 1] if i + 1 < len(argv) else ""
        if arg == "--":
            return joined + argv[i:]
        if arg in DASH_VALUE_OPTIONS and value[:1] == "-" and value[1:2].isascii() and value[1:2].isdigit():
            joined.append(f"{arg}={value}")
            i += 2
            continue
        joined.append(arg)
        i += 1
    return joined


def json_wanted(argv: list[str]) -> bool:
    """Was ``--json`` given (before any ``--``)? Then errors are a JSON object on stdout too."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


class BadArguments(UsageError):
    """argparse refused the command line: printed as argparse does (usage, then the error)."""

    def __init__(self, message: str, usage: str, prog: str) -> None:
        super().__init__(message, f"see `{prog} --help`")
        self.usage, self.prog = usage, prog

    def one_line(self) -> str:
        return f"{self.usage}{self.prog}: error: {self.message}"


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are raised (so ``main`` reports them like any other, also as
    JSON under ``--json``) instead of printed and exited on the spot."""

    def error(self, message: str):
        raise BadArguments(message, self.format_usage(), self.prog)


def chosen_command(argv: list[str]) -> str | None:
    """The command named on the command line (after any global options and their values),
    so only its module is imported (fast start-up); None when there is none or it is unknown."""
    word = command_word(argv)
    return word if word in COMMANDS else None


def command_word(argv: list[str]) -> str | None:
    """The first word that is neither an option nor a global option's value."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--":
            return None
        if arg.startswith("-"):
            skip = arg in VALUE_OPTIONS  # `--store X`; `--store=X` carries its own value
            continue
        return arg
    return None


def suggest_command(word: str) -> str:
    """`did you mean ...` for a mistyped command (prefixes first: `snap` -> snapshot, snapshots)."""
    matches = [name for name in COMMANDS if name.startswith(word.lower())]
    import difflib

    matches = matches or difflib.get_close_matches(word.lower(), COMMANDS, n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(m) for m in matches)}?" if matches else "see `guardian --help`"


def add_global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """On a command's parser the defaults are SUPPRESSed, so a value given before the command
    is not overwritten by the command's own (absent) option."""
    for flags, options in GLOBAL_OPTIONS:
        parser.add_argument(*flags, **options, **({"default": argparse.SUPPRESS} if suppress else {}))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="guardian",
        description="Keeps a chromem-go vector store (contextd's) loadable, snapshotted and searchable.",
    )
    parser.add_argument("--version", action="version", version=f"guardian {__version__}")
    add_global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.command_parsers = {}
    for name in COMMANDS if only is None else (only,):
        try:
            module = command_module(name)
        except ModuleNotFoundError as exc:  # a command not built yet is simply not offered
            if exc.name != f"guardian.commands.{name}_cmd":
                raise
            continue
        cmd_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        add_global_options(cmd_parser, suppress=True)
        module.add_arguments(cmd_parser)
        cmd_parser.set_defaults(handler=module.run)
        parser.command_parsers[name] = cmd_parser
    return parser


def parse_arguments(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse; an unknown command gets a suggestion, an unknown option the usage of its command."""
    word = command_word(argv)
    parser = build_parser(chosen_command(argv))
    if word is not None and word not in COMMANDS:
        parser.error(f"unknown command {word!r}: {suggest_command(word)}")
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner = parser.command_parsers.get(getattr(args, "command", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return parser, args


def make_context(args: argparse.Namespace) -> Context:
    overrides = {
        "store": getattr(args, "store", None),
        "state_dir": getattr(args, "state_dir", None),
        "compress": getattr(args, "compress", None),
        "log_level": getattr(args, "log_level", None),
    }
    config = load_config(getattr(args, "config", None), overrides=overrides)
    if not config.store.strip():
        raise ConfigError("the store path is empty (GUARDIAN_STORE or `store` in config.toml): it would mean "
                          "the current folder", "set it to contextd's vectorstore folder, or unset it for the default")
    return Context(config=config)


SOCKET_ACTIVATION_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def forget_inherited_socket_activation() -> None:
    """Drop systemd's socket-activation variables before anything can read them.

    guardian is never socket-activated, so a LISTEN_PID it sees was meant for some ancestor (a
    shell started from an activated unit passes it on). cheroot trusts any LISTEN_PID and serves
    on fd 3, whatever that is in this process, instead of binding guardian's own address; the
    child would inherit the same wrong promise. sd_listen_fds() unsets them for the same reason.
    """
    for name in SOCKET_ACTIVATION_VARIABLES:
        os.environ.pop(name, None)


def main(argv: list[str] | None = None) -> int:
    argv = join_dash_values(sys.argv[1:] if argv is None else argv)
    forget_inherited_socket_activation()
    as_json = json_wanted(argv)
    try:
        parser, args = parse_arguments(argv)
    except GuardianError as exc:
        return report(exc, as_json)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    ctx = None
    try:
        ctx = make_context(args)
        from guardian import logs

        logs.configure(level=ctx.config.log_level if args.log_level else "warning",
                       log_file=ctx.config.log_file or None)
        return int(args.handler(args, ctx) or ExitCode.OK)
    except GuardianError as exc:
        return report(exc, as_json)
    except KeyboardInterrupt:
        return report(Interrupted("interrupted", ""), as_json)
    except BrokenPipeError:
        return ExitCode.OK
    except OSError as exc:
        state = state_dir_failure(ctx, exc)
        return report(state if state is not None else internal_error(exc), as_json)
    except Exception as exc:  # a bug: still one line, never a traceback
        return report(internal_error(exc), as_json)


class Interrupted(GuardianError):
    exit_code = ExitCode.INTERRUPTED

    def one_line(self) -> str:
        return self.message


class InternalError(GuardianError):
    """A bug in guardian: the exception's name and text, and how to see its traceback."""

    exit_code = ExitCode.INTERNAL
    default_hint = "run again with GUARDIAN_DEBUG=1 for details and report it"


def report(error: GuardianError, as_json: bool) -> int:
    """One line on stderr; under --json also ``{"error", "hint", "exit_code"}`` on stdout."""
    print(error.one_line(), file=sys.stderr)
    if as_json:
        import json

        try:
            sys.stdout.write(json.dumps({"error": error.message, "hint": error.hint or None,
                                        "exit_code": int(error.exit_code)}, indent=2) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):   # nobody reads stdout (or it is closed): the code still says it
            pass
    if isinstance(error, InternalError) and os.environ.get("GUARDIAN_DEBUG"):
        raise error.__cause__ or error
    return error.exit_code


def state_dir_failure(ctx: Context | None, exc: OSError):
    """An OSError on a path in guardian's state dir (read-only, not ours, full) is the user's to fix:
    a StateDirError naming the path. Anything else stays an internal error."""
    if ctx is None or not exc.filename:
        return None
    try:
        paths = ctx.paths
    except GuardianError:
        return None
    if not paths.owns(exc.filename):
        return None
    from guardian.local.paths import state_dir_error

    return state_dir_error(exc, paths.root)


def internal_error(exc: BaseException) -> InternalError:
    error = InternalError(f"internal error {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
