"""Benchmark snapshots on a synthetic chromem store (default 100k documents x 384 dims).

Prints: first snapshot (s, MB/s, compressed size), a no-change snapshot (target <= 1 s), a
snapshot after changing 1% of documents, storage for 24 hourly snapshots at 1% change
(target <= 1.3x one compressed full copy), and restores of one collection and of the whole store.
Baselines measured in the same run: a raw copy of the store, and zstd (level 3) of a tar of it.

    .venv/bin/python bench/bench_snapshots.py [--docs 100000] [--snapshots 24] [--dir /tmp/x]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import stat_walk, timed  # noqa: E402
from guardian.format.chromem import (Document, collection_dir_name, document_stem, encode_collection,  # noqa: E402
                                     encode_document)
from guardian.restoring.pipeline import InProcess, Restore  # noqa: E402
from guardian.restoring.request import RestoreRequest  # noqa: E402
from guardian.snapshots.take import take_snapshot  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402

WORDS = ("memory checkpoint remediation function handler request error retry cache index vector store "
         "collection query embedding database config deploy service token user session timeout build test "
         "release branch commit review merge patch fix issue log metric alert").split()
SHARES = {"webapp_memories": 0.4, "alice_webapp_codebase": 0.3, "checkpoints": 0.2, "remediations_org_alice": 0.1}


def make_document(rng, doc_id: str) -> bytes:
    vector = rng.standard_normal(384).astype(np.float32)
    vector /= np.linalg.norm(vector)
    content = " ".join(rng.choice(WORDS, size=int(rng.integers(40, 160))))
    metadata = {"source": "bench", "kind": str(rng.choice(["memory", "code", "note"]))}
    return encode_document(Document(id=doc_id, metadata=metadata, embedding=vector, content=content))


def generate(root: Path, docs: int, seed: int = 1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    layout = {}
    for name, share in SHARES.items():
        folder = root / collection_dir_name(name)
        folder.mkdir(parents=True)
        (folder / "00000000.gob").write_bytes(encode_collection(name, {}))
        ids = [f"{name}-{i}" for i in range(int(docs * share))]
        for doc_id in ids:
            (folder / f"{document_stem(doc_id)}.gob").write_bytes(make_document(rng, doc_id))
        layout[name] = ids
    past = time.time() - 3600
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (past, past))
    return layout


def change_share(root: Path, layout, share: float, rng) -> int:
    everything = [(name, doc_id) for name, ids in layout.items() for doc_id in ids]
    picks = rng.choice(len(everything), size=max(1, int(len(everything) * share)), replace=False)
    for index in picks:
        name, doc_id = everything[index]
        (root / collection_dir_name(name) / f"{document_stem(doc_id)}.gob").write_bytes(make_document(rng, doc_id))
    return len(picks)


def folder_bytes(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)



def baselines(store: Path, work: Path) -> dict:
    copy_s, _ = timed(lambda: shutil.copytree(store, work / "copy"))
    shutil.rmtree(work / "copy")

    def tar_zstd():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(store, arcname="store")
        return zstandard.ZstdCompressor(level=3, threads=-1).compress(buffer.getvalue())
    tar_s, packed = timed(tar_zstd)
    walk_s, _ = timed(lambda: stat_walk(store))
    return {"copy_s": copy_s, "tar_zstd_s": tar_s, "tar_zstd_bytes": len(packed), "stat_walk_s": walk_s}



def main() -> int:
    parser = argparse.ArgumentParser(description="snapshot benchmark")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=24)
    parser.add_argument("--dir", default=None, help="work folder (default: a temp folder, removed after)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-snapshots-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args.docs, args.snapshots)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(label: str, value: str) -> None:
    print(f"{label:<46} {value}", flush=True)


def run(work: Path, docs: int, count: int) -> None:
    store = work / "store"
    gen_s, layout = timed(lambda: generate(store, docs))
    raw = folder_bytes(store)
    mb = raw / 1e6
    report("store", f"{docs} documents x 384 dims, {mb:.1f} MB raw (generated in {gen_s:.0f} s)")
    base = baselines(store, work)
    report("baseline: raw copy (copytree)", f"{base['copy_s']:.2f} s, {mb / base['copy_s']:.0f} MB/s")
    report("baseline: zstd-3 of a tar", f"{base['tar_zstd_s']:.2f} s, {base['tar_zstd_bytes'] / 1e6:.1f} MB")
    paths = StatePaths.for_store(store, work / "state")
    moment = datetime.now(timezone.utc) - timedelta(hours=count + 1)
    first_s, first = timed(lambda: take_snapshot(paths, clock=lambda: moment))
    full = folder_bytes(paths.snapshots)
    report("first snapshot", f"{first_s:.2f} s, {mb / first_s:.0f} MB/s, {full / 1e6:.1f} MB stored "
           f"({full / base['tar_zstd_bytes']:.2f}x tar.zst; copy took {first_s / base['copy_s']:.1f}x as long)")
    moment += timedelta(minutes=1)
    same_s, same = timed(lambda: take_snapshot(paths, clock=lambda: moment))
    report("baseline: bare stat walk (scandir + lstat)", f"{base['stat_walk_s']:.2f} s")
    report("no-change snapshot (target <= 1 s)", f"{same_s:.2f} s ({same_s / base['stat_walk_s']:.1f}x the bare "
           f"stat walk), {same.read_files} files read, {same.new_bytes / 1e3:.0f} kB new")
    rng = np.random.default_rng(7)
    sizes = []
    for hour in range(1, count - 1):
        changed = change_share(store, layout, 0.01, rng)
        past = time.time() - 60
        moment += timedelta(hours=1)
        seconds, result = timed(lambda: take_snapshot(paths, clock=lambda: moment))
        sizes.append((seconds, result.new_bytes, result.manifest_bytes))
        if hour == 1:
            report("snapshot after changing 1% of documents", f"{seconds:.2f} s, {result.read_files} files read "
                   f"({changed} changed), {result.new_bytes / 1e6:.2f} MB new "
                   f"(manifest {result.manifest_bytes / 1e3:.0f} kB)")
        del past
    total = folder_bytes(paths.snapshots)
    snaps = 2 + len(sizes)
    report(f"storage for {snaps} snapshots (1%/h; target <= 1.3x)",
           f"{total / 1e6:.1f} MB = {total / full:.2f}x the first snapshot, "
           f"{total / base['tar_zstd_bytes']:.2f}x tar.zst; mean {np.mean([s[0] for s in sizes]):.2f} s, "
           f"{np.mean([s[1] for s in sizes]) / 1e6:.2f} MB new per snapshot")
    name = "checkpoints"
    shutil.rmtree(store / collection_dir_name(name))
    one_collection = Restore.of_store(paths, RestoreRequest(collection=name))
    one_s, one = timed(lambda: one_collection.run(InProcess(check_load=False)))
    report(f"restore one collection ({len(layout[name])} docs)",
           f"{one_s:.2f} s, {one.plan.counts()['write']} files written")
    os.rename(store, work / "store-old")
    store.mkdir()
    whole_s, whole = timed(lambda: Restore.of_store(paths).run())
    scan_module = __import__("guardian.store.scan", fromlist=["scan_store"])
    load_s, loadable = timed(lambda: scan_module.scan_store(store).loadable)
    report("restore whole store (into an empty folder)", f"{whole_s:.2f} s, {whole.plan.counts()['write']} files, "
           f"{mb / whole_s:.0f} MB/s (copy: {mb / base['copy_s']:.0f} MB/s); loadable={loadable} "
           f"(check {load_s:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
