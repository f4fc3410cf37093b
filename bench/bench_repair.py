"""Repair benchmark on a synthetic 100k-document chromem store (384-dim embeddings, plain .gob).

Measures, in one run:
- baseline: reading + decoding every document file, i.e. the work chromem's NewPersistentDB must do
  to load the store (guardian's decoder; the real chromem-go v0.7.0 load of a 100k plain store was
  measured at ~3.2 s on this machine class, see bench_query.py);
- pre-flight on the unchanged store (warm verified-file cache): target <= 10% of the load, <= 0.35 s;
- a repair pass on the same store with one broken collection (metadata deleted, as in the incident,
  and 3 empty documents), no snapshot: name recovered from the documents, documents quarantined;
- contextd's own recovery: that collection's metadata deleted again and the folder moved to
  ``.quarantine/<hash>/`` as contextd's resilient loader does; a warm pre-flight that finds and counts
  the hidden documents (beside the warm pre-flight of the unchanged store), and the repair that brings
  the collection back (beside decoding its documents).

Usage: .venv/bin/python bench/bench_repair.py [--docs N] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import timed  # noqa: E402
from guardian.config import Config  # noqa: E402
from guardian.format.chromem import (Document, collection_dir_name, document_stem,  # noqa: E402
                                     encode_collection, encode_document, read_documents)
from guardian.repair.preflight import preflight  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402

DIM = 384
PROJECTS = ("webapp", "billing", "contextd", "infra")
CHROMEM_LOAD_100K_S = 3.2  # real chromem-go v0.7.0 NewPersistentDB, 100k plain docs (bench_query.py)


def write_store(root: Path, n: int) -> Path:
    """Four `{project}_memories` collections holding ``n`` documents in total (cached between runs)."""
    marker = root.parent / f"{root.name}.complete"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(1)
    per = n // len(PROJECTS)
    for p, project in enumerate(PROJECTS):
        name = f"{project}_memories"
        folder = root / collection_dir_name(name)
        folder.mkdir(parents=True)
        (folder / "00000000.gob").write_bytes(encode_collection(name, {}))
        block = rng.normal(size=(per, DIM)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        for i, vector in enumerate(block):
            doc_id = f"{project}-{i:07d}"
            doc = Document(doc_id, {"id": doc_id, "project_id": project, "tenant_id": "alice", "team_id": ""},
                           vector, f"memory {i} of {project}: something worth remembering")
            (folder / f"{document_stem(doc_id)}.gob").write_bytes(encode_document(doc))
    marker.write_text("ok")
    return root


def all_document_files(root: Path) -> list[Path]:
    return [Path(d.path) / f for d in os.scandir(root) if d.is_dir() for f in os.listdir(d.path)
            if f.endswith(".gob") and f != "00000000.gob"]



def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "guardian-bench-repair"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    source = write_store(work / f"source-{args.docs}", args.docs)

    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(work / "state", ignore_errors=True)
    shutil.copytree(source, store)
    paths = StatePaths.for_store(store, work / "state")
    config = Config(store=str(store), state_dir=str(work / "state"))

    files = all_document_files(store)
    load_s, batch = timed(lambda: read_documents(files))
    assert len(batch) == len(files) and not batch.errors  # (at 100k, two ids may share one 32-bit file name)
    cold_s, cold = timed(lambda: preflight(config, paths))
    warm_s, warm = timed(lambda: preflight(config, paths))
    assert warm.exit_code == 0 and not warm.actions

    broken = store / collection_dir_name("contextd_memories")
    (broken / "00000000.gob").unlink()
    for path in sorted(broken.iterdir())[:3]:
        path.write_bytes(b"")
    repair_s, repaired = timed(lambda: preflight(config, paths))
    assert repaired.loadable_after and not repaired.loadable_before, repaired.scan.error
    kinds = sorted(a["action"] for a in repaired.actions)
    after_s, after = timed(lambda: preflight(config, paths))
    assert not after.actions

    (broken / "00000000.gob").unlink()                     # contextd's resilient loader moves it aside
    (store / ".quarantine").mkdir()
    broken.rename(store / ".quarantine" / broken.name)
    moved = all_document_files(store / ".quarantine")
    decode_moved_s, _ = timed(lambda: read_documents(moved))
    found_s, found = timed(lambda: preflight(config, paths, dry_run=True))
    assert found.scan.hidden_documents == len(moved), found.scan.hidden_documents
    back_s, back = timed(lambda: preflight(config, paths))
    assert back.exit_code == 0 and back.scan.hidden_documents == 0
    assert not (store / ".quarantine" / broken.name).exists()

    scale = args.docs / 100_000
    print(f"store: {len(files)} document files x {DIM} dims in {len(PROJECTS)} collections ({store})")
    print(f"baseline: decode every document (chromem's load work)   {load_s:7.3f} s")
    print(f"          real chromem-go load, 100k plain (reference)   {CHROMEM_LOAD_100K_S * scale:7.3f} s")
    print(f"pre-flight, cold cache (first run, decodes everything)    {cold_s:7.3f} s")
    print(f"pre-flight, unchanged store (warm cache)                  {warm_s:7.3f} s   "
          f"= {100 * warm_s / load_s:.1f}% of the decode baseline, "
          f"{100 * warm_s / (CHROMEM_LOAD_100K_S * scale):.1f}% of chromem's load (target <= 10%, <= 0.35 s)")
    print(f"repair pass, one broken collection ({len(kinds)} actions: {', '.join(sorted(set(kinds)))})"
          f"  {repair_s:7.3f} s   = {repair_s / load_s:.2f}x the decode baseline")
    print(f"pre-flight right after the repair                         {after_s:7.3f} s")
    print(f"contextd moved {broken.name} to .quarantine/ ({len(moved)} documents):")
    print(f"  pre-flight finding and counting them (dry run, warm)      {found_s:7.3f} s   "
          f"(unchanged store: {warm_s:.3f} s)")
    print(f"  repair bringing the collection back                       {back_s:7.3f} s   "
          f"= {back_s / decode_moved_s:.2f}x decoding its documents ({decode_moved_s:.3f} s)")
    return 0 if warm_s <= 0.35 * scale or warm_s <= 0.1 * load_s else 1


if __name__ == "__main__":
    sys.exit(main())
