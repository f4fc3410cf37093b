"""guardian install: write the systemd user unit or launchd agent that runs `guardian run` at login."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from guardian.runtime import service_files as service
from guardian.errors import ExitCode, UsageError
from guardian.local.fsutil import atomic_write, durable_move, ensure_dir

HELP = "write a systemd user unit or launchd agent that runs `guardian run` (and CMD) at login"
PUBLIC_DIR = 0o755
PUBLIC_FILE = 0o644


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--systemd", dest="kind", action="store_const", const=service.SYSTEMD,
                      help="write a systemd user unit (default on Linux)")
    kind.add_argument("--launchd", dest="kind", action="store_const", const=service.LAUNCHD,
                      help="write a launchd agent plist (default on macOS)")
    parser.add_argument("--dry-run", action="store_true", help="print the file and where it would go; write nothing")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing, different service file (the old one is kept as a .bak)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD",
                        help="the command guardian supervises, e.g. -- contextd --mcp")


def given_command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.cmd or [])
    return cmd[1:] if cmd and cmd[0] == "--" else cmd


def child_command(args: argparse.Namespace) -> list[str]:
    return service.resolve_child_command(given_command(args))


def say_how_the_child_is_found(args: argparse.Namespace) -> None:
    """The child's program is resolved now, on this shell's PATH: say to what (or that it is not found)."""
    given, resolved = given_command(args), child_command(args)
    if not given:
        return
    if os.sep in given[0]:
        print(f"child command: {given[0]} (as given)", file=sys.stderr)
    elif resolved[0] != given[0]:
        print(f"child command: {given[0]} resolved now to {resolved[0]} (the service manager's PATH is "
              "minimal; the unit also carries this shell's PATH)", file=sys.stderr)
    else:
        print(f"warning: {given[0]} is not on this shell's PATH; the service will not find it either "
              f"(hint: pass its full path, e.g. -- ~/go/bin/{given[0]} ...)", file=sys.stderr)


def store_arguments(ctx) -> list[str]:
    """``--store`` (and ``--compress``) as given to guardian now; none when they are contextd's: the service
    then reads contextd's configuration when it starts, as the contextd it starts does."""
    origin = ctx.config.origin
    argv = ["--store", str(ctx.config.store_path)] if origin.store in ("flag", "env", "guardian config") else []
    if origin.compress in ("flag", "env"):
        argv += ["--compress", ctx.config.compress]
    return argv


def run_arguments(args: argparse.Namespace, ctx) -> list[str]:
    """The `guardian run ...` arguments the service uses: the same store/state/config as now."""
    argv = service.guardian_executable() + ["run", *store_arguments(ctx)]
    if ctx.config.state_dir:
        argv += ["--state-dir", os.path.abspath(os.path.expanduser(ctx.config.state_dir))]
    if getattr(args, "config", None):
        argv += ["--config", os.path.abspath(os.path.expanduser(args.config))]
    cmd = child_command(args)
    if cmd:
        argv += ["--", *cmd]
    return argv


def mcp_client_config(ctx) -> str:
    """The MCP client entry that runs contextd through `guardian mcp` (pasteable JSON)."""
    args = service.guardian_executable() + ["mcp", *store_arguments(ctx), "--", "contextd", "--mcp"]
    entry = {"mcpServers": {"contextd": {"command": args[0], "args": args[1:]}}}
    return json.dumps(entry, indent=2)


def print_mcp_hint(ctx, prefix: str = "") -> None:
    print(f"{prefix}MCP clients: run contextd through guardian (it answers searches while contextd is down):")
    for line in mcp_client_config(ctx).splitlines():
        print(f"{prefix}  {line}")


def run(args: argparse.Namespace, ctx) -> int:
    kind = args.kind or service.default_kind()
    say_how_the_child_is_found(args)
    home = Path(os.path.expanduser("~"))
    plan = service.plan_service(kind, run_arguments(args, ctx), home, os.environ, os.getuid(),
                                stop_timeout=ctx.config.stop_timeout)
    if args.dry_run:
        print(f"# {plan.kind} service file: {plan.path} (dry run, nothing written)")
        sys.stdout.write(plan.content.decode("utf-8"))
        print("# then enable it with:")
        for command in plan.enable_commands:
            print(command)
        print_mcp_hint(ctx, prefix="# ")
        return ExitCode.OK
    status = write_service_file(plan, force=args.force)
    if kind == service.LAUNCHD:
        ensure_dir(service.launchd_log_dir(home), PUBLIC_DIR)
    print(f"{status} {plan.path}")
    print("enable it with:")
    for command in plan.enable_commands:
        print(f"  {command}")
    if kind == service.SYSTEMD:
        print("to keep it running while you are logged out: loginctl enable-linger $USER")
    print_mcp_hint(ctx)
    return ExitCode.OK


def write_service_file(plan: service.ServiceFile, force: bool) -> str:
    """Write atomically; an existing different file is kept as .bak (with --force) or refused."""
    path = plan.path
    if path.exists():
        if path.read_bytes() == plan.content:
            return "unchanged"
        if not force:
            raise UsageError(f"{path} already exists with different content",
                             "compare with --dry-run, then pass --force (the old file is kept as a .bak)")
        durable_move(path, path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak"))
    ensure_dir(path.parent, PUBLIC_DIR)
    atomic_write(path, plan.content, mode=PUBLIC_FILE)
    return "replaced" if force else "wrote"
