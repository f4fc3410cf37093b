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
