"""The three float decoders (C accelerator, numpy, element-by-element) agree on every input."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian.format import gob

accelerated = gob._accelerated


def scalar_encoding(values) -> bytes:
    return b"".join(gob.encode_uint(int.from_bytes(struct.pack("<d", float(v)), "big")) for v in values)


def outcome(decoder, data: bytes, count: int):
    try:
        values, end = decoder(data, 0, len(data), count)
    except gob.GobError as exc:
        return ("error", exc.reason)
    return ("ok", np.asarray(values, dtype=np.float32).view(np.uint32).tolist(), end)


def c_path(data, pos, end, count):
    decoded = accelerated.decode_floats(data, pos, end, count)
    if decoded is None:
        return gob.decode_float32_exact(data, pos, end, count)
    return np.frombuffer(decoded[0], dtype=np.float32), decoded[1]


SPECIAL = np.array([0.0, -0.0, 1.0, 0.5, 2.0, -2.0, np.inf, -np.inf, 1e-45, 3.4e38, 1.5, -1.0, 7.0],
                   dtype=np.float32)


@pytest.mark.parametrize("values", [
    SPECIAL,
    np.random.default_rng(0).standard_normal(2000).astype(np.float32),
    np.random.default_rng(1).integers(-8, 8, 500).astype(np.float32),
])
def test_encoder_matches_scalar_reference_and_decoders_agree(values):
    data = gob.encode_float32_run(values)
    assert data == scalar_encoding(values)
    exact = outcome(gob.decode_float32_exact, data, len(values))
    assert exact[0] == "ok" and exact[2] == len(data)
    assert exact[1] == values.view(np.uint32).tolist()
    assert outcome(gob.decode_float32_numpy, data, len(values)) == exact
    if accelerated is not None:
        assert outcome(c_path, data, len(values)) == exact


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.integers(min_value=0, max_value=40))
def test_every_decoder_gives_the_same_answer_on_arbitrary_bytes(data, count):
    exact = outcome(gob.decode_float32_exact, data, count)
    assert outcome(gob.decode_float32_numpy, data, count) == exact
    if accelerated is not None:
        assert outcome(c_path, data, count) == exact


def test_out_of_float32_range_is_go_overflow_error():
    data = scalar_encoding([1e300])
    for decoder in (gob.decode_float32_exact, gob.decode_float32_numpy, gob.decode_float32_run):
        with pytest.raises(gob.GobError, match="out of range"):
            decoder(data, 0, len(data), 1)
