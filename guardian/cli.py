"""The thin command line: parse, build a :class:`Context`, dispatch to ``guardian.commands.<name>``.

Each command module exposes ``HELP``, ``add_arguments(parser)`` and ``run(args, ctx) -> int``.
Errors become one line on stderr and an exit code; nothing here knows what a command does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from functools import cached_property

from guardian import __version__
from guardian.config import Config, load_config
from guardian.errors import ExitCode, GuardianError
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


def chosen_command(argv: list[str]) -> str | None:
    """The command named on the command line, so only its module is imported (fast start-up)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardian",
        description="Keeps a chromem-go vector store (contextd's) loadable, snapshotted and searchable.",
    )
    parser.add_argument("--version", action="version", version=f"guardian {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", help="the chromem store root (default: contextd's ~/.config/contextd/vectorstore)")
    common.add_argument("--state-dir", dest="state_dir",
                        help="guardian's state folder (default: $XDG_STATE_HOME/guardian)")
    common.add_argument("--config", help="config file (default: $XDG_CONFIG_HOME/guardian/config.toml)")
    common.add_argument("--compress", choices=("auto", "true", "false"),
                        help="the store's compression as chromem is configured (default: detect)")
    common.add_argument("--log-level", dest="log_level", choices=("debug", "info", "warning", "error"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        try:
            module = command_module(name)
        except ModuleNotFoundError as exc:  # a command not built yet is simply not offered
            if exc.name != f"guardian.commands.{name}_cmd":
                raise
            continue
        cmd_parser = sub.add_parser(name, help=module.HELP, description=module.HELP, parents=[common])
        module.add_arguments(cmd_parser)
        cmd_parser.set_defaults(handler=module.run)
    return parser


def make_context(args: argparse.Namespace) -> Context:
    overrides = {
        "store": getattr(args, "store", None),
        "state_dir": getattr(args, "state_dir", None),
        "compress": getattr(args, "compress", None),
        "log_level": getattr(args, "log_level", None),
    }
    config = load_config(getattr(args, "config", None), overrides=overrides)
    return Context(config=config)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        ctx = make_context(args)
        from guardian import logs

        logs.configure(level=ctx.config.log_level if args.log_level else "warning",
                       log_file=ctx.config.log_file or None)
        return int(args.handler(args, ctx) or ExitCode.OK)
    except GuardianError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # a bug: still one line, never a traceback
        print(f"error: internal error {type(exc).__name__}: {exc} "
              "(hint: run again with GUARDIAN_DEBUG=1 for details and report it)", file=sys.stderr)
        import os

        if os.environ.get("GUARDIAN_DEBUG"):
            raise
        return ExitCode.INTERNAL
