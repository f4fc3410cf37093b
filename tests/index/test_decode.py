"""Bulk decoding of document files (guardian/index/decode.py): worker processes and in-process agree."""

from __future__ import annotations

import mmap
import os
import signal
import tempfile

import numpy as np
import pytest

from guardian.format.chromem import Document, encode_document
from guardian.index import decode
from tests.waiting import wait_until


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


def index_of(decoded):
    """The collection index built from a Decoded (rows, problems), as plain values."""
    from guardian.index.collection_index import CollectionIndex

    index = CollectionIndex.empty("c", "c").updated(decoded, {})
    rows = index.rows
    return ([(rows.files[i], rows.ids[i], rows.contents[i], rows.metadatas[i], rows.vector(i).tobytes())
             for i in range(len(rows))], [(p.file, p.kind, p.detail) for p in index.problems])


def memfds() -> list[str]:
    """This process's open shared matrix files (memfds), by what /proc says they are."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "guardian-index-matrix" in target:
            found.append(target)
    return found


def shared_mappings() -> list[str]:
    """This process's mappings of a shared matrix file or of anything in /dev/shm."""
    with open("/proc/self/maps") as maps:
        return [line for line in maps if "guardian-index-matrix" in line or "/dev/shm/" in line]


def matrix_home(decoded) -> str:
    """Where the joined matrix lives: 'shared' (the memfd mapping) or 'private' (numpy's own)."""
    base = decoded.chunks[0].matrix
    while getattr(base, "base", None) is not None:
        base = base.base
    return "shared" if isinstance(base, (mmap.mmap, memoryview)) else "private"


def damaged_folder(tmp_path):
    """Files that leave holes in the chunks (cut and missing files early), NaN rows, an odd dimension."""
    folder = tmp_path / "c"
    paths = write_documents(folder, 230)
    (folder / "00000000-cut.gob").write_bytes(paths[0].read_bytes()[:40])      # chunk 0 holds a hole
    (folder / "0000003a-cut.gob").write_bytes(paths[1].read_bytes()[:60])
    for i, name in ((7, "0000007a-nan.gob"), (120, "00000078-inf.gob")):
        vector = np.ones(8, dtype=np.float32)
        vector[i % 8] = np.nan if "nan" in name else np.inf
        (folder / name).write_bytes(encode_document(Document(f"bad-{i}", {}, vector, "x"), False))
    write_documents(tmp_path / "odd", 1, dim=3)[0].rename(folder / "000000aa-odd.gob")
    return sorted(folder.iterdir())


def test_workers_write_rows_into_a_shared_matrix_and_answer_as_one_process(tmp_path, monkeypatch):
    paths = damaged_folder(tmp_path)
    monkeypatch.setattr(decode, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(decode, "CHUNK_FILES", 40)
    alone = decode.decode_files(paths, workers=1)
    parallel = decode.decode_files(paths, workers=2)
    assert matrix_home(parallel) == "shared" and matrix_home(alone) == "private"
    assert flat(parallel) == flat(alone)
    rows, problems = index_of(parallel)
    assert (rows, problems) == index_of(alone)
    assert sorted(p[:2] for p in problems) == [
        ("00000000-cut.gob", "undecodable"), ("0000003a-cut.gob", "undecodable"),
        ("00000078-inf.gob", "non-finite"), ("0000007a-nan.gob", "non-finite"),
        ("000000aa-odd.gob", "dimension-mismatch")]
    assert len(rows) == 230 and not parallel.finite
    assert len(memfds()) == 1   # the mapping holds its file while rows view it...
    del parallel
    assert memfds() == [] and shared_mappings() == []      # ...and no longer


def test_a_first_file_of_another_dimension_only_costs_the_shared_matrix(tmp_path, monkeypatch):
    """The shared matrix's dimension is read from the first file: a wrong guess sends rows pickled."""
    paths = write_documents(tmp_path / "c", 120)
    write_documents(tmp_path / "odd", 1, dim=3)[0].rename(tmp_path / "c" / "0-odd.gob")
    paths = sorted(tmp_path.joinpath("c").iterdir())
    monkeypatch.setattr(decode, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(decode, "CHUNK_FILES", 30)
    parallel = decode.decode_files(paths, workers=2)
    assert matrix_home(parallel) == "private" and parallel.finite
    assert flat(parallel) == flat(decode.decode_files(paths, workers=1))
    assert index_of(parallel) == index_of(decode.decode_files(paths, workers=1))


@pytest.mark.parametrize("when", ["before the first chunk", "after the first chunk arrived"])
def test_a_killed_worker_leaves_the_same_answer_and_nothing_behind(tmp_path, monkeypatch, when):
    """SIGKILL of a decode worker (before the decode, or once the first chunk came back): the decode
    finishes in-process with the same rows; once they are dropped no shared matrix file is open, and
    no file is left in /dev/shm or the temp folder."""
    paths = write_documents(tmp_path / "c", 2000)
    monkeypatch.setattr(decode, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(decode, "CHUNK_FILES", 20)
    shm_before = set(os.listdir("/dev/shm"))
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    pool = decode.DecodePool(2)
    killed = []

    def kill_a_worker():
        if not killed:
            pid = next(iter(pool.executor._processes))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    original_add = decode.ChunkJoiner.add

    def add_then_kill(self, segment):
        kill_a_worker()
        return original_add(self, segment)

    try:
        assert pool.started() and all(f.result(timeout=120) is None for f in pool.warming)
        if when == "before the first chunk":
            kill_a_worker()
            wait_until(lambda: pool.executor._broken, timeout=60)
        else:
            monkeypatch.setattr(decode.ChunkJoiner, "add", add_then_kill)
        decoded = decode.decode_files(paths, workers=2, pool=pool)
    finally:
        pool.close()
    monkeypatch.setattr(decode.ChunkJoiner, "add", original_add)
    assert killed and flat(decoded) == flat(decode.decode_files(paths, workers=1))
    if when == "before the first chunk":
        assert matrix_home(decoded) == "private"   # decoded in-process
    del decoded
    assert memfds() == [] and shared_mappings() == []
    # other processes of the machine may add files there meanwhile: only guardian-named ones count
    assert not {n for n in set(os.listdir("/dev/shm")) - shm_before if "guardian" in n}
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - tmp_before if "guardian" in n}


def test_names_in_byte_order_are_recognised_without_decoding():
    from guardian.index.collection_index import in_byte_order
    from guardian.index.rows import PackedStrings

    def packed(names):
        return PackedStrings.of_strings(names)

    assert in_byte_order(packed(["00000001.gob", "0000000a.gob", "ffffffff.gob"]))       # one width
    assert in_byte_order(packed(["a.gob", "ab.gob", "b.gob"]))                            # widths differ
    assert not in_byte_order(packed(["0000000a.gob", "00000001.gob"]))
    assert not in_byte_order(packed(["b.gob", "ab.gob"]))
    assert not in_byte_order(packed(["\u00e9.gob", "f.gob"]))   # not ASCII: not known, the strings decide
    assert not in_byte_order(packed(["a\0.gob", "a\0.gob"]))   # NUL: numpy's S type would strip it
