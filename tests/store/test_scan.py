"""scan_store against chromem's verdicts on every fixture damage (plain and gz) and each hazard."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

import damage
from guardian.errors import StoreError
from guardian.format import chromem
from guardian.format.chromem import Document
from guardian.store.scan import scan_store

MEMORIES = damage.MEMORIES


@pytest.mark.parametrize("name", sorted(damage.DAMAGES))
def test_scan_predicts_chromems_verdict(name, any_store, verdicts):
    compress = any(any_store.glob("*/*.gob.gz"))
    damage.DAMAGES[name](any_store, compress)
    verdict = verdicts[f"{'gz' if compress else 'plain'}/{name}"]
    scan = scan_store(any_store)
    assert scan.compress is compress
    assert scan.loadable is verdict["chromem_loads"]
    assert scan.error == verdict["chromem_error"]
    if scan.loadable:
        assert scan.loaded_collections() == verdict["collections"]
        assert scan.cause == ""
    else:
        assert scan.cause in EXPECTED_CAUSES[name](compress)
        assert scan.exit_code() == 3


def meta_path(compress, folder=MEMORIES):
    return f"{folder}/00000000{chromem.extension(compress)}"


def doc_path(stem, compress):
    return f"{MEMORIES}/{stem}{chromem.extension(compress)}"


EXPECTED_CAUSES = {
    "missing_metadata": lambda c: {meta_path(c)},
    "empty_metadata": lambda c: {meta_path(c)},
    "truncated_metadata": lambda c: {meta_path(c)},
    "garbage_metadata": lambda c: {meta_path(c)},
    "empty_document": lambda c: {doc_path("5628d2e7", c)},
    "truncated_document": lambda c: {doc_path("d3a0e1a0", c)},
    "several_empty_documents": lambda c: {doc_path("252243ab", c)},  # chromem stops at the first, by name
    "orphan_docs_two_collections": lambda c: {meta_path(c)},  # 40917930 sorts before 6c7f5464
    "hidden_backup_dir": lambda c: {".backup"},
    "bitflip_embedding": lambda c: {doc_path("49b83176", c)},
    "metadata_is_directory": lambda c: {meta_path(c)},
}


def test_healthy_stores_scan_clean(any_store, contents):
    scan = scan_store(any_store)
    assert scan.loadable and scan.healthy and scan.exit_code() == 0
    assert scan.loaded_collections() == {c["name"]: len(c["documents"]) for c in contents["collections"]}
    data = scan.to_dict()
    assert data["loadable"] is True and data["problems"] == []
    by_dir = {c.dir: c for c in scan.collections}
    assert by_dir["655f126a"].metadata == {"created_by": "contextd"} and by_dir["655f126a"].status == "healthy"


def kinds(scan):
    return sorted(p.kind for p in scan.problems)


def write_doc(folder, doc, compress=False, stem=None):
    name = (stem or chromem.document_stem(doc.id)) + chromem.extension(compress)
    (folder / name).write_bytes(chromem.encode_document(doc, compress=compress))
    return folder / name


def sample(doc_id):
    return Document(doc_id, {}, np.ones(4, np.float32), "text")


def test_duplicate_id_across_two_files(plain_store):
    folder = plain_store / MEMORIES
    original = next(p for p in sorted(folder.glob("*.gob")) if p.name != "00000000.gob")
    shutil.copy(original, folder / "ffffffff.gob")
    scan = scan_store(plain_store)
    assert scan.loadable
    assert "duplicate_id" in kinds(scan) and "id_hash_mismatch" in kinds(scan)
    assert scan.loaded_collections()["webapp_memories"] == 40  # chromem keeps one of the two
    dup = next(p for p in scan.problems if p.kind == "duplicate_id")
    assert dup.path == f"{MEMORIES}/ffffffff.gob" and dup.severity == "warning"


def test_id_hash_mismatch(plain_store):
    write_doc(plain_store / MEMORIES, sample("renamed"), stem="12345678")
    scan = scan_store(plain_store)
    assert scan.loadable and kinds(scan) == ["id_hash_mismatch"]
    assert scan.loaded_collections()["webapp_memories"] == 41
    assert scan.collection(MEMORIES).status == "warning" and scan.exit_code() == 1


def test_document_written_over_metadata_is_not_overwritten_unless_its_id_hashes_there(plain_store):
    """A document file sitting at 00000000.gob: chromem reads it as a nameless collection record.

    The true case (an id whose sha256 starts 00000000) takes ~4e9 tries to find; this checks the
    negative path and the plumbing: no metadata_overwritten claim for an id that hashes elsewhere.
    """
    folder = plain_store / MEMORIES
    write_doc(folder, sample("not-a-zero-hash"), stem="00000000")
    scan = scan_store(plain_store)
    assert "metadata_overwritten" not in kinds(scan)
    assert not scan.loadable  # documents but no collection name
    assert scan.error == f"collection metadata file not found: <store>/{MEMORIES}"
    assert scan.collection(MEMORIES).name == ""


def test_overwritten_metadata_is_reported_when_the_id_hashes_to_zero(plain_store, monkeypatch):
    from guardian.store import scan as scan_mod
    real_stem = chromem.document_stem
    monkeypatch.setattr(scan_mod.layout, "document_stem",
                        lambda doc_id: "00000000" if doc_id == "zero-hash" else real_stem(doc_id))
    folder = plain_store / "655f126a"  # contextd_default: metadata only
    write_doc(folder, sample("zero-hash"), stem="00000000")
    scan = scan_store(plain_store)
    assert "metadata_overwritten" in kinds(scan)


def test_symlinked_folder_at_root_is_ignored(plain_store, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(plain_store / MEMORIES, outside)
    os.symlink(outside, plain_store / "deadbeef")
    scan = scan_store(plain_store)
    assert scan.loadable and kinds(scan) == ["symlinked_folder"]
    assert scan.collection("deadbeef") is None


def test_fifo_named_like_a_document_is_special_without_hanging(plain_store):
    fifo = plain_store / MEMORIES / "abcdef01.gob"
    os.mkfifo(fifo)
    result = {}
    worker = threading.Thread(target=lambda: result.update(scan=scan_store(plain_store)), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("scan blocked on a FIFO")
    scan = result["scan"]
    assert not scan.loadable and scan.cause == f"{MEMORIES}/abcdef01.gob"
    assert "special_file" in kinds(scan)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_document(plain_store):
    path = next((plain_store / MEMORIES).glob("[1-9]*.gob"))
    path.chmod(0)
    scan = scan_store(plain_store)
    assert not scan.loadable and "document_unreadable" in kinds(scan)


def test_mixed_compression_is_detected_and_reported(plain_store):
    folder = plain_store / "8b552d4e"
    for path in list(folder.glob("*.gob"))[:3]:
        if path.name != "00000000.gob":
            path.with_name(path.name + ".gz").write_bytes(chromem.gzip_bytes(path.read_bytes()))
            path.unlink()
    scan = scan_store(plain_store)
    assert scan.compress is False
    assert "mixed_compression" in kinds(scan) and kinds(scan).count("other_format_file") >= 2
    assert scan.loadable and scan.loaded_collections()["alice_webapp_codebase"] < 30


def test_compression_auto_detection_and_override(any_store):
    detected = scan_store(any_store)
    forced = scan_store(any_store, compress=not detected.compress)
    assert detected.loadable and detected.healthy
    assert forced.compress is not detected.compress
    assert "other_format_file" in kinds(forced)
    assert forced.loaded_collections() == {}  # chromem would see nothing in the other format


def test_store_missing_and_not_a_folder(tmp_path):
    scan = scan_store(tmp_path / "nope")
    assert scan.loadable and kinds(scan) == ["store_missing"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError):
        scan_store(tmp_path / "file")


def test_stray_folder_with_documents_but_no_hash_name(plain_store):
    folder = plain_store / "notes"
    folder.mkdir()
    write_doc(folder, sample("a"))
    scan = scan_store(plain_store)
    assert not scan.loadable and scan.cause == "notes" and "stray_folder" in kinds(scan)


def test_empty_name_metadata_alone_is_skipped_with_a_warning(plain_store):
    folder = plain_store / "0000aaaa"
    folder.mkdir()
    (folder / "00000000.gob").write_bytes(chromem.encode_collection("", {"k": "v"}))
    scan = scan_store(plain_store)
    assert scan.loadable and kinds(scan) == ["metadata_empty_name"]
    assert "" not in scan.loaded_collections()


def test_to_dict_lists_problems_with_hints(plain_store):
    damage.DAMAGES["missing_metadata"](plain_store, False)
    data = scan_store(plain_store).to_dict()
    assert data["loadable"] is False and data["cause"] == f"{MEMORIES}/00000000.gob"
    problem = data["problems"][0]
    assert problem["kind"] == "metadata_missing" and problem["severity"] == "fatal" and "repair" in problem["hint"]


CLI_CASES = ["missing_metadata", "truncated_document", "wrong_format_file", "bitflip_embedding"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_guardian_check_cli_reports_chromems_verdict(name, any_store, verdicts, cli):
    compress = any(any_store.glob("*/*.gob.gz"))
    damage.DAMAGES[name](any_store, compress)
    verdict = verdicts[f"{'gz' if compress else 'plain'}/{name}"]
    proc = cli("check", "--store", str(any_store), "--json")
    report = __import__("json").loads(proc.stdout_text)
    assert report["loadable"] is verdict["chromem_loads"]
    assert report["error"] == verdict["chromem_error"]
    if not verdict["chromem_loads"]:
        assert report["cause"] in EXPECTED_CAUSES[name](compress)
        assert proc.returncode != 0


def test_a_scan_keeps_its_folder_listings_only_when_asked_and_hands_them_over_once(any_store):
    from guardian.store.scan import FolderListing

    assert scan_store(any_store).listings is None
    scan = scan_store(any_store, keep_listings=True)
    listings = scan.take_listings()
    assert sorted(listings) == sorted(p.name for p in any_store.iterdir() if p.is_dir())
    for name, listing in listings.items():   # exactly what listing the folder now gives
        assert listing.digest() == FolderListing.read(str(any_store / name)).digest()
    assert scan.take_listings() is None and scan.listings is None
    assert "listings" not in scan.to_dict()
