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
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import make_store, timed, work_folder  # noqa: E402
from guardian.format.chromem import Document, decode_document, document_stem, encode_document  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402
from guardian.memories.browser import MemoryBrowser  # noqa: E402
from guardian.memories.diff import diff_filesets, every_row_pair  # noqa: E402
from guardian.memories.filelists import FileLists  # noqa: E402
from guardian.memories.find import FindQuery, find_memories  # noqa: E402
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


def bare_zstd(repo: Repository, digests: list[str]) -> int:
    """Read and zstd-decompress the frames of ``digests`` (nothing else); the bytes out."""
    groups, other = repo.locate(digests)
    codec = zstandard.ZstdDecompressor()
    out = 0
    for pack_id, members in groups.items():
        data = memoryview(repo.read_pack(pack_id))
        for _, offset, length in members:
            out += len(codec.decompress(data[offset:offset + length]))
    assert not other
    return out


def run(work: Path, docs: int, count: int) -> None:
    store = work / "store"
    paths = StatePaths.for_store(store, work / "state")
    repo = Repository(paths.snapshots)
    if repo.list_ids():   # --dir of an earlier run: its store and snapshots again
        ids, synth_s = repo.list_ids(), 0.0
        folder = next(p for p in store.iterdir() if p.is_dir())
        hot = sorted(p.name for p in folder.iterdir() if not p.name.startswith("00000000"))[0]
        hottest = decode_document((folder / hot).read_bytes()).id
        report("store and snapshots", f"reused from {work}")
    else:
        made_s, how = timed(lambda: make(store, docs))
        report("store", f"{docs} documents x 384 dims, by {how} ({made_s:.0f} s)")
        start = datetime.now(timezone.utc) - timedelta(seconds=10 * count + 60)
        synth_s, (ids, hottest) = timed(lambda: synthesise(store, paths, count, start))
    bases = {repo.read_header(i).files_dict for i in ids}
    report("snapshots (synthesised, incremental takes)", f"{len(ids)} ({synth_s:.0f} s), {len(bases)} base lists")

    older, newer = ids[-200], ids[-1]
    floor_s, floor_cpu, _ = measured(lambda: (Repository(paths.snapshots).read_manifest_rows(older),
                                              Repository(paths.snapshots).read_manifest_rows(newer)))
    diff_s, diff_cpu, result = measured(lambda: MemoryBrowser.for_paths(paths).diff(older, newer))
    counts = result.counts()
    report("baseline: read both manifests whole", f"{floor_s:.3f} s (cpu {floor_cpu:.3f} s)")
    report("diff, snapshots 199 apart (target <= 1 s)",
           f"{diff_s:.3f} s (cpu {diff_cpu:.3f} s; {diff_s / floor_s:.2f}x the baseline): {counts['added']} added, "
           f"{counts['removed']} removed, {counts['changed']} changed")
    near_s, near_cpu, near = measured(lambda: MemoryBrowser.for_paths(paths).diff(ids[-2], ids[-1]))
    report("diff, neighbouring snapshots", f"{near_s:.3f} s (cpu {near_cpu:.3f} s; {len(near.changes)} changes)")

    def across_bases():   # what a diff of snapshots on two base lists does: every row of each compared
        lists = FileLists(Repository(paths.snapshots))
        return diff_filesets(*every_row_pair(lists.open(older), lists.open(newer)))
    wide_s, wide_cpu, wide = measured(across_bases)
    assert {(c.change, c.version.id) for c in wide.changes} == {(c.change, c.version.id) for c in result.changes}
    report("diff, 199 apart, as if on two base lists (every row)", f"{wide_s:.3f} s (cpu {wide_cpu:.3f} s)")

    sample = ids[:: max(1, len(ids) // 20)]
    naive_s, naive_cpu, _ = measured(lambda: [Repository(paths.snapshots).read_manifest_rows(i) for i in sample])
    scale = len(ids) / len(sample)
    history_s, history_cpu, history = measured(lambda: MemoryBrowser.for_paths(paths).history(hottest))
    report(f"baseline: decode all {len(ids)} manifests whole (from {len(sample)})",
           f"{naive_s * scale:.2f} s (cpu {naive_cpu * scale:.2f} s)")
    report(f"history ID over {len(ids)} snapshots (target <= 1 s)",
           f"{history_s:.3f} s (cpu {history_cpu:.3f} s; {naive_s * scale / history_s:.0f}x faster than the "
           f"baseline): {len(history.steps)} versions")

    window = ids[-100:]
    expected = set()
    for snapshot_id in window:
        _, rows = repo.read_manifest_rows(snapshot_id)
        expected.update(row[5] for row in rows if row[5] and document_file(row[0]))
    found_s, found_cpu, found = measured(lambda: find_memories(Repository(paths.snapshots), FindQuery(NEEDLE), window))
    assert found.blobs_read == len(expected), (found.blobs_read, len(expected))
    zstd_s, zstd_cpu, zstd_bytes = measured(lambda: bare_zstd(Repository(paths.snapshots), sorted(expected)))
    assert zstd_bytes == found.bytes_read
    mb = found.bytes_read / 1e6
    report("find TEXT over 100 snapshots: blobs", f"{found.blobs_read} read once each = the distinct blobs of "
           f"those snapshots ({mb:.0f} MB); {len(found.matches)} memories found")
    report("baseline: bare zstd decompress of the same blobs", f"{zstd_s:.2f} s (cpu {zstd_cpu:.2f} s), "
           f"{mb / zstd_s:.0f} MB/s")
    report("find TEXT over 100 snapshots", f"{found_s:.2f} s (cpu {found_cpu:.2f} s), {mb / found_s:.0f} MB/s "
           f"({found_s / zstd_s:.1f}x the bare decompress)")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; cpu = this process's CPU time)")


def measured(fn):
    """(wall seconds, CPU seconds of this process, fn()): on a shared machine the CPU time says what
    the work costs, the wall time what a user waits."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, value


def main() -> int:
    parser = argparse.ArgumentParser(description="memory answers benchmark")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=1000)
    parser.add_argument("--dir", default=None, help="work folder (default: a temp folder, removed after)")
    args = parser.parse_args()
    with work_folder(args.dir, "bench-memories-") as work:
        run(work, args.docs, args.snapshots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
