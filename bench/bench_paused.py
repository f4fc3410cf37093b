"""Bench: a writer paused mid-write, and a truncate(2) nobody holds, under `guardian run`.

    .venv/bin/python bench/bench_paused.py --docs 2000 --truncates 10 --pauses 45,180 --work /tmp/bench-paused

1. A store of ``--docs`` documents (bench/common.make_store, 5 collections); `guardian run` on it (no
   child), waited until its index is built and its first snapshot committed. ``settle_seconds`` and
   ``held_repair_seconds`` are guardian's defaults unless given.
2. truncate(2) of a document nobody holds (``--truncates`` of them, one at a time, each in another
   document): the time from the truncate to the good copy back at the path (polled every 10 ms),
   beside the same run's baseline, ``settle_seconds`` - the wait the rule itself asks for - and the
   time from ``damage_settled`` (guardian's own log) to the repair's rename.
3. For each pause in ``--pauses`` (seconds): a writer truncates a document the way chromem does
   (O_TRUNC on the open file), pauses, then writes a new version of it and closes. Reported: how
   long the store was unloadable for a contextd starting meanwhile (the real loader, ``chromemh
   load``, probed every 2 s), whether the writer's update is at the path afterwards, loads, and is
   in the newest snapshot, and how long after its close each of those came true.

Needs ../shared/chromem-harness/chromemh for the loader probes (step 3's loadability column is
skipped without it). Numbers depend on machine load: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_live import CHROMEMH, COLLECTIONS, parse_time, start_guardian, stop_guardian, wait_started  # noqa: E402,E501
from bench.common import make_store  # noqa: E402
from guardian.config import Config  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402
from guardian.snapshots.manifest import NO_CONTENT_FLAGS  # noqa: E402
from guardian.snapshots.repository import Repository  # noqa: E402
from tests.paused_writer import PausedWriter, updated_document  # noqa: E402


def documents(store: Path) -> list[Path]:
    return sorted(p for p in store.glob("*/*.gob") if not p.name.startswith("00000000"))


def wait(condition, timeout: float, step: float = 0.01) -> float | None:
    """Seconds until ``condition()`` held (polled every ``step``), None after ``timeout``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(step)
    return None


def log_times(log: Path, event: str, path: str) -> list[float]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if f'"{event}"' in line and path in line:
            found.append(parse_time(json.loads(line)["timestamp"]))
    return found


def loads(store: Path) -> bool:
    proc = subprocess.run([str(CHROMEMH), "load", str(store), "0"], capture_output=True, timeout=300)
    return bool(json.loads(proc.stdout).get("ok"))


def in_newest_snapshot(paths: StatePaths, rel: str, data: bytes) -> bool:
    repo = Repository(paths.snapshots)
    rows = {e.path: e for e in repo.read_manifest(repo.list_ids()[-1]).files}
    row = rows.get(rel)
    return row is not None and row.hash == hashlib.sha256(data).hexdigest() and not row.flags & NO_CONTENT_FLAGS


