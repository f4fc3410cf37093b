"""Benchmark the memory answers (`guardian diff`, `history`, `find`) on a 100k-document store with
1,000 snapshots.

The store is written by the real chromem (``chromemh synth``; guardian's own encoder where the
harness is absent). The snapshots are synthesised, as continuous capture takes them: after each
small change (a few documents rewritten under their own ID with new content and metadata, one
added every 5th step, one removed every 7th; written with guardian's encoder, which writes
chromem's bytes), one incremental ``take_snapshot`` with the changed paths, 10 s later each.
A few "hot" memories change again and again, so one of them has dozens of versions.

Figures, each beside a same-run baseline:
- ``diff`` of two snapshots 199 apart (target <= 1 s) and of neighbours, beside reading those two
  manifests whole (the floor any comparison pays);
- ``history ID`` of a hot memory over all 1,000 snapshots (target <= 1 s), beside decoding
  every manifest's whole file list (what a per-snapshot lookup would cost);
- ``find TEXT`` over the newest 100 snapshots: the distinct blobs it read (checked: each at most
  once, and exactly the distinct blobs those snapshots hold) and its rate in MB/s of blob content,
  beside a bare zstd decompress of the same blobs' frames.

    .venv/bin/python bench/bench_memories.py [--docs 100000] [--snapshots 1000] [--dir /tmp/x]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import make_store, timed  # noqa: E402
from guardian.format.chromem import Document, decode_document, document_stem, encode_document  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402
from guardian.memories.diff import diff_filesets  # noqa: E402
from guardian.memories.filesets import snapshot_fileset  # noqa: E402
from guardian.memories.find import FindQuery, find_memories  # noqa: E402
from guardian.memories.history import memory_history  # noqa: E402
from guardian.memories.versions import document_file  # noqa: E402
from guardian.snapshots.repository import Repository  # noqa: E402
from guardian.snapshots.take import take_snapshot  # noqa: E402

CHROMEMH = Path(__file__).resolve().parents[2] / "shared" / "chromem-harness" / "chromemh"
HOT = 20                 # memories changed again and again
CHANGES_PER_STEP = 3
NEEDLE = "zebra-crossing"   # a word some rewritten memories carry: what `find` looks for


def report(label: str, value: str) -> None:
    print(f"{label:<52} {value}", flush=True)


def make(store: Path, docs: int) -> str:
    if CHROMEMH.is_file():
        subprocess.run([str(CHROMEMH), "synth", str(store), str(docs), "384", "0"], check=True,
                       capture_output=True)
        return f"chromemh synth {store} {docs} 384 0"
    make_store(store, docs)
    return "bench.common.make_store (chromemh is absent)"


def rewrite(path: Path, step: int, rng) -> None:
    """The same memory (same ID), new content, metadata and embedding: as contextd's update does."""
    doc = decode_document(path.read_bytes())
    vector = rng.standard_normal(doc.embedding.size).astype(np.float32)
    vector /= np.linalg.norm(vector)
    words = f" {NEEDLE}" if step % 10 == 0 else ""
    metadata = {**doc.metadata, "updated_at": str(1767225600 + step * 10), "usage_count": str(step)}
    content = f"{doc.content.splitlines()[0] if doc.content else ''}\n\nrevised at step {step}{words}"
    path.write_bytes(encode_document(Document(doc.id, metadata, vector, content)))


def synthesise(store: Path, paths: StatePaths, count: int, start: datetime) -> tuple[list[str], str]:
    """``count`` snapshots; returns their ids and the ID of the hottest memory."""
    rng = np.random.default_rng(3)
    folder = next(p for p in store.iterdir() if p.is_dir())
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("00000000"))
    hot = files[:HOT]
    trash = store.parent / "removed"
    trash.mkdir(exist_ok=True)
    repo = Repository(paths.snapshots)
    moment = start
    result = take_snapshot(paths, clock=lambda: moment, repo=repo)
    ids = [result.id]
    hottest = decode_document((folder / hot[0]).read_bytes()).id
    for step in range(1, count):
        changed = {hot[step % HOT]} | {files[int(i)] for i in rng.integers(HOT, len(files), CHANGES_PER_STEP - 1)}
        for name in changed:
            if (folder / name).exists():
                rewrite(folder / name, step, rng)
        if step % 5 == 0:
            doc_id = f"added-{step}"
            vector = rng.standard_normal(384).astype(np.float32)
            name = f"{document_stem(doc_id)}.gob"
            (folder / name).write_bytes(encode_document(Document(doc_id, {"title": f"added at step {step}"},
                                                                 vector / np.linalg.norm(vector), "new")))
            changed.add(name)
        if step % 7 == 0:
            name = files[HOT + step]
            if (folder / name).exists():
                os.replace(folder / name, trash / name)   # the bench's own copy of the store
                changed.add(name)
        moment = start + timedelta(seconds=10 * step)
        result = take_snapshot(paths, clock=lambda: moment, repo=repo, baseline=result.baseline,
                               changed={f"{folder.name}/{name}" for name in changed})
        ids.append(result.id)
        if step % 100 == 0:
            print(f"  ... {step} snapshots", file=sys.stderr, flush=True)
    return ids, hottest


