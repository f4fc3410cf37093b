"""Encrypted data objects sealed in units: one per blob of a pack, an index itself sealed. Any one
bad byte costs at most the one unit it lands in; units cannot be moved or swapped unnoticed."""

from __future__ import annotations

import hashlib
import os
import random

import pytest
import zstandard

from guardian.replicas import crypto, units
from guardian.snapshots.packs import PACK_MAGIC, PackWriter


@pytest.fixture
def pack(tmp_path) -> bytes:
    """A real pack of 40 blobs of a few KB each (as the repository writes them)."""
    writer = PackWriter(tmp_path, "tmp-pack")
    rng = random.Random(7)
    for i in range(40):
        content = (f"document {i} ".encode() * 50) + rng.randbytes(2000)
        writer.add(hashlib.sha256(content).hexdigest(), zstandard.ZstdCompressor(level=-1).compress(content),
                   len(content))
    done = writer.finish()
    return (tmp_path / f"{done.pack_id}.pack").read_bytes()


def test_a_pack_is_cut_into_its_header_each_frame_and_its_index(pack):
    pieces = units.pieces_of(pack)
    assert pieces[0] == (0, len(PACK_MAGIC), units.KIND_OTHER)
    assert [kind for _, _, kind in pieces[1:-1]] == [units.KIND_FRAME] * 40
    assert pieces[-1][1] == len(pack) and pieces[-1][2] == units.KIND_OTHER
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))          # contiguous: the file byte for byte
    other = os.urandom(200_000)
    assert [(s, e) for s, e, _ in units.pieces_of(other)] == [(0, 65536), (65536, 131072), (131072, 196608),
                                                            (196608, 200000)]


def test_units_round_trip_and_the_size_is_known_without_sealing(pack):
    sealer = crypto.Sealer(os.urandom(32))
    blob = sealer.seal_data("data/ab/x", pack)
    assert len(blob) == units.sealed_size(units.pieces_of(pack))
    opened = sealer.open_data("data/ab/x", blob)
    assert opened.complete and opened.plaintext() == pack
    assert pack[100:140] not in blob


def test_one_bad_byte_anywhere_costs_at_most_one_unit(pack):
    sealer = crypto.Sealer(os.urandom(32))
    blob = sealer.seal_data("data/ab/x", pack)
    pieces = len(units.pieces_of(pack))
    for position in list(range(0, 40)) + list(range(len(blob) - 400, len(blob))) + \
            random.Random(1).sample(range(len(blob)), 300):
        damaged = bytearray(blob)
        damaged[position] ^= 0x40
        opened = sealer.open_data("data/ab/x", bytes(damaged))
        assert len(opened.pieces) == pieces, position
        assert opened.lost <= 1, position
        good = [piece for _, piece in opened.pieces if piece is not None]
        original = [pack[s:e] for s, e, _ in units.pieces_of(pack)]
        assert all(piece in original for piece in good)


def test_units_cannot_be_moved_swapped_or_taken_from_another_object(pack):
    sealer = crypto.Sealer(os.urandom(32))
    blob = sealer.seal_data("data/ab/x", pack)
    assert sealer.open_data("data/cd/y", blob).lost == len(units.pieces_of(pack))   # another object's name
    other = crypto.Sealer(os.urandom(32))
    assert other.open_data("data/ab/x", blob).lost == len(units.pieces_of(pack))    # another key
    start = len(units.UNITS_MAGIC)
    lengths = [units.LENGTH.size + units.NONCE_BYTES + (e - s) + units.TAG_BYTES for s, e, _ in units.pieces_of(pack)]
    first = blob[start + lengths[0]:start + lengths[0] + lengths[1]]
    second = blob[start + lengths[0] + lengths[1]:start + sum(lengths[:3])]
    swapped = blob[:start + lengths[0]] + second + first + blob[start + sum(lengths[:3]):]
    assert sealer.open_data("data/ab/x", swapped).lost == 2            # both moved units are refused


def test_a_format_one_object_gives_its_plaintext_back_without_the_tag(pack):
    """GCM is counter mode: decrypting a damaged single-message object unchecked spoils one byte."""
    sealer = crypto.Sealer(os.urandom(32))
    blob = bytearray(sealer.seal("data/ab/x", pack))
    blob[len(blob) // 2] ^= 0x01
    plain = sealer.decrypt_unchecked(bytes(blob))
    assert len(plain) == len(pack) and sum(a != b for a, b in zip(plain, pack)) == 1
