"""Decode and check speed of the format layer on a synthetic store (see bench/common.py).

    .venv/bin/python bench/bench_format.py [--docs 100000] [--dims 384] [--out DIR] [--profile]

Reports, in one run: reading every file in Python (the floor), full decode plain (read_documents,
and a read_document loop), full decode gz, scan_store cold and warm (verified cache), and the
`guardian check` CLI end-to-end on the warm cache. Targets (2 cores, 100k x 384): full decode no
slower than chromem-go v0.7.0 loading the same store (~3.2 s plain, ~7.2 s gz); warm check <= 0.35 s.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import document_paths, make_store, timed  # noqa: E402
from guardian.format import chromem  # noqa: E402
from guardian.store.scan import scan_store  # noqa: E402

CHROMEM_PLAIN_S, CHROMEM_GZ_S, WARM_CHECK_TARGET_S = 3.2, 7.2, 0.35


def vs_chromem(seconds: float, n: int, chromem_100k: float) -> str:
    """Our time over chromem-go's for the same count (its 100k figure scaled linearly)."""
    return f"x{seconds / (chromem_100k * n / 100_000):.2f} of chromem-go"



def read_all(paths) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            total += len(handle.read())
    return total


def decode_loop(paths) -> int:
    return sum(1 for path in paths if chromem.read_document(path).id is not None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--out", help="where to build the stores (default: a temp dir, removed after)")
    parser.add_argument("--profile", action="store_true", help="cProfile the plain decode and print the top")
    args = parser.parse_args()
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-format-"))
    try:
        return run(args, base)
    finally:
        if not args.out:
            shutil.rmtree(base, ignore_errors=True)


def build(base: Path, compress: bool, docs: int, dims: int) -> Path:
    root = base / ("store-gz" if compress else "store-plain")
    if not root.exists():
        seconds, _ = timed(lambda: make_store(root, docs, dims=dims, compress=compress))
        print(f"built {root} ({docs} docs x {dims}, compress={compress}) in {seconds:.1f} s", flush=True)
    return root


def run(args, base: Path) -> int:
    plain = build(base, False, args.docs, args.dims)
    gz = build(base, True, args.docs, args.dims)
    plain_paths, gz_paths = document_paths(plain), document_paths(gz)
    n = len(plain_paths)
    rows = []

    def row(label, seconds, docs=None, note=""):
        rows.append((label, seconds, f"{docs / seconds:,.0f}" if docs else "", note))
        print(f"  {label}: {seconds:.3f} s", flush=True)

    row("read every file (floor), plain", timed(lambda: read_all(plain_paths))[0], n)
    row("read every file (floor), gz", timed(lambda: read_all(gz_paths))[0], n)
    seconds, batch = timed(lambda: chromem.read_documents(plain_paths))
    assert len(batch) == n and not batch.errors, "plain decode lost documents"
    row("full decode plain: read_documents", seconds, n, vs_chromem(seconds, n, CHROMEM_PLAIN_S))
    row("full decode plain: read_document loop", timed(lambda: decode_loop(plain_paths))[0], n)
    seconds, batch = timed(lambda: chromem.read_documents(gz_paths))
    assert len(batch) == n and not batch.errors, "gz decode lost documents"
    row("full decode gz: read_documents", seconds, n, vs_chromem(seconds, n, CHROMEM_GZ_S))
    cache = base / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    seconds, scan = timed(lambda: scan_store(plain, cache_dir=cache))
    assert scan.loadable, scan.error
    row("scan_store cold (fills cache)", seconds, n)
    seconds, scan = timed(lambda: scan_store(plain, cache_dir=cache))
    row("scan_store warm (cache)", seconds, n, f"target <= {WARM_CHECK_TARGET_S} s")
    cli_seconds = run_cli_check(plain, base / "state")
    if cli_seconds is not None:
        row("`guardian check` CLI, warm (incl. start-up)", cli_seconds, None, "subprocess")
    if args.profile:
        profile_decode(plain_paths)
    print_table(n, args.dims, rows)
    return 0


def run_cli_check(store: Path, state: Path) -> float | None:
    env = {**os.environ, "GUARDIAN_STATE_DIR": str(state), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "guardian", "check", "--store", str(store)]
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    if first.returncode not in (0, 1):
        print(f"  (guardian check not usable here: exit {first.returncode}: {first.stderr.strip()[:200]})")
        return None
    return timed(lambda: subprocess.run(command, env=env, capture_output=True))[0]


def profile_decode(paths) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    chromem.read_documents(paths)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)


def print_table(n: int, dims: int, rows) -> None:
    print(f"\n{n} documents x {dims} dims, Python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    width = max(len(r[0]) for r in rows)
    print(f"{'what'.ljust(width)}  {'seconds':>8}  {'docs/s':>10}  note")
    for label, seconds, rate, note in rows:
        print(f"{label.ljust(width)}  {seconds:8.3f}  {rate:>10}  {note}")
    floor = rows[0][1]
    print(f"decode plain / read floor: x{rows[2][1] / floor:.1f}; "
          f"chromem-go reference (measured separately): {CHROMEM_PLAIN_S} s plain, {CHROMEM_GZ_S} s gz")


if __name__ == "__main__":
    sys.exit(main())