def bare_zstd(repo: Repository, digests: list[str]) -> tuple[float, int]:
    """Seconds to read and zstd-decompress the frames of ``digests`` (nothing else), and the bytes out."""
    started = time.perf_counter()
    groups, other = repo.locate(digests)
    codec = zstandard.ZstdDecompressor()
    out = 0
    for pack_id, members in groups.items():
        data = memoryview(repo.read_pack(pack_id))
        for _, offset, length in members:
            out += len(codec.decompress(data[offset:offset + length]))
    assert not other
    return time.perf_counter() - started, out


def run(work: Path, docs: int, count: int) -> None:
    store = work / "store"
    made_s, how = timed(lambda: make(store, docs))
    report("store", f"{docs} documents x 384 dims, by {how} ({made_s:.0f} s)")
    paths = StatePaths.for_store(store, work / "state")
    start = datetime.now(timezone.utc) - timedelta(seconds=10 * count + 60)
    synth_s, (ids, hottest) = timed(lambda: synthesise(store, paths, count, start))
    repo = Repository(paths.snapshots)
    bases = {repo.read_header(i).files_dict for i in ids}
    report("snapshots (synthesised, incremental takes)", f"{len(ids)} in {synth_s:.0f} s, {len(bases)} base lists")

    older, newer = ids[-200], ids[-1]
    floor_s, _ = timed(lambda: (Repository(paths.snapshots).read_manifest_rows(older),
                                Repository(paths.snapshots).read_manifest_rows(newer)))

    def diff(a: str, b: str):
        fresh = Repository(paths.snapshots)
        return diff_filesets(snapshot_fileset(fresh, a)[0], snapshot_fileset(fresh, b)[0])
    diff_s, result = timed(lambda: diff(older, newer))
    counts = result.counts()
    report("baseline: read both manifests whole", f"{floor_s:.3f} s")
    report("diff, snapshots 199 apart (target <= 1 s)",
           f"{diff_s:.3f} s ({diff_s / floor_s:.2f}x the baseline): {counts['added']} added, "
           f"{counts['removed']} removed, {counts['changed']} changed")
    near_s, near = timed(lambda: diff(ids[-2], ids[-1]))
    report("diff, neighbouring snapshots", f"{near_s:.3f} s ({len(near.changes)} changes)")

    sample = ids[:: max(1, len(ids) // 20)]
    naive_one, _ = timed(lambda: [Repository(paths.snapshots).read_manifest_rows(i) for i in sample])
    naive_s = naive_one / len(sample) * len(ids)
    history_s, history = timed(lambda: memory_history(Repository(paths.snapshots), hottest))
    report(f"baseline: decode all {len(ids)} manifests whole (from {len(sample)})", f"{naive_s:.2f} s")
    report(f"history ID over {len(ids)} snapshots (target <= 1 s)",
           f"{history_s:.3f} s ({naive_s / history_s:.0f}x faster than the baseline): "
           f"{len(history.steps)} versions")

    window = ids[-100:]
    expected = set()
    for snapshot_id in window:
        _, rows = repo.read_manifest_rows(snapshot_id)
        expected.update(row[5] for row in rows if row[5] and document_file(row[0]))
    found_s, found = timed(lambda: find_memories(Repository(paths.snapshots), FindQuery(NEEDLE), window))
    assert found.blobs_read == len(expected), (found.blobs_read, len(expected))
    zstd_s, zstd_bytes = bare_zstd(Repository(paths.snapshots), sorted(expected))
    assert zstd_bytes == found.bytes_read
    mb = found.bytes_read / 1e6
    report("find TEXT over 100 snapshots: blobs", f"{found.blobs_read} read once each = the distinct blobs of "
           f"those snapshots ({mb:.0f} MB); {len(found.matches)} memories found")
    report("baseline: bare zstd decompress of the same blobs", f"{zstd_s:.2f} s, {mb / zstd_s:.0f} MB/s")
    report("find TEXT over 100 snapshots", f"{found_s:.2f} s, {mb / found_s:.0f} MB/s "
           f"({found_s / zstd_s:.1f}x the bare decompress)")


def main() -> int:
    parser = argparse.ArgumentParser(description="memory answers benchmark")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=1000)
    parser.add_argument("--dir", default=None, help="work folder (default: a temp folder, removed after)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-memories-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args.docs, args.snapshots)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
