"""chromem records against the real fixture stores: decode exactly, encode byte-identically."""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np
import pytest

from guardian.errors import CodecError
from guardian.format import chromem
from guardian.format.chromem import CollectionRecord, Document
from tests_format_helpers import FIXTURES, fixture_documents, store_file

STORES = {"plain": (FIXTURES / "store-plain", False), "gz": (FIXTURES / "store-gz", True)}


def float32_bits(values) -> list[int]:
    return np.asarray(values, dtype=np.float32).view(np.uint32).tolist()


@pytest.mark.parametrize("mode", sorted(STORES))
def test_every_document_decodes_equal_to_contents(mode, contents):
    root, compress = STORES[mode]
    checked = 0
    for coll, doc in fixture_documents(contents):
        decoded = chromem.read_document(store_file(root, coll["dir"], doc["file"], compress))
        assert decoded.id == doc["id"]
        assert decoded.content == doc["content"]
        assert decoded.metadata == doc["metadata"]
        assert decoded.embedding.dtype == np.float32
        assert decoded.embedding.view(np.uint32).tolist() == float32_bits(doc["embedding"])
        checked += 1
    assert checked == 90


@pytest.mark.parametrize("mode", sorted(STORES))
def test_collection_records_decode_equal_to_contents(mode, contents):
    root, compress = STORES[mode]
    for coll in contents["collections"]:
        record = chromem.read_collection(store_file(root, coll["dir"], chromem.METADATA_STEM, compress))
        assert record == CollectionRecord(coll["name"], coll["metadata"])
        assert chromem.collection_dir_name(coll["name"]) == coll["dir"]


def test_document_file_names_are_sha256_prefixes(contents):
    for _, doc in fixture_documents(contents):
        assert chromem.document_stem(doc["id"]) == doc["file"]


@pytest.mark.parametrize("mode", sorted(STORES))
def test_read_documents_matches_single_reads(mode, contents):
    root, compress = STORES[mode]
    coll = next(c for c in contents["collections"] if c["name"] == "webapp_memories")
    paths = sorted((root / coll["dir"]).glob("*" + chromem.extension(compress)))
    paths = [p for p in paths if not p.name.startswith(chromem.METADATA_STEM)]
    batch = chromem.read_documents(paths)
    assert len(batch) == 40 and not batch.errors and not batch.ragged
    assert batch.embeddings.shape == (40, contents["dimension"]) and batch.embeddings.dtype == np.float32
    for i, path in enumerate(batch.paths):
        single = chromem.read_document(path)
        assert (batch.ids[i], batch.contents[i], batch.metadatas[i]) == (single.id, single.content, single.metadata)
        assert batch.embeddings[i].view(np.uint32).tolist() == single.embedding.view(np.uint32).tolist()


def test_read_documents_collects_errors_and_ragged_dimensions(tmp_path):
    good = [Document(f"id{i}", {}, np.full(4, i, np.float32), "c") for i in range(3)]
    paths = []
    for i, doc in enumerate(good):
        paths.append(tmp_path / f"{i}.gob")
        paths[-1].write_bytes(chromem.encode_document(doc))
    odd = tmp_path / "odd.gob"
    odd.write_bytes(chromem.encode_document(Document("odd", {}, np.ones(2, np.float32), "")))
    bad = tmp_path / "bad.gob"
    bad.write_bytes(chromem.encode_document(good[0])[:50])
    batch = chromem.read_documents([*paths, odd, bad])
    assert batch.ids == ["id0", "id1", "id2"]
    assert batch.embeddings.shape == (3, 4)
    assert list(batch.ragged) == [str(odd)]
    assert list(batch.errors) == [str(bad)] and isinstance(batch.errors[str(bad)], CodecError)
    assert batch.errors[str(bad)].path == str(bad)


# --------------------------------------------------------------------------- encoding


def test_metadata_with_zero_or_one_key_is_byte_identical_to_chromem(contents):
    small = [c for c in contents["collections"] if len(c["metadata"]) <= 1]
    assert len(small) == 4  # the fixtures hold 0-key and 1-key collections
    for coll in small:
        written = (FIXTURES / "store-plain" / coll["dir"] / "00000000.gob").read_bytes()
        assert chromem.encode_collection(coll["name"], coll["metadata"]) == written
        gz_written = (FIXTURES / "store-gz" / coll["dir"] / "00000000.gob.gz").read_bytes()
        ours = chromem.encode_collection(coll["name"], coll["metadata"], compress=True)
        assert gzip.decompress(ours) == gzip.decompress(gz_written) == written
        assert ours[:10] == gz_written[:10]  # Go's default gzip header: no name, mtime 0, OS 255


def test_documents_with_zero_or_one_metadata_key_are_byte_identical(contents):
    small = [(c, d) for c, d in fixture_documents(contents) if len(d["metadata"]) <= 1]
    assert small
    for coll, doc in small:
        written = (FIXTURES / "store-plain" / coll["dir"] / f"{doc['file']}.gob").read_bytes()
        assert chromem.encode_document(chromem.decode_document(written)) == written


@pytest.mark.parametrize("compress", [False, True])
def test_every_fixture_file_round_trips(contents, compress):
    root = FIXTURES / ("store-gz" if compress else "store-plain")
    for coll, doc in fixture_documents(contents):
        decoded = chromem.read_document(store_file(root, coll["dir"], doc["file"], compress))
        again = chromem.decode_document(chromem.encode_document(decoded, compress=compress))
        assert again == decoded
    for coll in contents["collections"]:
        record = chromem.read_collection(store_file(root, coll["dir"], chromem.METADATA_STEM, compress))
        encoded = chromem.encode_collection(record.name, record.metadata, compress=compress)
        assert chromem.decode_collection(encoded) == record


