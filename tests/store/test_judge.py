from __future__ import annotations

from guardian.format import chromem
from guardian.store.judge import damage_of, role_of
from tests.conftest import STORE_GZ, STORE_PLAIN


def first_document(store):
    folder = next(p for p in sorted(store.iterdir()) if p.is_dir())
    doc = next(p for p in sorted(folder.iterdir()) if not p.name.startswith("00000000"))
    return folder, doc


def test_roles():
    assert role_of("abcd1234/00000000.gob") == "metadata"
    assert role_of("abcd1234/00000000.gob.gz") == "metadata"
    assert role_of("abcd1234/1234abcd.gob") == "document"
    assert role_of("abcd1234/notes.txt") is None
    assert role_of("top.gob") is None
    assert role_of("a/b/c.gob") is None


def test_real_files_are_good_and_every_cut_is_damage():
    for store in (STORE_PLAIN, STORE_GZ):
        folder, doc = first_document(store)
        data = doc.read_bytes()
        rel = f"{folder.name}/{doc.name}"
        assert damage_of(rel, data) is None
        assert damage_of(rel, b"") == "empty"
        for cut in (1, len(data) // 3, len(data) // 2):  # (a gz file cut in its trailer still loads in chromem)
            assert damage_of(rel, data[:cut]) is not None, (store.name, cut)
        meta = folder / chromem.metadata_file_name(store is STORE_GZ)
        assert damage_of(f"{folder.name}/{meta.name}", meta.read_bytes()) is None
        assert damage_of(f"{folder.name}/{meta.name}", b"\x00garbage" * 8) is not None


def test_files_chromem_never_reads_are_not_judged():
    assert damage_of("abcd1234/readme.md", b"") is None


def test_judge_path_on_disk(tmp_path):
    import os
    import shutil

    from guardian.store.judge import judge_path, lstat_key

    store = tmp_path / "store"
    shutil.copytree(STORE_PLAIN, store)
    folder, doc = first_document(store)
    rel = f"{folder.name}/{doc.name}"
    assert judge_path(store, rel) is None
    doc.write_bytes(doc.read_bytes()[:20])
    found = judge_path(store, rel)
    assert found.kind == "document_damaged" and found.key == lstat_key(doc)
    doc.unlink()
    assert judge_path(store, rel) is None  # contextd deleted a memory
    os.mkfifo(doc)
    assert judge_path(store, rel).kind == "special_file"
    meta = folder / "00000000.gob"
    meta.unlink()
    assert judge_path(store, f"{folder.name}/00000000.gob").kind == "metadata_missing"
    stray = store / ".backup"
    stray.mkdir()
    assert judge_path(store, ".backup") is None
    (stray / "x.gob").write_bytes(b"x")
    assert judge_path(store, ".backup").kind == "stray_folder"
    assert judge_path(store, "notes.txt") is None


def test_judging_a_huge_sparse_file_reads_only_chromem_readers_bound(tmp_path):
    """A 4 GiB sparse file settled in a collection folder: live repair judges it within the same
    64 MiB bound as chromem's reader (guardian.format.chromem.read_file), never reading it whole."""
    import shutil
    import tracemalloc

    from guardian.store.judge import judge_path

    store = tmp_path / "store"
    shutil.copytree(STORE_PLAIN, store)
    folder, _ = first_document(store)
    huge = folder / "ffffffff.gob"
    with open(huge, "wb") as handle:
        handle.truncate(4 << 30)
    tracemalloc.start()
    try:
        found = judge_path(store, f"{folder.name}/{huge.name}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found is not None and found.kind == "document_damaged"
    assert peak < 3 * chromem.MAX_FILE_BYTES, peak
