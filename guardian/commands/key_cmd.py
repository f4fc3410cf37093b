"""guardian key export: print the replica encryption key, to keep somewhere other than this machine."""

from __future__ import annotations

import sys
from pathlib import Path

from guardian.errors import ExitCode, UsageError
from guardian.local.fsutil import atomic_write_text
from guardian.replicas import crypto

HELP = "replica encryption key: `guardian key export` prints it (keep it off this machine)"


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("export",), help="export: print the key")
    parser.add_argument("--key-file", dest="key_file", metavar="FILE",
                        help="the key file (default: replica_key_file, ~/.config/guardian/replica.key)")


def run(args, ctx) -> int:
    if args.action != "export":
        raise UsageError(f"unknown key action {args.action!r}", "use `guardian key export`")
    source = crypto.KeySource.from_environment(args.key_file or ctx.config.replica_key_file)
    path = Path(source.key_file)
    master = crypto.read_key_file(path) if path.exists() else crypto.create_key_file(path)
    sys.stdout.write(crypto.format_key(master))
    sys.stdout.flush()
    atomic_write_text(crypto.exported_marker(path), "exported\n")
    print(f"This is the key of every encrypted replica ({path}). Keep a copy somewhere other than this "
          "machine (a password manager, a printout): without it no encrypted replica can be restored. "
          "On a new machine put it in that file or pass --key-file.", file=sys.stderr)
    return ExitCode.OK