def test_multi_key_metadata_round_trips_in_any_order():
    metadata = {f"key{i}": "välue" * i for i in range(12)}
    for order in (metadata, dict(reversed(list(metadata.items())))):
        data = chromem.encode_collection("many", order)
        assert chromem.decode_collection(data) == CollectionRecord("many", metadata)


SPECIAL_FLOATS = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 1e-45, 1.1754942e-38,
                           np.finfo(np.float32).max, -np.finfo(np.float32).max, 0.1, 3.0e38],
                          dtype=np.float32)


@pytest.mark.parametrize("compress", [False, True])
def test_special_floats_round_trip_bit_exact(compress):
    bits = np.concatenate([SPECIAL_FLOATS.view(np.uint32), np.array([0x7FC00001, 0xFF800000, 1], np.uint32)])
    doc = Document("floats", {"a": "b"}, bits.view(np.float32), "x")
    back = chromem.decode_document(chromem.encode_document(doc, compress=compress))
    assert back.embedding.view(np.uint32).tolist() == bits.tolist()


def test_zero_values_round_trip():
    doc = Document("", {}, np.zeros(0, np.float32), "")
    assert chromem.decode_document(chromem.encode_document(doc)) == doc
    assert chromem.decode_collection(chromem.encode_collection("", None)) == CollectionRecord("", {})


def test_large_content_and_unicode_round_trip():
    doc = Document("ü-id", {"ключ": "値"}, np.linspace(-1, 1, 384, dtype=np.float32), "✓" * 70_000)
    assert chromem.decode_document(chromem.encode_document(doc)) == doc


# --------------------------------------------------------------------------- gzip as Go reads it


def go_gzip(payload: bytes, flags: int = 0, extra: bytes = b"") -> bytes:
    header = bytes([0x1F, 0x8B, 8, flags, 0, 0, 0, 0, 0, 0xFF]) + extra
    if flags & 0x02:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    body = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = body.compress(payload) + body.flush()
    return header + data + struct.pack("<II", zlib.crc32(payload), len(payload))


def sample_payload() -> bytes:
    return chromem.encode_document(Document("gz", {"k": "v"}, np.ones(8, np.float32), "body"))


def test_gzip_optional_header_fields_are_accepted():
    payload = sample_payload()
    extra = struct.pack("<H", 3) + b"abc" + b"name\x00" + b"comment\x00"
    data = go_gzip(payload, flags=0x04 | 0x08 | 0x10 | 0x02, extra=extra)
    assert chromem.decode_document(data).id == "gz"


def test_gzip_bad_header_crc_is_refused():
    data = bytearray(go_gzip(sample_payload(), flags=0x02))
    data[10] ^= 0xFF
    with pytest.raises(CodecError, match="invalid header"):
        chromem.decode_document(bytes(data))


def test_gzip_trailer_damage_and_trailing_garbage_do_not_matter():
    data = bytearray(go_gzip(sample_payload()))
    data[-8:] = b"\x00" * 8  # crc and size both wrong: Go's gob never reads that far
    assert chromem.decode_document(bytes(data) + b"garbage").id == "gz"


def test_gzip_short_header_is_unexpected_eof():
    with pytest.raises(CodecError, match="couldn't create gzip reader: unexpected EOF"):
        chromem.decode_document(b"\x1f\x8b\x08\x00")


def test_gzip_bomb_is_read_only_to_the_bound(monkeypatch):
    monkeypatch.setattr(chromem, "MAX_DECOMPRESSED", 1 << 16)
    monkeypatch.setattr(chromem, "MAX_FILE_BYTES", 1 << 16)
    big = chromem.encode_document(chromem.Document(id="big", content="x" * (1 << 17)))
    with pytest.raises(CodecError, match=chromem.TOO_LARGE):
        chromem.decode_document(go_gzip(big))
    with pytest.raises(CodecError, match=chromem.TOO_LARGE):   # Go would read every zero to EOF
        chromem.decode_document(go_gzip(b"\x00" * (1 << 17)))
    small = chromem.encode_document(chromem.Document(id="small", content="x" * 100))
    assert chromem.decode_document(go_gzip(small + b"\x00" * (1 << 17))).id == "small"  # decided in bound


def test_empty_file_is_chromems_magic_number_error(tmp_path):
    path = tmp_path / "x.gob"
    path.write_bytes(b"")
    with pytest.raises(CodecError) as info:
        chromem.read_document(path)
    assert info.value.reason == "couldn't read magic number to determine whether the stream is compressed: EOF"
    assert info.value.path == str(path)


def test_missing_file_is_a_codec_error(tmp_path):
    with pytest.raises(CodecError, match="couldn't open file"):
        chromem.read_collection(tmp_path / "nope.gob")


def test_record_sharing_no_field_is_a_codec_error():
    from guardian.format import gob
    data = gob.frame(-64, gob.struct_type_def("Other", 64, [("X", gob.T_STRING)]))
    data += gob.encode_struct_value(64, [(0, gob.encode_string("x"))])
    with pytest.raises(CodecError, match="no fields matched compiling decoder for Document"):
        chromem.decode_document(data)
    with pytest.raises(CodecError, match="no fields matched compiling decoder for $"):
        chromem.decode_collection(data)


def test_extension_and_names():
    assert chromem.extension(False) == ".gob" and chromem.extension(True) == ".gob.gz"
    assert chromem.collection_dir_name("webapp_memories") == "40917930"
    assert chromem.file_stem("00000000.gob.gz") == "00000000"
