"""guardian key export: the replica encryption key, to keep somewhere other than this machine.

``-o FILE`` writes it 0600, atomically, and never over an existing file without ``--force``: a
shell's ``> file`` would create it under the usual umask, readable by every user of the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from guardian.commands.output import write_user_file
from guardian.errors import ExitCode, UsageError
from guardian.local.fsutil import atomic_write_text
from guardian.replicas import crypto

HELP = "replica encryption key: `guardian key export -o FILE` writes it, 0600 (keep it off this machine)"
KEY_FILE_MODE = 0o600


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("export",), help="export: write the key to -o FILE (or print it)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the key to this new file, readable only by you (0600); default: stdout")
    parser.add_argument("--force", action="store_true", help="with -o: replace FILE if it exists")
    parser.add_argument("--key-file", dest="key_file", metavar="FILE",
                        help="the key file (default: replica_key_file, ~/.config/guardian/replica.key)")


def run(args, ctx) -> int:
    if args.action != "export":
        raise UsageError(f"unknown key action {args.action!r}", "use `guardian key export -o FILE`")
    if args.force and not args.output:
        raise UsageError("--force only applies to -o FILE", "use `guardian key export -o FILE --force`")
    source = crypto.KeySource.from_environment(args.key_file or ctx.config.replica_key_file)
    path = Path(source.key_file)
    master = crypto.read_key_file(path) if path.exists() else crypto.create_key_file(path)
    text = crypto.format_key(master)
    if args.output:
        write_user_file(args.output, text.encode("ascii"), option="-o", mode=KEY_FILE_MODE,
                        overwrite=args.force, into_devices=False)
        print(f"wrote the replica key to {args.output} (mode 0600)", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    atomic_write_text(crypto.exported_marker(path), "exported\n")
    print(f"This is the key of every encrypted replica ({path}). Keep a copy somewhere other than this "
          "machine (a password manager, a printout): without it no encrypted replica can be restored. "
          "On a new machine put it in that file or pass --key-file.", file=sys.stderr)
    return ExitCode.OK
