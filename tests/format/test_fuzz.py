"""Fuzzing the codec: whatever the bytes, only the codec's own error escapes, fast, without hangs."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardian.errors import CodecError
from guardian.format import chromem, gob
from tests_format_helpers import FIXTURES

PLAIN_DOC = (FIXTURES / "store-plain/40917930/01e48869.gob").read_bytes()
GZ_DOC = (FIXTURES / "store-gz/40917930/01e48869.gob.gz").read_bytes()
PLAIN_META = (FIXTURES / "store-plain/6c7f5464/00000000.gob").read_bytes()
GZ_META = (FIXTURES / "store-gz/6c7f5464/00000000.gob.gz").read_bytes()
DECODERS = [chromem.decode_document, chromem.decode_collection]
PREFIX_END = gob.Decoder(chromem.DOCUMENT_TYPE).locate_value(PLAIN_DOC)[3]  # where the value message starts
FUZZ = settings(max_examples=800, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


def decode_only_codec_errors(data: bytes) -> None:
    for decode in DECODERS:
        try:
            decode(data)
        except CodecError:
            pass  # GobError is a CodecError; anything else propagates and fails the test


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data):
    decode_only_codec_errors(data)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_after_real_type_definitions(tail):
    prefix_end = PREFIX_END
    decode_only_codec_errors(PLAIN_DOC[:prefix_end] + tail)
    decode_only_codec_errors(chromem.gzip_bytes(PLAIN_DOC[:prefix_end] + tail))


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for op, where, value in edits:
        if not out:
            break
        i = where % len(out)
        if op == 0:
            out[i] ^= 1 << (value % 8)
        elif op == 1:
            out.insert(i, value)
        elif op == 2:
            del out[i]
        else:
            out[i] = value
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)


@FUZZ
@given(st.sampled_from([PLAIN_DOC, GZ_DOC, PLAIN_META, GZ_META]), EDITS)
def test_mutated_real_files(source, edits):
    decode_only_codec_errors(mutate(source, edits))


@pytest.mark.parametrize("source", [PLAIN_DOC, GZ_DOC, PLAIN_META, GZ_META], ids=["doc", "doc.gz", "meta", "meta.gz"])
def test_truncation_at_every_byte(source):
    """Plain files fail at every cut; a gzip file still loads when only its trailer is cut (as in Go)."""
    decode = chromem.decode_collection if source in (PLAIN_META, GZ_META) else chromem.decode_document
    whole = decode(source)
    loaded = []
    for n in range(len(source)):
        try:
            result = decode(source[:n])
        except CodecError:
            continue
        assert result == whole
        loaded.append(n)
    if source[:2] == chromem.GZIP_MAGIC:
        assert loaded and min(loaded) > len(source) - 12  # at most the 8-byte trailer and deflate's end
    else:
        assert loaded == []


def test_random_bit_flips_only_raise_codec_errors():
    rng = random.Random(20240607)
    for source in (PLAIN_DOC, GZ_DOC, PLAIN_META, GZ_META):
        for _ in range(400):
            data = bytearray(source)
            for _ in range(rng.randint(1, 3)):
                bit = rng.randrange(len(data) * 8)
                data[bit // 8] ^= 1 << (bit % 8)
            decode_only_codec_errors(bytes(data))


def value_message(count_bytes: bytes) -> bytes:
    """Real document type definitions, then a value whose Embedding claims ``count`` elements."""
    prefix_end = PREFIX_END
    body = gob.encode_int(66) + b"\x03" + count_bytes + b"\xfb\x00\x00\x80\x3f" * 4
    return PLAIN_DOC[:prefix_end] + gob.encode_uint(len(body)) + body


@pytest.mark.parametrize("count", [1 << 60, (1 << 64) - 1, 1 << 31, 10**9, 100])
def test_huge_claimed_lengths_fail_fast(count):
    started = time.perf_counter()
    with pytest.raises(CodecError):
        chromem.decode_document(value_message(gob.encode_uint(count)))
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("prefix", [b"\xf8" + b"\xff" * 8, b"\xfe\xff\xff", b"\x7f"])
def test_huge_message_counts_fail_fast(prefix):
    started = time.perf_counter()
    with pytest.raises(CodecError):
        chromem.decode_document(prefix + b"\x00" * 16)
    assert time.perf_counter() - started < 0.5


def test_huge_string_and_map_counts_fail_fast():
    prefix_end = PREFIX_END
    for field in (b"\x01" + gob.encode_uint(1 << 62), b"\x02" + gob.encode_uint(1 << 62)):
        body = gob.encode_int(66) + field + b"ab"
        with pytest.raises(CodecError):
            chromem.decode_document(PLAIN_DOC[:prefix_end] + gob.encode_uint(len(body)) + body)


def test_deeply_nested_type_definitions_fail_cleanly():
    """A chain of slice-of-slice definitions, skipped as an unknown field: no RecursionError escapes."""
    data = b""
    depth = 400
    for i in range(depth):
        data += gob.frame(-(100 + i), gob.slice_type_def(f"s{i}", 100 + i, 101 + i if i < depth - 1 else gob.T_INT))
    data += gob.frame(-99, gob.struct_type_def("Document", 99, [("ID", gob.T_STRING), ("Deep", 100)]))
    value = gob.encode_int(99) + b"\x01" + gob.encode_string("x") + b"\x01" + b"\x01" * depth + b"\x00"
    data += gob.encode_uint(len(value)) + value
    try:
        chromem.decode_document(data)
    except CodecError:
        pass


def test_bulk_read_equals_single_reads_on_damaged_files(tmp_path):
    """read_documents' batched float path gives exactly read_document's documents and errors."""
    rng = random.Random(99)
    paths = []
    for i in range(600):
        source = PLAIN_DOC if i % 3 else GZ_DOC
        data = bytearray(source)
        if i % 5:  # most damaged, some intact
            for _ in range(rng.randint(1, 3)):
                bit = rng.randrange(len(data) * 8)
                data[bit // 8] ^= 1 << (bit % 8)
        paths.append(tmp_path / f"{i:04d}.gob")
        paths[-1].write_bytes(bytes(data))
    batch = chromem.read_documents(paths)
    for path in paths:
        try:
            single = chromem.read_document(path)
        except CodecError as exc:
            assert batch.errors[str(path)].reason == exc.reason
            continue
        if str(path) in batch.ragged:
            assert batch.ragged[str(path)].view(np.uint32).tolist() == single.embedding.view(np.uint32).tolist()
            continue
        k = batch.paths.index(str(path))
        assert (batch.ids[k], batch.contents[k], batch.metadatas[k]) == (single.id, single.content, single.metadata)
        assert batch.embeddings[k].view(np.uint32).tolist() == single.embedding.view(np.uint32).tolist()
    assert len(batch) + len(batch.errors) + len(batch.ragged) == len(paths)


def outcome(decoder: gob.Decoder, data: bytes):
    try:
        fields = decoder.decode(chromem.gob_stream(data))
    except CodecError as exc:
        return "error", exc.reason
    return "ok", {k: v.tobytes() if isinstance(v, np.ndarray) else v for k, v in fields.items()}


def python_path_outcome(data: bytes, monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr(gob, "_decode_value", None)
        return outcome(gob.Decoder(chromem.DOCUMENT_TYPE), data)


@pytest.mark.skipif(gob._decode_value is None, reason="the C accelerator is not built")
@settings(max_examples=600, deadline=1000, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.sampled_from([PLAIN_DOC, PLAIN_DOC[:PREFIX_END]]), EDITS, st.binary(max_size=64))
def test_accelerated_decoder_and_prefix_reuse_agree_with_the_python_path(monkeypatch, source, edits, tail):
    """The C value decoder and the reused type prefix give the Python path's value or error, exactly."""
    data = mutate(source, edits) if source is PLAIN_DOC else source + tail
    decoder = gob.Decoder(chromem.DOCUMENT_TYPE)
    decoder.decode(PLAIN_DOC)  # the real prefix is now the decoder's last one: `data` may reuse it
    assert outcome(decoder, data) == python_path_outcome(data, monkeypatch)
    assert outcome(decoder, data) == python_path_outcome(data, monkeypatch)  # again, through the kept prefix


