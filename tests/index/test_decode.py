"""Bulk decoding of document files (guardian/index/decode.py): worker processes and in-process agree."""

from __future__ import annotations

import numpy as np

from guardian.format.chromem import Document, encode_document
from guardian.index import decode


def write_documents(folder, count, dim=8, compress=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    paths = []
    for i in range(count):
        vector = rng.standard_normal(dim).astype(np.float32)
        doc = Document(f"doc-{i:04d}", {"n": str(i), "t": "€"} if i % 3 else {}, vector, f"content {i} \udcfe")
        path = folder / f"{i:08x}.gob{'.gz' if compress else ''}"
        path.write_bytes(encode_document(doc, compress))
        paths.append(path)
    return paths


def flat(decoded):
    """Everything a Decoded holds, as plain values, chunk boundaries aside."""
    rows = [(seg.files[i], seg.ids[i], seg.contents[i], seg.metadatas[i], seg.matrix[i].tobytes())
            for seg in decoded.chunks for i in range(len(seg))]
    others = [(d.file, d.id, d.content, dict(d.metadata), d.embedding.tobytes()) for d in decoded.others]
    return rows, others, sorted((p.file, p.kind, p.detail) for p in decoded.problems)


def test_worker_processes_decode_exactly_what_one_process_decodes(tmp_path, monkeypatch):
    paths = write_documents(tmp_path / "c", 230)
    write_documents(tmp_path / "odd", 1, dim=3)[0].rename(tmp_path / "c" / "zz-odd.gob")
    (tmp_path / "c" / "zz-cut.gob").write_bytes(paths[0].read_bytes()[:40])
    paths = sorted(tmp_path.joinpath("c").iterdir())
    monkeypatch.setattr(decode, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(decode, "CHUNK_FILES", 50)
    alone = decode.decode_files(paths, workers=1)
    parallel = decode.decode_files(paths, workers=2)
    assert len(alone.chunks) == 1 and len(parallel.chunks) == 1  # 5 chunks of 50 files, joined in order
    assert flat(parallel) == flat(alone)
    rows, others, problems = flat(alone)
    assert [r[1] for r in rows] == [f"doc-{i:04d}" for i in range(230)]
    assert rows[1][2] == "content 1 \udcfe" and rows[1][3] == {"n": "1", "t": "€"} and rows[0][3] == {}
    assert [o[0] for o in others] == ["zz-odd.gob"]  # its own dimension: set aside, still decoded
    assert [(p[0], p[1]) for p in problems] == [("zz-cut.gob", "undecodable")]


def test_a_chunk_of_another_dimension_stays_apart():
    from guardian.index.rows import Segment

    joiner = decode.ChunkJoiner(10)
    four = Segment.of_rows(["a.gob", "b.gob"], ["a", "b"], ["", ""], [{}, {}], np.ones((2, 4), np.float32))
    three = Segment.of_rows(["c.gob"], ["c"], [""], [{}], np.ones((1, 3), np.float32))
    for segment in (four, three, four):
        joiner.add(segment)
    joined, apart = joiner.segments()
    assert list(joined.ids) == ["a", "b", "a", "b"] and joined.matrix.shape == (4, 4)
    assert apart is three


def test_gz_documents_and_unreadable_paths(tmp_path):
    paths = write_documents(tmp_path / "gz", 5, compress=True)
    decoded = decode.decode_files(paths + [tmp_path / "gz" / "missing.gob.gz", tmp_path / "gz"], workers=1)
    assert [seg.ids[i] for seg in decoded.chunks for i in range(len(seg))] == [f"doc-{i:04d}" for i in range(5)]
    assert sorted((p.file, p.kind) for p in decoded.problems) == [("gz", "undecodable"),
                                                                  ("missing.gob.gz", "undecodable")]
    assert all(p.detail for p in decoded.problems)


def test_no_files_decode_to_nothing():
    decoded = decode.decode_files([], workers=2)
    assert decoded.chunks == [] and decoded.others == [] and decoded.problems == []


def test_a_pool_started_ahead_decodes_what_one_process_decodes(tmp_path, monkeypatch):
    paths = write_documents(tmp_path / "c", 120)
    monkeypatch.setattr(decode, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(decode, "CHUNK_FILES", 25)
    pool = decode.DecodePool(2)
    try:
        assert pool.usable
        for future in pool.warming:
            assert future.result(timeout=60) is None          # the workers are up, the decoder imported
        parallel = decode.decode_files(paths, workers=2, pool=pool)
        small = decode.decode_files(paths[:5], workers=2, pool=pool)   # below the threshold: in-process
    finally:
        pool.close()
    assert pool.executor is None and not pool.usable
    assert flat(parallel) == flat(decode.decode_files(paths, workers=1))
    assert flat(small) == flat(decode.decode_files(paths[:5], workers=1))
    assert flat(decode.decode_files(paths, workers=2, pool=pool)) == flat(parallel)   # closed: a new pool
