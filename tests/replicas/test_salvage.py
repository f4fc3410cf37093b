"""Reading a data object back: whole when intact; from a damaged one, every blob proven good and
nothing else, in each format (plain, encrypted in units, encrypted as one message before units)."""

from __future__ import annotations

import hashlib
import random

import pytest
import zstandard

from guardian.config import Config
from guardian.replicas import salvage
from guardian.replicas.layout import Entry
from guardian.replicas.replica import Replica
from guardian.snapshots.packs import PackWriter, index_of

BLOBS = 30


@pytest.fixture
def pack(tmp_path) -> bytes:
    writer = PackWriter(tmp_path, "tmp-pack")
    rng = random.Random(3)
    for i in range(BLOBS):
        content = f"memory {i}: ".encode() * 40 + rng.randbytes(1500)
        writer.add(hashlib.sha256(content).hexdigest(), zstandard.ZstdCompressor(level=-1).compress(content),
                   len(content))
    done = writer.finish()
    return (tmp_path / f"{done.pack_id}.pack").read_bytes()


def flipped(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x10]) + data[position + 1:]


def frame_middle(pack: bytes, number: int) -> int:
    _, offset, length, _ = sorted(index_of(pack), key=lambda e: e[1])[number]
    return offset + length // 2


def test_a_bad_byte_in_a_frame_costs_that_blob_only(pack):
    blobs = salvage.pack_blobs(flipped(pack, frame_middle(pack, 7)))
    assert len(blobs) == BLOBS - 1
    assert all(hashlib.sha256(content).hexdigest() == digest for digest, content in blobs.items())


def test_a_bad_byte_in_the_pack_index_costs_nothing(pack):
    assert len(salvage.pack_blobs(flipped(pack, len(pack) - 20))) == BLOBS     # frames found one by one
    assert len(salvage.pack_blobs(flipped(pack, len(pack) - 2))) == BLOBS      # the trailer


def test_a_valid_frame_put_in_another_blobs_place_is_not_taken_for_it(pack):
    entries = sorted(index_of(pack), key=lambda e: e[1])
    (digest, offset, length, _), other = entries[3], entries[4]
    forged = zstandard.ZstdCompressor(level=-1).compress(b"x" * other[3])   # a good frame, the wrong content
    forged = forged[:length].ljust(length, b"\0")
    blobs = salvage.pack_blobs(pack[:offset] + forged + pack[offset + length:])
    assert digest not in blobs and len(blobs) == BLOBS - 1


@pytest.mark.parametrize("encrypt", ["0", "1"])
def test_objects_read_back_whole_damaged_or_missing(tmp_path, pack, encrypt, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    replica = Replica.open(f"file://{tmp_path / 'replica'}?encrypt={encrypt}", Config(), create=True)
    entry = Entry("packs/x.pack", hashlib.sha256(pack).hexdigest(), len(pack))
    key = replica.data_key(entry.rel)
    replica.put_data(key, pack)
    whole = salvage.read_data_object(replica, key, entry)
    assert whole.intact and whole.data == pack
    stored = replica.target.get(key)
    replica.target.put(key, flipped(stored, len(stored) // 2))
    damaged = salvage.read_data_object(replica, key, entry)
    assert not damaged.intact and damaged.data is None and "damaged" in damaged.problem
    assert len(damaged.blobs) == BLOBS - 1
    replica.target.delete([key])
    assert salvage.read_data_object(replica, key, entry).missing


def test_a_damaged_object_of_the_first_encrypted_format_gives_its_good_blobs(tmp_path, pack, monkeypatch):
    """Objects pushed before units: one AES-GCM message. Failing its tag, its blobs are still had,
    each checked against the pack's index (and, when restored, the record's manifest)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    replica = Replica.open(f"file://{tmp_path / 'replica'}?encrypt=1", Config(), create=True)
    entry = Entry("packs/x.pack", hashlib.sha256(pack).hexdigest(), len(pack))
    key = replica.data_key(entry.rel)
    replica.put_plain(key, pack)                           # as guardian wrote data objects before
    assert salvage.read_data_object(replica, key, entry).intact
    stored = replica.target.get(key)
    replica.target.put(key, flipped(stored, 4 + 12 + frame_middle(pack, 11)))
    damaged = salvage.read_data_object(replica, key, entry)
    assert "fails authentication" in damaged.problem and len(damaged.blobs) == BLOBS - 1
