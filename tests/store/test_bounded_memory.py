"""Memory follows what a real document can hold, not the file's size: a 4 GiB sparse document file
and a gzip bomb are judged (as too large, or by chromem's own verdict) within a bounded peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

from guardian.format import chromem

RSS_LIMIT_KIB = 700 * 1024    # guardian check's own ~100 MB plus the 64 MiB read bound, with slack
WRAPPER = ("import resource, subprocess, sys\n"
           "proc = subprocess.run(sys.argv[1:], capture_output=True)\n"
           "print(proc.returncode)\n"
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
           "sys.stdout.write(proc.stdout.decode())\n")


def check_with_peak_rss(store, state_dir, *extra) -> tuple[int, int, dict]:
    env = {**os.environ, "GUARDIAN_STATE_DIR": str(state_dir)}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "guardian", "check", "--store",
                           str(store), "--json", "--no-cache", *extra], capture_output=True, text=True, env=env,
                          timeout=600)
    code, rss, body = proc.stdout.split("\n", 2)
    return int(code), int(rss), json.loads(body)


def gzip_bomb(inflated: int) -> bytes:
    """A gzip member of ``inflated`` zero bytes (~1 MB per GiB), CRC and size left zero.

    After a full flush a deflater starts afresh, so one MiB of zeros compressed and full-flushed is
    the same block whatever came before: it is made once and repeated (compressing 2 GiB would
    take ~8 s of CPU), and a last MiB, compressed by a fresh deflater, ends the stream."""
    chunk = b"\0" * (1 << 20)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = block * ((inflated >> 20) - 1) + last.compress(chunk) + last.flush()
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body + b"\0" * 8


def test_a_4gib_sparse_document_is_checked_in_bounded_memory(plain_store, state_dir):
    path = plain_store / "40917930" / "aaaaaaaa.gob"
    with open(path, "wb") as handle:
        handle.truncate(4 << 30)             # sparse: no disk used
    code, rss, data = check_with_peak_rss(plain_store, state_dir)
    assert code == 3 and rss < RSS_LIMIT_KIB, f"peak RSS {rss} KiB"
    problem = next(p for p in data["problems"] if p["path"] == "40917930/aaaaaaaa.gob")
    assert problem["kind"] == "document_oversized" and chromem.TOO_LARGE in problem["detail"]


def test_a_gzip_bomb_is_checked_in_bounded_memory(gz_store, state_dir):
    path = gz_store / "40917930" / "aaaaaaaa.gob.gz"
    path.write_bytes(gzip_bomb(2 << 30))
    assert path.stat().st_size < 4 << 20
    code, rss, data = check_with_peak_rss(gz_store, state_dir)
    assert code == 3 and rss < RSS_LIMIT_KIB, f"peak RSS {rss} KiB"
    problem = next(p for p in data["problems"] if p["path"] == "40917930/aaaaaaaa.gob.gz")
    assert problem["kind"] == "document_oversized"
