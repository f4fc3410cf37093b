"""gob primitives and decoder rules, checked against bytes Go writes (see the Go spec examples)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian.format import chromem, gob
from guardian.format.gob import GobError
from tests_format_helpers import FIXTURES

DOC = (FIXTURES / "store-plain/40917930/01e48869.gob").read_bytes()


@pytest.mark.parametrize("value,encoded", [(0, b"\x00"), (7, b"\x07"), (127, b"\x7f"), (128, b"\xff\x80"),
                                           (256, b"\xfe\x01\x00"), ((1 << 64) - 1, b"\xf8" + b"\xff" * 8)])
def test_uint_encoding_matches_go(value, encoded):
    assert gob.encode_uint(value) == encoded
    assert gob.read_uint(encoded, 0, len(encoded)) == (value, len(encoded))


@pytest.mark.parametrize("value,encoded", [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-129, b"\xfe\x01\x01"),
                                           (64, b"\xff\x80"), (-65, b"\xff\x81")])
def test_int_encoding_matches_go(value, encoded):
    assert gob.encode_int(value) == encoded
    assert gob.read_int(encoded, 0, len(encoded))[0] == value


@given(st.integers(0, (1 << 64) - 1))
def test_uint_round_trip(value):
    data = gob.encode_uint(value)
    assert gob.read_uint(data, 0, len(data)) == (value, len(data))


def test_float_encoding_matches_go_spec():
    # Go spec: 17.0 is sent as the uint with bytes reversed: FE 31 40
    assert gob.encode_float32_run(np.array([17.0], np.float32)) == b"\xfe\x31\x40"
    assert gob.decode_float32_run(b"\xfe\x31\x40", 0, 3, 1)[0].tolist() == [17.0]


@given(st.lists(st.integers(0, (1 << 32) - 1), max_size=64))
@settings(max_examples=200)
def test_float32_bits_round_trip(bit_patterns):
    values = np.array(bit_patterns, dtype=np.uint32).view(np.float32)
    data = gob.encode_float32_run(values)
    decoded, end = gob.decode_float32_run(data, 0, len(data), len(values))
    assert end == len(data)
    nan = np.isnan(values)
    assert decoded[~nan].view(np.uint32).tolist() == values[~nan].view(np.uint32).tolist()
    assert np.isnan(decoded[nan]).all()


def test_fast_and_exact_float_paths_agree():
    values = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    data = gob.encode_float32_run(values)
    fast = gob.decode_float32_run(data, 0, len(data), 384)[0]
    exact = gob.decode_float32_exact(data, 0, len(data), 384)[0]
    assert fast.view(np.uint32).tolist() == exact.view(np.uint32).tolist() == values.view(np.uint32).tolist()


def test_float64_beyond_float32_range_is_gos_overflow_error():
    import struct
    too_big = gob.encode_uint(int.from_bytes(struct.pack("<d", 1e39), "big"))
    for data in (too_big * 2, b"\xfb\x00\x00\x80\x3f" + too_big):  # exact path, then mixed shapes
        with pytest.raises(GobError, match='value for "float32" out of range'):
            gob.decode_float32_run(data, 0, len(data), 2)
    prefix_end = gob.Decoder(chromem.DOCUMENT_TYPE).locate_value(DOC)[3]
    body = gob.encode_int(66) + b"\x03\x01" + too_big
    with pytest.raises(GobError, match='value for "element of Embedding" out of range'):
        chromem.decode_document(DOC[:prefix_end] + gob.encode_uint(len(body)) + body)


def test_uint_errors():
    with pytest.raises(GobError, match="out of range"):
        gob.read_uint(b"\xf7" + b"\x00" * 9, 0, 10)  # 9 bytes claimed
    with pytest.raises(GobError, match="invalid uint data length"):
        gob.read_uint(b"\xfe\x01", 0, 2)
    with pytest.raises(GobError, match="^EOF$"):
        gob.read_uint(b"", 0, 0)


def test_plan_is_cached_per_definition_prefix():
    decoder = gob.Decoder(chromem.DOCUMENT_TYPE)
    decoder.decode(DOC)
    assert len(decoder.plans) == 1
    other = chromem.encode_document(chromem.Document("x", {}, np.ones(3, np.float32), "y"))
    decoder.decode(other)
    assert len(decoder.plans) == 1  # guardian writes Go's exact definitions: same prefix


def test_bytes_after_the_value_are_ignored():
    assert chromem.decode_document(DOC + b"\xff\xff garbage").id == chromem.decode_document(DOC).id


def test_definition_with_a_reserved_id_is_a_duplicate_type():
    data = gob.frame(-5, gob.struct_type_def("Document", 5, [("ID", gob.T_STRING)])) + b"\x03\x0a\x01\x00"
    with pytest.raises(GobError, match="duplicate type received"):
        chromem.decode_document(data)


def test_same_id_defined_twice_is_a_duplicate_type():
    prefix_end = gob.Decoder(chromem.DOCUMENT_TYPE).locate_value(DOC)[3]
    first = gob.next_message(DOC, 0)
    with pytest.raises(GobError, match="duplicate type received"):
        chromem.decode_document(DOC[:first.end] + DOC[:prefix_end] + DOC[prefix_end:])


def test_unknown_wire_fields_are_skipped_and_wrong_types_refused():
    extra = gob.frame(-64, gob.struct_type_def("Document", 64, [
        ("ID", gob.T_STRING), ("Score", gob.T_FLOAT), ("Tags", 65), ("Content", gob.T_STRING)]))
    extra += gob.frame(-65, gob.slice_type_def("[]string", 65, gob.T_STRING))
    value = gob.encode_struct_value(64, [(0, gob.encode_string("a")), (1, b"\xfe\x31\x40"),
                                         (2, b"\x02" + gob.encode_string("t1") + gob.encode_string("t2")),
                                         (3, gob.encode_string("body"))])
    doc = chromem.decode_document(extra + value)
    assert (doc.id, doc.content) == ("a", "body")
    wrong = gob.frame(-64, gob.struct_type_def("Document", 64, [("ID", gob.T_INT)]))
    with pytest.raises(GobError, match=r"wrong type \(string\) for received field Document.ID"):
        chromem.decode_document(wrong + gob.encode_struct_value(64, [(0, b"\x02")]))


def test_field_delta_past_the_last_field_is_refused():
    prefix_end = gob.Decoder(chromem.DOCUMENT_TYPE).locate_value(DOC)[3]
    body = gob.encode_int(66) + b"\x05\x00"
    with pytest.raises(GobError, match="field numbers out of bounds"):
        chromem.decode_document(DOC[:prefix_end] + gob.encode_uint(len(body)) + body)


def test_first_string_field_salvages_the_id_of_a_cut_document():
    doc = chromem.Document("id-to-salvage", {"k": "v"}, np.ones(384, dtype=np.float32), "content")
    stream = chromem.gob_stream(chromem.encode_document(doc))
    assert gob.first_string_field(stream) == "id-to-salvage"
    value_start = stream.rindex(b"id-to-salvage")
    assert gob.first_string_field(stream[:value_start + len("id-to-salvage") + 10]) == "id-to-salvage"
    assert gob.first_string_field(stream[:20]) is None  # cut inside the type definitions: nothing to read
