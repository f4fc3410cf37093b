"""The 16 damages of the fixtures' damaged/ folder, applied to any store (plain or gz).

Each function takes a store root and the compression flag and damages it exactly as the
fixture README and verdicts.json describe, so gz copies get the same damage as plain ones.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from guardian.format import chromem

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "chromem-go-v0.7.0"
MEMORIES = "40917930"      # webapp_memories
CHECKPOINTS = "6c7f5464"   # checkpoints


def ext(compress: bool) -> str:
    return chromem.extension(compress)


def meta(store: Path, compress: bool, folder: str = MEMORIES) -> Path:
    return store / folder / f"00000000{ext(compress)}"


def doc(store: Path, compress: bool, stem: str, folder: str = MEMORIES) -> Path:
    return store / folder / f"{stem}{ext(compress)}"


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)


def missing_metadata(store, compress):
    meta(store, compress).unlink()


def empty_metadata(store, compress):
    truncate(meta(store, compress), 0)


def truncated_metadata(store, compress):
    path = meta(store, compress)
    truncate(path, path.stat().st_size // 2)


def garbage_metadata(store, compress):
    garbage = (FIXTURES / "damaged/plain/garbage_metadata" / MEMORIES / "00000000.gob").read_bytes()
    meta(store, compress).write_bytes(garbage)


def empty_document(store, compress):
    truncate(doc(store, compress, "5628d2e7"), 0)


def truncated_document(store, compress):
    path = doc(store, compress, "d3a0e1a0")
    truncate(path, path.stat().st_size * 2 // 3)


def several_empty_documents(store, compress):
    for stem in ("252243ab", "64bf43d6", "e8042ae1"):
        truncate(doc(store, compress, stem), 0)


def orphan_docs_two_collections(store, compress):
    meta(store, compress).unlink()
    meta(store, compress, CHECKPOINTS).unlink()


def hidden_backup_dir(store, compress):
    (store / ".backup").mkdir()
    shutil.copy2(doc(store, compress, "64bf43d6"), store / ".backup" / f"64bf43d6{ext(compress)}")


def nested_quarantine_dir(store, compress):
    shutil.copytree(store / MEMORIES, store / ".quarantine" / MEMORIES)


def stray_files(store, compress):
    (store / "README.txt").write_text("notes\n")
    (store / MEMORIES / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (store / "empty-folder").mkdir()


def name_mismatch(store, compress):
    os.rename(store / MEMORIES, store / "0badc0de")


def duplicate_name(store, compress):
    shutil.copytree(store / MEMORIES, store / "1dup1dup")


def wrong_format_file(store, compress):
    stem = "b401ab5d"
    source = doc(store, compress, stem)
    payload = chromem.gob_stream(source.read_bytes())
    target = doc(store, not compress, stem)
    target.write_bytes(chromem.gzip_bytes(payload) if not compress else payload)
    source.unlink()


def bitflip_embedding(store, compress):
    path = doc(store, compress, "49b83176")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def metadata_is_directory(store, compress):
    path = meta(store, compress)
    path.unlink()
    path.mkdir()


DAMAGES = {
    name: func for name, func in list(globals().items())
    if callable(func) and func.__module__ == __name__ and name not in {"ext", "meta", "doc", "truncate"}
}
assert len(DAMAGES) == 16, sorted(DAMAGES)
