"""Damaged and hostile manifests (deep JSON, zstd bombs) are skipped with a warning, counted by verify,
and never make snapshot, restore, verify or repair fail; decompression is bounded."""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
from datetime import datetime, timedelta

import zstandard

from guardian.snapshots import manifest as manifest_mod
from guardian.snapshots.repository import Repository
from guardian.restoring.pipeline import Restore
from guardian.snapshots.take import take_snapshot
from guardian.snapshots.verify import verify_repository

from tests.snapshots.conftest import Clock

ID_TIME = "%Y%m%dT%H%M%S.%fZ"   # the time at the head of a snapshot id


def hostile_manifest(header_json: bytes, body: bytes) -> bytes:
    header = zstandard.ZstdCompressor().compress(header_json)
    return manifest_mod.MAGIC + struct.pack(">I", len(header)) + header + body


def deep_json_manifest() -> bytes:
    return hostile_manifest(b"[" * 200_000, zstandard.ZstdCompressor().compress(b"[" * 200_000))


def bomb_manifest(valid_header: bytes) -> bytes:
    """A valid header and a ~64 KB zstd body that inflates to 2 GiB of spaces (level 3: as small as
    level 19 makes it for this input, in a tenth of the CPU)."""
    chunk = b" " * (1 << 20)
    compressor = zstandard.ZstdCompressor(level=3)
    out = compressor.compressobj()
    body = b"".join(out.compress(chunk) for _ in range(2048)) + out.flush()
    return valid_header + body


def plant(repo: Repository, snapshot_id: str, data: bytes) -> None:
    repo.manifest_path(snapshot_id).write_bytes(data)


def newer_id(snapshot_id: str, seconds: int) -> str:
    """The id of a snapshot taken ``seconds`` later (carrying into the minute: at :59 one more is :00)."""
    later = datetime.strptime(snapshot_id[:23], ID_TIME) + timedelta(seconds=seconds)
    return later.strftime(ID_TIME) + snapshot_id[23:]


def test_deep_json_and_bomb_manifests_are_skipped_everywhere(plain_paths):
    clock = Clock()
    first = take_snapshot(plain_paths, clock=clock)
    repo = Repository(plain_paths.snapshots)
    good = repo.manifest_path(first.id).read_bytes()
    (length,) = struct.unpack(">I", good[len(manifest_mod.MAGIC):len(manifest_mod.MAGIC) + 4])
    deep_id, bomb_id = newer_id(first.id, 1), newer_id(first.id, 2)
    plant(repo, deep_id, deep_json_manifest())
    header = good[:len(manifest_mod.MAGIC) + 4 + length].replace(first.id.encode(), bomb_id.encode())
    plant(repo, bomb_id, bomb_manifest(header))

    report = verify_repository(repo)
    damaged = {i for p in report.to_dict().get("problems", []) for i in p.get("snapshots", [])}
    assert {deep_id, bomb_id} <= damaged and not report.ok

    clock.advance(minutes=5)
    second = take_snapshot(plain_paths, clock=clock)      # not blocked by the hostile ones
    doc = next(plain_paths.store.glob("*/1*.gob"))
    doc.write_bytes(b"damaged")
    result = Restore.of_store(plain_paths).run()
    assert result.snapshot_id == second.id and doc.read_bytes() != b"damaged"


def test_bomb_decompression_stays_bounded_in_memory(tmp_path):
    """In a child process: decoding a 2 GiB zstd bomb manifest fails as damaged without 2 GiB of RSS."""
    script = tmp_path / "bomb.py"
    script.write_text(
        "import resource, struct, sys, zstandard\n"
        "from guardian.snapshots import manifest as m\n"
        "from guardian.errors import SnapshotError\n"
        "out = zstandard.ZstdCompressor(level=3).compressobj()\n"
        "body = b''.join(out.compress(b' ' * (1 << 20)) for _ in range(2048)) + out.flush()\n"
        "try:\n"
        "    m._decompress(body, 'bomb', 'file list')\n"
        "except SnapshotError as exc:\n"
        "    print('refused', exc.message[:60])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("refused")
    assert int(lines[-1]) < 600 * 1024, f"peak RSS {lines[-1]} KiB"   # far below the bomb's 2 GiB
    assert resource is not None