def bench_truncates(store: Path, log: Path, count: int, settle: float) -> None:
    print(f"\n## truncate(2) of a document nobody holds ({count} of them; settle_seconds = {settle:g} s)")
    totals, after_settle = [], []
    for doc in documents(store)[:: max(1, len(documents(store)) // count)][:count]:
        rel = f"{doc.parent.name}/{doc.name}"
        good = doc.read_bytes()
        at = time.time()
        os.truncate(doc, 0)
        took = wait(lambda: doc.read_bytes() == good, 60)
        if took is None:
            print(f"{rel}: NOT repaired within 60 s")
            continue
        totals.append(took)
        wait(lambda: log_times(log, "live_repaired", rel), 10, 0.1)   # logged right after the rename
        settled, renamed = log_times(log, "damage_settled", rel), log_times(log, "live_repaired", rel)
        settled = [t for t in settled if t >= at - 0.5]
        if settled and renamed:
            after_settle.append(min(t for t in renamed if t >= settled[0]) - settled[0])
        time.sleep(0.5)
    if totals:
        print(f"truncate -> good copy back: median {statistics.median(totals):.2f} s, max {max(totals):.2f} s "
              f"(baseline: settle_seconds {settle:g} s -> ratio {statistics.median(totals) / settle:.2f}); "
              f"damage_settled -> live_repaired (log): median {statistics.median(after_settle or [0]):.3f} s, "
              f"max {max(after_settle or [0]):.3f} s")


def bench_pause(store: Path, paths: StatePaths, log: Path, pause: float, scratch: Path, doc: Path) -> None:
    rel = f"{doc.parent.name}/{doc.name}"
    good = doc.read_bytes()
    update = updated_document(good, f"written after a pause of {pause:g} s")
    probes: list[tuple[float, bool]] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.wait(2.0):
            probes.append((time.monotonic(), loads(store)))

    began = time.monotonic()
    writer = PausedWriter(doc, scratch)
    prober = threading.Thread(target=probe, daemon=True)
    if CHROMEMH.exists():
        prober.start()
    loadable_again = wait(lambda: doc.read_bytes() == good, pause, 0.05)
    time.sleep(max(0.0, began + pause - time.monotonic()))
    writer.write(update)
    closed = time.monotonic()
    stop.set()
    at_path = wait(lambda: doc.read_bytes() == update, 120)
    at_path = None if at_path is None else time.monotonic() - closed
    captured = wait(lambda: in_newest_snapshot(paths, rel, update), 120, 0.1)
    captured = None if captured is None else time.monotonic() - closed
    writer.stop()
    refused = [t for t, ok in probes if not ok]
    print(f"pause {pause:g} s: good copy in place (loadable) {loadable_again:.1f} s after the truncate"
          if loadable_again is not None else f"pause {pause:g} s: NOT made loadable during the pause")
    if probes:
        print(f"  chromem load during the pause: {len(probes) - len(refused)} of {len(probes)} probes loaded "
              f"(refused ones in the first {max(refused) - began:.1f} s)" if refused else
              f"  chromem load during the pause: {len(probes)} of {len(probes)} probes loaded")
    print(f"  writer's update at the path {at_path:.2f} s after its close; "
          if at_path is not None else "  writer's update NOT at the path (lost); ", end="")
    print(f"in the newest snapshot {captured:.2f} s after its close; "
          if captured is not None else "NOT in the newest snapshot; ", end="")
    print(f"loads: {loads(store) if CHROMEMH.exists() else 'n/a'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--truncates", type=int, default=10)
    parser.add_argument("--pauses", default="45,180", help="comma-separated pause lengths in seconds")
    parser.add_argument("--settle", type=float, default=None, help="settle_seconds (default: guardian's)")
    parser.add_argument("--work", default="/tmp/bench-paused")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store, state, log = work / "store", work / "state", work / "run.log"
    make_store(store, args.docs, collections=COLLECTIONS)
    env = {} if args.settle is None else {"GUARDIAN_SETTLE_SECONDS": str(args.settle)}
    settle = args.settle if args.settle is not None else Config().settle_seconds
    paths = StatePaths.for_store(store, state)
    print(f"store: {args.docs} documents in {len(COLLECTIONS)} collections; "
          f"load average at start: {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
    guardian = start_guardian(store, state, log, env)
    try:
        wait_started(paths, log)
        bench_truncates(store, log, args.truncates, settle)
        print(f"\n## a writer paused between its truncate and its write (held_repair_seconds = "
              f"{Config().held_repair_seconds:g} s)")
        docs = documents(store)
        for n, pause in enumerate(float(p) for p in args.pauses.split(",") if p):
            bench_pause(store, paths, log, pause, work, docs[-1 - n])
        print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    finally:
        stop_guardian(guardian)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
