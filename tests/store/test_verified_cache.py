"""The verified-file cache: an unchanged store is judged from the cache, any change is re-read."""

from __future__ import annotations

import json
import os

import pytest

import damage
from guardian.format import chromem
from guardian.store import verified_cache
from guardian.store.scan import scan_store

MEMORIES = damage.MEMORIES


def swap_bytes_keep_stat(path, data: bytes) -> None:
    """Replace a file's bytes in place (same size, same inode), then restore its mtime."""
    st = os.stat(path)
    assert len(data) == st.st_size
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_ino == st.st_ino


def first_document(store):
    return next(p for p in sorted((store / MEMORIES).glob("*.gob*")) if not p.name.startswith("00000000"))


def test_unchanged_store_is_answered_from_the_cache(any_store, tmp_path):
    cache = tmp_path / "cache"
    first = scan_store(any_store, cache_dir=cache)
    assert first.loadable and (cache / "check" / "index.json").exists()
    victim = first_document(any_store)
    swap_bytes_keep_stat(victim, b"\x00" * victim.stat().st_size)  # garbage chromem would refuse
    cached = scan_store(any_store, cache_dir=cache)
    assert cached.loadable and cached.healthy  # proof the cached verdict was used, nothing decoded
    assert cached.loaded_collections() == first.loaded_collections()
    assert not scan_store(any_store).loadable  # without the cache the damage is seen


def test_changed_mtime_is_detected(any_store, tmp_path):
    cache = tmp_path / "cache"
    scan_store(any_store, cache_dir=cache)
    victim = first_document(any_store)
    swap_bytes_keep_stat(victim, b"\x00" * victim.stat().st_size)
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    scan = scan_store(any_store, cache_dir=cache)
    assert not scan.loadable
    assert scan.cause == f"{MEMORIES}/{victim.name}"


def test_only_changed_files_are_decoded_again(plain_store, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    scan_store(plain_store, cache_dir=cache)
    decoded = []
    from guardian.store import scan as scan_mod
    real = scan_mod.verify_document
    monkeypatch.setattr(scan_mod, "verify_document", lambda path: decoded.append(path) or real(path))
    scan_store(plain_store, cache_dir=cache)
    assert decoded == []
    victim = first_document(plain_store)
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 1))
    scan = scan_store(plain_store, cache_dir=cache)
    assert decoded == [str(victim)]
    assert scan.loadable and scan.healthy


def test_cached_damage_is_still_reported(plain_store, tmp_path, verdicts):
    cache = tmp_path / "cache"
    damage.DAMAGES["truncated_document"](plain_store, False)
    first = scan_store(plain_store, cache_dir=cache)
    second = scan_store(plain_store, cache_dir=cache)
    assert not second.loadable
    assert (second.error, second.cause) == (first.error, first.cause)
    assert second.error == verdicts["plain/truncated_document"]["chromem_error"]
    assert [p.kind for p in second.problems] == [p.kind for p in first.problems]


def test_new_and_removed_files_change_the_listing(plain_store, tmp_path):
    cache = tmp_path / "cache"
    scan_store(plain_store, cache_dir=cache)
    (plain_store / MEMORIES / "00000000.gob").unlink()
    assert not scan_store(plain_store, cache_dir=cache).loadable


def test_cache_of_the_other_compression_is_not_reused(plain_store, tmp_path):
    cache = tmp_path / "cache"
    scan_store(plain_store, cache_dir=cache)
    assert verified_cache.VerifiedCache(cache, compress=True).index["folders"] == {}
    assert verified_cache.VerifiedCache(cache, compress=False).index["folders"]


@pytest.mark.parametrize("junk", [b"", b"not json", b"[1, 2]", b'{"version": 99}'])
def test_corrupt_cache_files_are_ignored(plain_store, tmp_path, junk):
    cache = tmp_path / "cache"
    scan_store(plain_store, cache_dir=cache)
    for path in (cache / "check").iterdir():
        path.write_bytes(junk)
    scan = scan_store(plain_store, cache_dir=cache)
    assert scan.loadable and scan.healthy
    assert json.loads((cache / "check" / "index.json").read_text())["version"] == verified_cache.VERSION


def test_cache_lives_outside_the_store(plain_store, tmp_path):
    before = sorted(p.relative_to(plain_store) for p in plain_store.rglob("*"))
    scan_store(plain_store, cache_dir=tmp_path / "cache")
    assert sorted(p.relative_to(plain_store) for p in plain_store.rglob("*")) == before


