"""guardian quarantine: list what guardian took out of the store, or put an entry back."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from guardian.commands.output import format_table, human_bytes, print_json
from guardian.errors import CodecError, ExitCode, Refused, RestoreError, UsageError
from guardian.format.layout import EXTENSIONS, METADATA_STEM
from guardian.local import storefs
from guardian.local.lock import store_lock
from guardian.local.quarantine import Quarantine, QuarantineEntry

HELP = "list quarantined files (`list`) or put one back (`restore ID`) if the store stays loadable"
SETTLE_SECONDS = 2.0  # a file changed more recently may be a write in progress


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("list", "restore"), help="list entries, or restore one")
    parser.add_argument("id", nargs="?", help="the entry id (for restore)")
    parser.add_argument("--replace", action="store_true",
                        help="with restore: if the path exists in the store, move that one to quarantine first")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _is_gob(name: str) -> bool:
    return name.endswith(EXTENSIONS)


def check_file(path: Path) -> None:
    """Refuse a chromem file that chromem could not decode (CodecError -> Refused: leave it in quarantine)."""
    from guardian.format import chromem  # the decoder (~0.1 s): only `quarantine restore` of a chromem file

    if not _is_gob(path.name):
        return
    try:
        data = storefs.read_regular(path, limit=chromem.MAX_FILE_BYTES + 1, prefix=True)
    except storefs.NotRegularFile as exc:
        raise Refused(f"putting {path.name} back would put a {exc.what} where chromem reads a file",
                      "leave it in quarantine") from None
    try:
        if path.name.split(".")[0] == METADATA_STEM:
            chromem.decode_collection(data, str(path))
        else:
            chromem.decode_document(data, str(path))
    except CodecError as exc:
        raise Refused(f"putting {path.name} back would make the store unloadable: {exc.reason}",
                      "leave it in quarantine (or repair it first)") from None


def check_folder(path: Path) -> None:
    metadata = [p for p in (path / f"{METADATA_STEM}{ext}" for ext in EXTENSIONS) if p.is_file()]
    if not metadata:
        raise Refused(f"the folder {path.name} is not a chromem collection (no {METADATA_STEM}.gob); "
                      "chromem would refuse the store with it", "leave it in quarantine")
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.is_symlink():
            continue
        if child.is_symlink() or child.stat().st_size == 0 and _is_gob(child.name):
            raise Refused(f"the folder {path.name} holds {child.name}, which chromem cannot load",
                          "leave it in quarantine")
        check_file(child)


def validate_for_store(entry: QuarantineEntry, payload: Path) -> None:
    if payload.is_dir() and not payload.is_symlink():
        check_folder(payload)
    elif payload.is_file():
        check_file(payload)


def run(args, ctx) -> int:
    quarantine = Quarantine(ctx.paths)
    if args.action == "list":
        return _list(quarantine, args.json)
    if not args.id:
        raise UsageError("quarantine restore needs the entry id", "see `guardian quarantine list`")
    if args.replace:
        entry, replaced = restore_replacing(quarantine, args.id, ctx.paths)
    else:
        with store_lock(ctx.paths.lock_file):  # serialised with repair, restore and snapshot of this store
            entry, replaced = quarantine.restore(args.id, ctx.paths.store, validate=validate_for_store), None
    if args.json:
        print_json({**entry.to_dict(), "replaced_by_entry": replaced.id if replaced else None})
        return ExitCode.OK
    if replaced is not None:
        print(f"moved the current {replaced.original_path} to quarantine entry {replaced.id}")
    print(f"restored {entry.original_path} from quarantine entry {entry.id}")
    return ExitCode.OK


def refuse_if_being_written(path: Path, now: float | None = None) -> None:
    """The store is alive: a file changed in the last seconds may be a write in progress, which
    --replace must not move away. (A folder is judged by its own mtime.)"""
    age = (time.time() if now is None else now) - os.lstat(path).st_mtime
    if age < SETTLE_SECONDS:
        raise RestoreError(f"{path.name} in the store changed {max(age, 0):.1f}s ago; it may be being written",
                           "try again in a few seconds (or stop contextd first)")


def restore_replacing(quarantine: Quarantine, entry_id: str, paths) -> tuple[QuarantineEntry, QuarantineEntry | None]:
    """--replace: check the entry would load, move what is at its path now to quarantine, put the
    entry back (under the store lock). If putting it back fails, the current one returns."""
    with store_lock(paths.lock_file):
        entry = quarantine.get(entry_id)
        current = paths.store / entry.original_path
        if entry.state != "quarantined" or not current.exists() and not current.is_symlink():
            return quarantine.restore(entry_id, paths.store, validate=validate_for_store), None
        validate_for_store(entry, entry.payload_path)
        refuse_if_being_written(current)
        replaced = quarantine.put(paths.store, entry.original_path, reason=f"replaced by quarantine entry {entry.id}",
                                  source="quarantine restore --replace")
        try:
            return quarantine.restore(entry_id, paths.store, validate=validate_for_store), replaced
        except BaseException:
            quarantine.restore(replaced.id, paths.store)
            raise


def _list(quarantine: Quarantine, as_json: bool) -> int:
    entries, unreadable = quarantine.listing()
    for name, reason in unreadable:  # never hidden: their files are still in the quarantine
        print(f"warning: quarantine entry {name} is unreadable ({reason}); its files stay in "
              f"{quarantine.root / name}", file=sys.stderr)
    if as_json:
        print_json([e.to_dict() for e in entries])
        return ExitCode.OK
    if not entries:
        print("the quarantine is empty")
        return ExitCode.OK
    rows = [[e.id, e.time[:19] + "Z", e.state, e.kind, e.original_path, human_bytes(e.size), e.reason]
            for e in entries]
    print(format_table(["id", "time", "state", "kind", "path", "size", "reason"], rows))
    return ExitCode.OK