def zlib_only(monkeypatch, data: bytes) -> bytes:
    """What inflate_prefix gives without ISA-L (zlib's inflate and salvage alone)."""
    with monkeypatch.context() as patched:
        patched.setattr(chromem, "isal_zlib", None)
        return chromem.inflate_prefix(data, chromem.gzip_header_end(data))


def test_isal_fast_path_serves_intact_gzip_files():
    assert chromem.isal_zlib is not None   # a dependency: the fast path is what runs
    for source in (GZ_DOC, GZ_META):
        start = chromem.gzip_header_end(source)
        assert chromem.inflate_whole(source, start) == chromem.inflate_prefix(source, start) != b""
        assert chromem.inflate_whole(source[:-1], start) is None            # trailer cut: zlib decides
        assert chromem.inflate_whole(source[:-8] + bytes(8), start) is None  # trailer wrong: zlib decides


@FUZZ
@given(st.sampled_from([GZ_DOC, GZ_META]), EDITS)
def test_isal_fast_path_inflates_exactly_what_zlib_inflates(source, edits):
    """Damaged, cut or grown gzip files: the bytes inflated (and so every verdict) are zlib's."""
    data = mutate(source, edits)
    try:
        start = chromem.gzip_header_end(data)
    except CodecError:
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert chromem.inflate_prefix(data, start) == zlib_only(monkeypatch, data)