def test_unwritable_cache_dir_only_costs_speed(plain_store, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    assert scan_store(plain_store, cache_dir=blocker).loadable


def test_gz_extension_names_are_cached_per_folder(gz_store, tmp_path):
    cache = tmp_path / "cache"
    scan = scan_store(gz_store, cache_dir=cache)
    assert scan.compress and scan.loadable
    records = verified_cache.VerifiedCache(cache, True).folder(MEMORIES)
    assert len(records) == 40 and all(name.endswith(chromem.GZ_EXT) for name in records)


# ------------------------------------------------------------------ the listing behind the digest


def row_walk(folder) -> list[tuple]:
    """The general (scandir) reading of a folder, to compare the fast columns reading with."""
    from guardian.store.scan import FolderListing

    with os.scandir(folder) as it:
        return FolderListing._from_entries(list(it)).rows


def test_a_folder_of_plain_files_is_read_as_columns_with_the_same_rows(any_store):
    from guardian.store.scan import FolderListing

    folder = any_store / MEMORIES
    listing = FolderListing.read(str(folder), follow=False)
    assert listing._columns is not None   # the fast path was taken
    assert listing.rows == row_walk(folder)
    assert listing.names() == "\0" + "\0".join(row[0] for row in row_walk(folder)) + "\0"


@pytest.mark.parametrize("odd", ["symlink", "subfolder", "dangling"])
def test_a_folder_with_a_symlink_or_a_folder_is_read_as_rows(plain_store, odd):
    from guardian.store.scan import FolderListing

    folder = plain_store / MEMORIES
    victim = first_document(plain_store)
    if odd == "symlink":
        os.symlink(victim.name, folder / "0000abcd.gob")
    elif odd == "subfolder":
        (folder / "sub").mkdir()
    else:
        os.symlink("nowhere", folder / "0000abcd.gob")
    listing = FolderListing.read(str(folder), follow=False)
    assert listing._columns is None
    assert listing.rows == row_walk(folder)


def test_listing_digest_is_the_same_in_another_process(any_store):
    """The digest is compared across runs: it must not depend on the process (marshal's bytes did)."""
    import subprocess
    import sys

    from guardian.store.scan import FolderListing

    code = ("import sys; from guardian.store.scan import FolderListing as L; "
            "print(L.read(sys.argv[1], follow=False).digest())")
    for folder in (any_store / MEMORIES, any_store):   # columns, then rows (the root holds folders)
        mine = FolderListing.read(str(folder), follow=folder == any_store).digest()
        theirs = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                                check=True).stdout.strip()
        assert mine == theirs


def test_renamed_document_changes_the_listing(plain_store, tmp_path):
    """Same files, same stat, one name changed: the folder is judged again (id_hash_mismatch)."""
    cache = tmp_path / "cache"
    assert scan_store(plain_store, cache_dir=cache).healthy
    victim = first_document(plain_store)
    victim.rename(victim.with_name("0badc0de.gob"))
    scan = scan_store(plain_store, cache_dir=cache)
    assert "id_hash_mismatch" in [p.kind for p in scan.problems]


def test_replaced_file_with_the_same_size_and_mtime_is_found_by_its_inode(plain_store, tmp_path):
    cache = tmp_path / "cache"
    scan_store(plain_store, cache_dir=cache)
    victim = first_document(plain_store)
    st = victim.stat()
    twin = victim.with_name(".twin")
    twin.write_bytes(b"\x00" * st.st_size)
    os.utime(twin, ns=(st.st_atime_ns, st.st_mtime_ns))
    twin.rename(victim)   # a new inode under the old name, size and mtime
    scan = scan_store(plain_store, cache_dir=cache)
    assert not scan.loadable
    assert scan.cause == f"{MEMORIES}/{victim.name}"


def test_mode_change_changes_the_digest(plain_store):
    from guardian.store.scan import FolderListing

    folder = str(plain_store / MEMORIES)
    before = FolderListing.read(folder, follow=False).digest()
    os.chmod(first_document(plain_store), 0o600)
    assert FolderListing.read(folder, follow=False).digest() != before


def test_fifo_added_to_a_cached_folder_is_found_without_opening_it(plain_store, tmp_path):
    cache = tmp_path / "cache"
    scan_store(plain_store, cache_dir=cache)
    os.mkfifo(plain_store / MEMORIES / "0fee0fee.gob")
    scan = scan_store(plain_store, cache_dir=cache)
    assert "special_file" in [p.kind for p in scan.problems] and not scan.loadable


def test_symlink_added_to_a_cached_folder_is_found(plain_store, tmp_path):
    cache = tmp_path / "cache"
    scan_store(plain_store, cache_dir=cache)
    victim = first_document(plain_store)
    os.symlink(victim.name, plain_store / MEMORIES / "0000abcd.gob")
    scan = scan_store(plain_store, cache_dir=cache)
    assert "symlinked_file" in [p.kind for p in scan.problems]


def known_records(store) -> dict:
    """What a restore hands its loadability check: every document's stat key and ID, as judged."""
    records: dict = {}
    for path in (store / MEMORIES).iterdir():
        if path.name.startswith("00000000"):
            continue
        info = path.stat()
        doc = chromem.read_document(path)
        records.setdefault(MEMORIES, {})[path.name] = [info.st_size, info.st_mtime_ns, info.st_ino, doc.id, None]
    return records


def test_known_files_are_trusted_while_their_stat_is_unchanged(any_store):
    known = known_records(any_store)
    victim = first_document(any_store)
    swap_bytes_keep_stat(victim, b"\x00" * victim.stat().st_size)   # chromem would refuse these bytes
    assert not scan_store(any_store).loadable
    trusted = scan_store(any_store, known=known)
    assert trusted.loadable, "the known verdict was not used"
    os.utime(victim, ns=(1, 1))   # changed since it was judged: read again
    assert not scan_store(any_store, known=known).loadable


def test_known_files_still_get_the_store_checks(any_store):
    """Trusted bytes are not a trusted store: a missing metadata file is still fatal, and a known
    document's ID still counts for duplicates (the same ID known under two names)."""
    known = known_records(any_store)
    metadata = next((any_store / MEMORIES).glob("00000000.gob*"))
    moved = metadata.with_name("moved-away")
    metadata.rename(moved)
    assert not scan_store(any_store, known=known).loadable
    moved.rename(metadata)
    names = sorted(known[MEMORIES])
    known[MEMORIES][names[1]][3] = known[MEMORIES][names[0]][3]
    kinds = {p.kind for p in scan_store(any_store, known=known).problems}
    assert "duplicate_id" in kinds
