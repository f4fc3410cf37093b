"""guardian install: write the systemd user unit or launchd agent that runs `guardian run` at login.

The service must guard the store the user has, with state that outlives a reboot, and start a
child it can find. A service manager starts in its own working folder with a minimal PATH, so
every path goes into the file absolute and the child's program is resolved now. What would make
the service guard nothing (a store that does not exist) or lose its snapshots (a state dir in a
temporary folder) is said, and refused unless --force; a child that cannot be found is refused
(exit 127): pass its full path. ``--dry-run`` prints the file, then makes the same checks and
exits as the install would, having written nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from guardian.errors import ExitCode, NotRunnable, Refused, UsageError
from guardian.local.fsutil import atomic_write, durable_move, ensure_dir
from guardian.local.paths import state_root
from guardian.runtime import service_files as service
from guardian.words import count

HELP = "write a systemd user unit or launchd agent that runs `guardian run` (and CMD) at login"
PUBLIC_DIR = 0o755
PUBLIC_FILE = 0o644
# Folders emptied at reboot, at logout (XDG_RUNTIME_DIR) or by age: no place for snapshots.
TEMPORARY_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm", "/private/tmp", "/private/var/tmp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--systemd", dest="kind", action="store_const", const=service.SYSTEMD,
                      help="write a systemd user unit (default on Linux)")
    kind.add_argument("--launchd", dest="kind", action="store_const", const=service.LAUNCHD,
                      help="write a launchd agent plist (default on macOS)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the file and where it would go, then check as an install would; write nothing")
    parser.add_argument("--force", action="store_true",
                        help="install even for a store that does not exist yet or a state dir in a temporary "
                             "folder; replace an existing, different service file (the old one is kept as a .bak)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD",
                        help="the command guardian supervises, e.g. -- contextd --mcp")


@dataclass(frozen=True)
class Setup:
    """What the service will run, every path absolute: the store, the state dir (None: the
    default, which the service works out as this shell does), the config and the child."""

    store: str
    state_dir: str | None
    config: str | None
    child: list[str]
    child_given: list[str]
    child_found: bool

    def guardian_options(self) -> list[str]:
        """``--store`` (and ``--state-dir``, ``--config``) as the unit and the MCP entry both pass them."""
        options = ["--store", self.store]
        if self.state_dir:
            options += ["--state-dir", self.state_dir]
        if self.config:
            options += ["--config", self.config]
        return options


def absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def given_command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.cmd or [])
    return cmd[1:] if cmd and cmd[0] == "--" else cmd


def resolve_program(program: str, which=shutil.which) -> str | None:
    """The program's absolute path now (on this shell's PATH, or as given with a folder), or None
    when there is no executable file there."""
    if os.sep in program or program.startswith("~"):
        found = absolute(program)
        return found if os.path.isfile(found) and os.access(found, os.X_OK) else None
    found = which(program)
    return os.path.abspath(found) if found else None


def make_setup(args: argparse.Namespace, ctx) -> Setup:
    """The state dir is written into the file when it is not the default, or when this shell moves
    the default (XDG_STATE_HOME): the service, started without this shell's environment, must use
    the same one."""
    explicit = ctx.config.state_dir or (os.environ.get("XDG_STATE_HOME") and str(state_root()))
    given = given_command(args)
    resolved = resolve_program(given[0]) if given else None
    return Setup(store=absolute(str(ctx.config.store_path)),
                 state_dir=absolute(explicit) if explicit else None,
                 config=absolute(args.config) if getattr(args, "config", None) else None,
                 child=[resolved or given[0], *given[1:]] if given else [], child_given=given,
                 child_found=resolved is not None)


def temporary_folder_of(path: str, environ=os.environ) -> str | None:
    """The temporary folder ``path`` lies in (/tmp, $TMPDIR, $XDG_RUNTIME_DIR ...), or None."""
    real = os.path.realpath(path)
    roots = {*TEMPORARY_FOLDERS, tempfile.gettempdir(), environ.get("TMPDIR") or "/tmp",
             environ.get("XDG_RUNTIME_DIR") or "/tmp"}
    for root in sorted(roots, key=len, reverse=True):   # the narrowest folder named
        root_real = os.path.realpath(root)
        if real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep):
            return root
    return None


def problems(setup: Setup) -> list[str]:
    """What would make the service guard nothing or lose what it keeps (refused without --force)."""
    found = []
    if not os.path.isdir(setup.store):
        what = "is not a folder" if os.path.lexists(setup.store) else "does not exist"
        found.append(f"the store {setup.store} {what}: the service would guard nothing there "
                     "(start contextd once so it creates its store, or pass --store with the folder it uses)")
    folder = temporary_folder_of(setup.state_dir) if setup.state_dir else None
    if folder:
        found.append(f"the state dir {setup.state_dir} is in {folder}, a temporary folder: the snapshots "
                     "would be lost with it (pass --state-dir with a lasting folder, or leave it out for "
                     "the default ~/.local/state/guardian)")
    return found


def check(setup: Setup, force: bool, dry_run: bool) -> None:
    """Each problem as a warning; then refuse (nothing written) unless --force, and refuse a child
    that cannot be found (a service that cannot start it helps nobody: pass its full path)."""
    found = problems(setup)
    for problem in found:
        print(f"warning: {problem}", file=sys.stderr)
    nothing = "this dry run wrote nothing" if dry_run else "nothing was written"
    if setup.child_given and not setup.child_found:
        program = setup.child_given[0]
        where = "is not an executable file" if os.sep in program else "is not on this shell's PATH"
        raise NotRunnable(f"the child command {program} {where}; the service could not start it; {nothing}",
                          f"pass its full path, e.g. -- ~/go/bin/{os.path.basename(program)} ...")
    if found and not force:
        raise Refused(f"install refused for the {count(len(found), 'problem')} above; {nothing}",
                      "fix them, or pass --force to install anyway")


def say_how_the_child_is_found(setup: Setup) -> None:
    """The child's program is resolved now, on this shell's PATH: say to what."""
    if not setup.child_given or setup.child[0] == setup.child_given[0]:
        return
    if os.sep in setup.child_given[0]:
        print(f"child command: {setup.child[0]}", file=sys.stderr)
    else:
        print(f"child command: {setup.child_given[0]} resolved now to {setup.child[0]} (the service manager's "
              "PATH is minimal; the unit also carries this shell's PATH)", file=sys.stderr)


def run_arguments(setup: Setup) -> list[str]:
    """The `guardian run ...` the service starts."""
    argv = service.guardian_executable() + ["run", *setup.guardian_options()]
    return argv + ["--", *setup.child] if setup.child else argv


def mcp_client_config(setup: Setup) -> str:
    """The MCP client entry that runs contextd through `guardian mcp`, on the unit's store and state
    (pasteable JSON). contextd is the child's program when the child is contextd, else contextd
    as found on this PATH."""
    contextd = setup.child[0] if setup.child and os.path.basename(setup.child[0]) == "contextd" else \
        resolve_program("contextd") or "contextd"
    args = service.guardian_executable() + ["mcp", *setup.guardian_options(), "--", contextd, "--mcp"]
    entry = {"mcpServers": {"contextd": {"command": args[0], "args": args[1:]}}}
    return json.dumps(entry, indent=2)


def print_mcp_hint(setup: Setup, prefix: str = "") -> None:
    print(f"{prefix}MCP clients: run contextd through guardian (it answers searches while contextd is down):")
    for line in mcp_client_config(setup).splitlines():
        print(f"{prefix}  {line}")


def run(args: argparse.Namespace, ctx) -> int:
    kind = args.kind or service.default_kind()
    setup = make_setup(args, ctx)
    say_how_the_child_is_found(setup)
    home = Path(os.path.expanduser("~"))
    plan = service.plan_service(kind, run_arguments(setup), home, os.environ, os.getuid(),
                                stop_timeout=ctx.config.stop_timeout)
    if args.dry_run:
        print(f"# {plan.kind} service file: {plan.path} (dry run, nothing written)")
        sys.stdout.write(plan.content.decode("utf-8"))
        print("# then enable it with:")
        for command in plan.enable_commands:
            print(command)
        print_mcp_hint(setup, prefix="# ")
        sys.stdout.flush()
        check(setup, args.force, dry_run=True)
        return ExitCode.OK
    check(setup, args.force, dry_run=False)
    status = write_service_file(plan, force=args.force)
    if kind == service.LAUNCHD:
        ensure_dir(service.launchd_log_dir(home), PUBLIC_DIR)
    print(f"{status} {plan.path}")
    print("enable it with:")
    for command in plan.enable_commands:
        print(f"  {command}")
    if kind == service.SYSTEMD:
        print("to keep it running while you are logged out: loginctl enable-linger $USER")
    print_mcp_hint(setup)
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
