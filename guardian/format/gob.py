"""Go's encoding/gob, as chromem-go v0.7.0 reads and writes it, in pure Python (+ numpy).

A gob stream is a sequence of messages ``uint(length) | int(type id) | body``. Messages with a
negative id define a type (the body is a ``wireType``); the first message with a non-negative id
holds the value. chromem writes one value per file, so a file is: type definitions, then one value.

Decoding follows Go's decoder rules where they decide whether chromem loads a file:
- unsigned ints: one byte < 0x80, else a byte holding the negated byte count (at most 8);
- a struct value is a run of field deltas ended by a 0 delta *or by the end of the message*;
- fields are matched to the local struct by name; unknown or unexported wire fields are skipped;
  a known field whose wire type is incompatible is an error; no field matched at all is an error;
- type ids defined by the stream must be >= 64 and defined once; nothing may follow a type
  definition inside its message; bytes after the value are never read.

The decoder compiles a *plan* per distinct type-definition prefix and caches it: every document
file of a store repeats the same definitions, so they are parsed once. Float32 slices are decoded
with numpy when every element has the common 6-byte shape (``0xFB`` + 5 bytes); any other shape
takes an exact element-by-element path. Every malformed input raises :class:`GobError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from guardian.errors import CodecError  # noqa: F401  (GobError's base)
from guardian.format.layout import GobError



# Builtin type ids (Go's encoding/gob bootstrap order).
T_BOOL, T_INT, T_UINT, T_FLOAT, T_BYTES, T_STRING, T_COMPLEX, T_INTERFACE = range(1, 9)
T_WIRE, T_ARRAY, T_COMMON, T_SLICE, T_STRUCT, T_FIELD, T_FIELD_SLICE, T_MAP, T_GOBENC = range(16, 25)
FIRST_USER_ID = 64
MAX_FLOAT32 = float(np.finfo(np.float32).max)
MAX_DEPTH = 64
TOO_BIG = 1 << 33  # Go's tooBig on 64-bit platforms

ERR_BAD_UINT = "gob: encoded unsigned integer out of range"
ERR_UNEXPECTED_EOF = "unexpected EOF"
ERR_FLOAT32_RANGE = 'value for "float32" out of range'


# --------------------------------------------------------------------------- wire types


@dataclass(frozen=True)
class WireStruct:
    name: str
    fields: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class WireSlice:
    name: str
    elem: int


@dataclass(frozen=True)
class WireArray:
    name: str
    elem: int
    length: int


@dataclass(frozen=True)
class WireMap:
    name: str
    key: int
    elem: int


@dataclass(frozen=True)
class WireGobEncoder:
    name: str


@dataclass(frozen=True)
class WireEmpty:
    """A definition with no type set: Go stores it and fails only where it is used."""

    name: str = ""


WireType = WireStruct | WireSlice | WireArray | WireMap | WireGobEncoder | WireEmpty

BUILTIN_WIRE_TYPES: dict[int, WireType] = {
    T_COMMON: WireStruct("CommonType", (("Name", T_STRING), ("Id", T_INT))),
    T_ARRAY: WireStruct("arrayType", (("CommonType", T_COMMON), ("Elem", T_INT), ("Len", T_INT))),
    T_SLICE: WireStruct("sliceType", (("CommonType", T_COMMON), ("Elem", T_INT))),
    T_FIELD: WireStruct("fieldType", (("Name", T_STRING), ("Id", T_INT))),
    T_FIELD_SLICE: WireSlice("[]*gob.fieldType", T_FIELD),
    T_STRUCT: WireStruct("structType", (("CommonType", T_COMMON), ("Field", T_FIELD_SLICE))),
    T_MAP: WireStruct("mapType", (("CommonType", T_COMMON), ("Key", T_INT), ("Elem", T_INT))),
    T_GOBENC: WireStruct("gobEncoderType", (("CommonType", T_COMMON),)),
    T_WIRE: WireStruct("wireType", (
        ("ArrayT", T_ARRAY), ("SliceT", T_SLICE), ("StructT", T_STRUCT), ("MapT", T_MAP),
        ("GobEncoderT", T_GOBENC), ("BinaryMarshalerT", T_GOBENC), ("TextMarshalerT", T_GOBENC),
    )),
}
SCALAR_IDS = frozenset(range(1, 9))
INT32_FIELDS = frozenset({"Id", "Elem", "Key"})  # typeId fields of the type-definition structs


# --------------------------------------------------------------------------- primitives


def read_uint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode one gob unsigned integer at ``pos`` (``end`` bounds the current message)."""
    if pos >= end:
        raise GobError("EOF")  # Go's ReadByte on the exhausted message buffer
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    n = 256 - b
    if n > 8:
        raise GobError(ERR_BAD_UINT)
    stop = pos + 1 + n
    if stop > end:
        raise GobError(f"gob: invalid uint data length {n}: exceeds input size {end - pos - 1}")
    return int.from_bytes(buf[pos + 1:stop], "big"), stop


def read_int(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    u, pos = read_uint(buf, pos, end)
    return (~(u >> 1) if u & 1 else u >> 1), pos


def read_bytes(buf: bytes, pos: int, end: int, go_type: str = "string") -> tuple[bytes, int]:
    n, pos = read_uint(buf, pos, end)
    if n > end - pos:
        raise GobError(f"gob: bad {go_type} slice length: 0")  # Go's getLength fails, reports 0
    return buf[pos:pos + n], pos + n


def read_string(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    raw, pos = read_bytes(buf, pos, end)
    return raw.decode("utf-8", "surrogateescape"), pos


def first_string_field(stream: bytes) -> str | None:
    """The first field of a stream's first value, read as a string: walk the message frames
    (type definitions are skipped, a cut last frame tolerated). For salvaging a damaged file's id."""
    pos, size = 0, len(stream)
    while pos < size:
        length, body = read_uint(stream, pos, size)
        end = min(body + length, size)
        type_id, value_pos = read_int(stream, body, end)
        if type_id < 0:
            if body + length > size:
                return None
            pos = body + length
            continue
        delta, value_pos = read_uint(stream, value_pos, end)
        if delta != 1:
            return None
        raw, _ = read_bytes(stream, value_pos, end)
        return raw.decode("utf-8")
    return None


def float_from_uint(u: int) -> float:
    """gob floats: the float64 bits with their bytes reversed, sent as an unsigned int."""
    return struct.unpack("<d", u.to_bytes(8, "big"))[0]


def read_float32(buf: bytes, pos: int, end: int) -> tuple[float, int]:
    u, pos = read_uint(buf, pos, end)
    value = float_from_uint(u)
    if MAX_FLOAT32 < abs(value) <= 1.7976931348623157e308:
        raise GobError(ERR_FLOAT32_RANGE)
    return value, pos


def encode_uint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes((256 - len(raw),)) + raw


def encode_int(value: int) -> bytes:
    return encode_uint((~value << 1) | 1 if value < 0 else value << 1)


def encode_string(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return encode_uint(len(raw)) + raw


# --------------------------------------------------------------------------- float32 slices


try:  # optional C accelerator (guardian/format/_gobfloat.c); same results, ~20x faster
    from guardian.format import _gobfloat as _accelerated
except ImportError:  # pragma: no cover - depends on the build
    _accelerated = None

# Length (first byte + payload) of a gob uint starting with each byte value; 0: no uint starts so.
_ELEMENT_LENGTH = bytes(1 if b < 0x80 else (257 - b if b >= 0xF8 else 0) for b in range(256))
_COLUMNS = np.arange(8)


def decode_float32_run(buf: bytes, pos: int, end: int, count: int) -> tuple[np.ndarray, int]:
    """Decode ``count`` gob floats into float32 with numpy.

    All elements 0xFB + 5 bytes (the common shape): one reshape. Mixed lengths: element starts are
    found with a C-level byte translation and a tight loop, then every value is gathered at once.
    Anything malformed takes the exact element-by-element path, which raises Go's error.
    """
    if _accelerated is not None:
        decoded = _accelerated.decode_floats(buf, pos, end, count)
        if decoded is None:
            return decode_float32_exact(buf, pos, end, count)
        return np.frombuffer(decoded[0], dtype=np.float32), decoded[1]
    return decode_float32_numpy(buf, pos, end, count)


def decode_float32_numpy(buf: bytes, pos: int, end: int, count: int) -> tuple[np.ndarray, int]:
    """The pure-Python/numpy path (used when the C accelerator is not built)."""
    stop = pos + 6 * count
    if count and stop <= end:
        rows = np.frombuffer(buf, dtype=np.uint8, count=6 * count, offset=pos).reshape(count, 6)
        if (rows[:, 0] == 0xFB).all():
            return floats_from_fb_rows(rows[:, 1:]), stop
    found = element_starts(buf, pos, end, count)
    if found is None:
        return decode_float32_exact(buf, pos, end, count)
    starts, used = found
    return floats_from_elements(np.frombuffer(buf, dtype=np.uint8, count=used, offset=pos), starts), pos + used


def element_starts(buf: bytes, pos: int, end: int, count: int) -> tuple[list[int], int] | None:
    """Offsets (from ``pos``) of ``count`` consecutive gob uints, or None if they are malformed."""
    window = buf[pos:min(end, pos + 9 * count)]
    lengths = window.translate(_ELEMENT_LENGTH)
    size = len(window)
    starts = [0] * count
    offset = 0
    for i in range(count):
        if offset >= size:
            return None
        step = lengths[offset]
        if not step:
            return None
        starts[i] = offset
        offset += step
    return (starts, offset) if offset <= size else None


def floats_from_elements(window: np.ndarray, starts: list[int]) -> np.ndarray:
    """Gather gob floats of any byte length: little-endian float64 = (8 - n) zeros + the n payload bytes."""
    begin = np.asarray(starts, dtype=np.intp)
    first = window[begin].astype(np.intp)
    single = first < 0x80
    payload_len = np.where(single, 1, 256 - first)
    payload_end = begin + np.where(single, 1, payload_len + 1)  # one past the last payload byte
    padded = np.concatenate([window, np.zeros(1, dtype=np.uint8)])
    index = payload_end[:, None] - 8 + _COLUMNS[None, :]
    index = np.where(_COLUMNS[None, :] >= (8 - payload_len)[:, None], index, len(window))
    values = padded[index].view("<f8").reshape(-1)
    magnitude = np.abs(values)
    if ((magnitude > MAX_FLOAT32) & np.isfinite(magnitude)).any():
        raise GobError(ERR_FLOAT32_RANGE)
    return values.astype(np.float32)


def floats_from_fb_rows(payload: np.ndarray) -> np.ndarray:
    """Rows of the 5 significant bytes (reversed float64, top 3 bytes zero) -> float32 values.

    Raises GobError if any value is outside float32's finite range (Go's overflow check).
    """
    wide = np.zeros((payload.shape[0], 8), dtype=np.uint8)
    wide[:, 3:] = payload
    values = wide.view("<f8").reshape(-1)
    magnitude = np.abs(values)
    if ((magnitude > MAX_FLOAT32) & np.isfinite(magnitude)).any():
        raise GobError(ERR_FLOAT32_RANGE)
    return values.astype(np.float32)


def decode_float32_exact(buf: bytes, pos: int, end: int, count: int) -> tuple[np.ndarray, int]:
    if count > end - pos:
        raise GobError(f"gob: decoding float32 array or slice: length exceeds input size ({count} elements)")
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        out[i], pos = read_float32(buf, pos, end)
    return out.astype(np.float32), pos


def encode_float32_run(values: np.ndarray) -> bytes:
    """Encode float32 values as gob floats (minimal big-endian uint of the reversed float64), vectorized."""
    raw = np.ascontiguousarray(values, dtype=np.float32).astype("<f8").view(np.uint8).reshape(-1, 8)
    if raw.shape[0] == 0:
        return b""
    nonzero = raw != 0
    leading_zeros = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 8)
    length = 8 - leading_zeros                       # payload bytes of the uint (0 for 0.0)
    small = (length == 0) | ((length == 1) & (raw[:, 7] < 0x80))
    out = np.zeros((raw.shape[0], 9), dtype=np.uint8)
    out[:, 1:] = raw
    out[:, 0] = np.where(small, 0, (256 - length) & 0xFF)
    keep = _NINE[None, :] >= leading_zeros[:, None] + 1
    keep[:, 0] = ~small
    single = np.where(small, raw[:, 7], 0)
    out[small, 8] = single[small]
    keep[small, 1:8] = False
    keep[small, 8] = True
    return out[keep].tobytes()


_NINE = np.arange(9)


# --------------------------------------------------------------------------- generic values


class TypeTable:
    """Wire types known to one stream: gob's builtins plus the stream's own definitions."""

    def __init__(self) -> None:
        self.defined: dict[int, WireType] = {}
        self.parts: dict[int, dict[str, WireType]] = {}  # every part a definition set ("MapT", ...)

    def get(self, type_id: int) -> WireType | None:
        return self.defined.get(type_id) or BUILTIN_WIRE_TYPES.get(type_id)

    def require(self, type_id: int) -> WireType | None:
        """The wire type for a composite id, None for a scalar; error if undefined."""
        if type_id in SCALAR_IDS:
            return None
        wire = self.get(type_id)
        if wire is None:
            raise GobError(f"gob: bad data: undefined type id {type_id}")
        return wire


def skip_value(buf: bytes, pos: int, end: int, type_id: int, types: TypeTable, depth: int = 0) -> int:
    """Skip one encoded value of ``type_id`` (Go's ignore ops); returns the new position."""
    return decode_value(buf, pos, end, type_id, types, depth, keep=False)[1]


def decode_value(buf: bytes, pos: int, end: int, type_id: int, types: TypeTable,
                 depth: int = 0, keep: bool = True) -> tuple[Any, int]:
    """Decode one value of any gob type into plain Python (structs become dicts)."""
    if depth > MAX_DEPTH:
        raise GobError("gob: value nested too deeply")
    if type_id in (T_BOOL, T_UINT):
        value, pos = read_uint(buf, pos, end)
        return (value != 0 if type_id == T_BOOL else value), pos
    if type_id == T_INT:
        return read_int(buf, pos, end)
    if type_id == T_FLOAT:
        u, pos = read_uint(buf, pos, end)
        return float_from_uint(u), pos
    if type_id == T_COMPLEX:
        re_u, pos = read_uint(buf, pos, end)
        im_u, pos = read_uint(buf, pos, end)
        return complex(float_from_uint(re_u), float_from_uint(im_u)), pos
    if type_id == T_BYTES:
        return read_bytes(buf, pos, end, "[]uint8")
    if type_id == T_STRING:
        return read_string(buf, pos, end)
    if type_id == T_INTERFACE:
        return skip_interface(buf, pos, end, types)
    wire = types.require(type_id)
    if isinstance(wire, WireStruct):
        return decode_struct(buf, pos, end, wire, types, depth + 1, keep)
    if isinstance(wire, WireMap):
        return decode_map(buf, pos, end, wire, types, depth + 1, keep)
    if isinstance(wire, (WireSlice, WireArray)):
        return decode_list(buf, pos, end, wire, types, depth + 1, keep)
    if isinstance(wire, WireEmpty):
        raise GobError(f"gob: bad data: ignore can't handle type id {type_id}")
    return read_bytes(buf, pos, end, "[]uint8")  # GobEncoder / BinaryMarshaler / TextMarshaler payloads


def decode_struct(buf, pos, end, wire: WireStruct, types, depth, keep=True):
    out: dict[str, Any] = {}
    fieldnum = -1
    nfields = len(wire.fields)
    while pos < end:
        delta, pos = read_uint(buf, pos, end)
        if delta == 0:
            break
        if fieldnum >= nfields - delta:
            raise GobError("gob: bad data: field numbers out of bounds")
        fieldnum += delta
        name, field_type = wire.fields[fieldnum]
        value, pos = decode_value(buf, pos, end, field_type, types, depth, keep)
        if keep:
            if name in INT32_FIELDS and field_type == T_INT and not -(1 << 31) <= value < (1 << 31):
                raise GobError(f'value for "{name}" out of range')  # typeId is an int32 in Go
            out[name] = value
    return out, pos


def decode_map(buf, pos, end, wire: WireMap, types, depth, keep=True):
    count, pos = read_uint(buf, pos, end)
    if count > end - pos:
        raise GobError(f"gob: map too big: {count} entries")
    out = {}
    for _ in range(count):
        key, pos = decode_value(buf, pos, end, wire.key, types, depth, keep)
        value, pos = decode_value(buf, pos, end, wire.elem, types, depth, keep)
        if keep:
            out[key if isinstance(key, (str, int, float, bool, bytes)) else repr(key)] = value
    return out, pos


def decode_list(buf, pos, end, wire, types, depth, keep=True):
    count, pos = read_uint(buf, pos, end)
    if isinstance(wire, WireArray) and count != wire.length:
        raise GobError(f"gob: length mismatch in array: got {count}, want {wire.length}")
    if count >= TOO_BIG:
        raise GobError(f"gob: slice too big: {count} elements")
    if wire.elem == T_FLOAT:
        values, pos = decode_float32_exact_any(buf, pos, end, count)
        return values, pos
    out = []
    for _ in range(count):
        if pos >= end:
            raise GobError(f"gob: decoding array or slice: length exceeds input size ({count} elements)")
        value, pos = decode_value(buf, pos, end, wire.elem, types, depth, keep)
        if keep:
            out.append(value)
    return out, pos


def decode_float32_exact_any(buf, pos, end, count):
    values = []
    for _ in range(count):
        if pos >= end:
            raise GobError(f"gob: decoding array or slice: length exceeds input size ({count} elements)")
        u, pos = read_uint(buf, pos, end)
        values.append(float_from_uint(u))
    return values, pos


def skip_interface(buf: bytes, pos: int, end: int, types: TypeTable) -> tuple[None, int]:
    """Skip an interface value: concrete type name, inline type definitions, delimited value."""
    name, pos = read_bytes(buf, pos, end)
    if not name:
        return None, pos
    while True:
        type_id, pos = read_int(buf, pos, end)
        if type_id >= 0:
            break
        pos = define_type(buf, pos, end, -type_id, types)
        if pos < end:
            _, pos = read_uint(buf, pos, end)
    length, pos = read_uint(buf, pos, end)
    if length > end - pos:
        raise GobError(f"invalid interface value length {length}: exceeds input size {end - pos}")
    return None, pos + length


# --------------------------------------------------------------------------- type definitions


def define_type(buf: bytes, pos: int, end: int, type_id: int, types: TypeTable) -> int:
    """Read a wireType definition for ``type_id`` and register it; returns the new position."""
    if type_id < FIRST_USER_ID or type_id in types.defined:
        raise GobError("gob: duplicate type received")
    raw, pos = decode_value(buf, pos, end, T_WIRE, types)
    types.defined[type_id] = wire_type_from_dict(raw)
    types.parts[type_id] = wire_parts(raw)
    return pos


def common_name(raw: dict) -> str:
    common = raw.get("CommonType") or {}
    return common.get("Name", "") if isinstance(common, dict) else ""


def wire_type_from_dict(raw: dict) -> WireType:
    if "ArrayT" in raw:
        t = raw["ArrayT"]
        return WireArray(common_name(t), t.get("Elem", 0), t.get("Len", 0))
    if "MapT" in raw:
        t = raw["MapT"]
        return WireMap(common_name(t), t.get("Key", 0), t.get("Elem", 0))
    if "SliceT" in raw:
        t = raw["SliceT"]
        return WireSlice(common_name(t), t.get("Elem", 0))
    if "StructT" in raw:
        t = raw["StructT"]
        fields = tuple((f.get("Name", ""), f.get("Id", 0)) for f in t.get("Field", []))
        return WireStruct(common_name(t), fields)
    for key in MARSHALER_PARTS:
        if key in raw:
            return WireGobEncoder(common_name(raw[key]))
    return WireEmpty()


MARSHALER_PARTS = ("GobEncoderT", "BinaryMarshalerT", "TextMarshalerT")


def wire_parts(raw: dict) -> dict[str, WireType]:
    """Each part of a wireType on its own (a corrupt definition may set several)."""
    parts = {}
    for key in ("ArrayT", "MapT", "SliceT", "StructT", *MARSHALER_PARTS):
        if key in raw:
            parts[key] = wire_type_from_dict({key: raw[key]})
    return parts


def part_of(types: TypeTable, type_id: int, part: str) -> WireType | None:
    """Go's ``wire.MapT`` (etc.) for a stream type; None when that part is unset or marshaled."""
    if type_id in types.parts:
        parts = types.parts[type_id]
        if any(key in parts for key in MARSHALER_PARTS):
            return None  # Go: a marshaled wire type only fits a local type with that method
        return parts.get(part)
    wire = BUILTIN_WIRE_TYPES.get(type_id)
    kinds = {WireStruct: "StructT", WireSlice: "SliceT", WireMap: "MapT", WireArray: "ArrayT"}
    return wire if wire is not None and kinds.get(type(wire)) == part else None


# --------------------------------------------------------------------------- local targets

LOCAL_STRING = "string"
LOCAL_STRING_MAP = "map[string]string"
LOCAL_FLOAT32_SLICE = "[]float32"
_C_KINDS = {LOCAL_STRING: 1, LOCAL_STRING_MAP: 2, LOCAL_FLOAT32_SLICE: 3}  # as _gobfloat.c numbers them
_decode_value = getattr(_accelerated, "decode_value", None)  # None: not built, or built before it existed


@dataclass(frozen=True)
class LocalStruct:
    """The Go struct a stream is decoded into: field name -> local kind."""

    name: str
    fields: dict[str, str]


def compatible(kind: str, wire_id: int, types: TypeTable) -> bool:
    """Go's compatibleType for the three local kinds chromem's records use."""
    if kind == LOCAL_STRING:
        return wire_id == T_STRING
    if kind == LOCAL_STRING_MAP:
        wire = part_of(types, wire_id, "MapT")
        return isinstance(wire, WireMap) and wire.key == T_STRING and wire.elem == T_STRING
    if kind == LOCAL_FLOAT32_SLICE:
        wire = part_of(types, wire_id, "SliceT")
        return isinstance(wire, WireSlice) and wire.elem == T_FLOAT
    return False


def is_exported(name: str) -> bool:
    return bool(name) and name[0].isupper()


@dataclass
class Plan:
    """How to decode the value message of one type-definition prefix into a LocalStruct."""

    value_type: int
    wire: WireStruct | None
    types: TypeTable
    ops: list[tuple[str | None, str | None, int]] = field(default_factory=list)
    error: GobError | None = None
    accelerated: tuple | None = None  # (names, kinds, float32 field names) for the C decode_value

    def for_accelerator(self) -> tuple:
        """The plan as the C accelerator takes it (kind 0: a field it leaves to the Python path)."""
        if self.accelerated is None:
            names = tuple(name or "" for name, _, _ in self.ops)
            kinds = tuple(_C_KINDS.get(kind, 0) for _, kind, _ in self.ops)
            floats = tuple(name for name, kind, _ in self.ops if kind == LOCAL_FLOAT32_SLICE)
            self.accelerated = (names, kinds, floats)
        return self.accelerated


def compile_plan(value_type: int, types: TypeTable, local: LocalStruct) -> Plan:
    plan = Plan(value_type, None, types)
    if value_type not in types.defined and value_type not in BUILTIN_WIRE_TYPES and value_type not in SCALAR_IDS:
        plan.error = GobError("gob: unknown type id or corrupted data")
        return plan
    wire = part_of_struct(types, value_type)
    if not isinstance(wire, WireStruct):
        plan.error = GobError(f"gob: type mismatch in decoder: want struct type {local.name}; got non-struct")
        return plan
    plan.wire = wire
    matched = 0
    for name, wire_id in wire.fields:
        if name == "":
            plan.error = GobError(f"gob: empty name for remote field of type {wire.name}")
            return plan
        kind = local.fields.get(name) if is_exported(name) else None
        if kind is None:
            plan.error = ignorable_error(wire_id, types, set())
            if plan.error:
                return plan
            plan.ops.append((None, None, wire_id))
            continue
        if not compatible(kind, wire_id, types):
            plan.error = GobError(f"gob: wrong type ({kind}) for received field {wire.name}.{name}")
            return plan
        matched += 1
        plan.ops.append((name, kind, wire_id))
    if matched == 0 and wire.fields:
        plan.error = GobError(f"gob: type mismatch: no fields matched compiling decoder for {go_type_name(local)}")
    return plan


def part_of_struct(types: TypeTable, type_id: int) -> WireStruct | None:
    """The struct part of the value's type, as Go's compileDec takes it (marshal parts do not matter)."""
    if type_id in types.parts:
        wire = types.parts[type_id].get("StructT")
    else:
        wire = BUILTIN_WIRE_TYPES.get(type_id)
    return wire if isinstance(wire, WireStruct) else None


def go_type_name(local: LocalStruct) -> str:
    """reflect.Type.Name(): the bare name of a named type, empty for a struct literal."""
    return "" if local.name.startswith("struct") else local.name.rpartition(".")[2]


def ignorable_error(type_id: int, types: TypeTable, seen: set[int]) -> GobError | None:
    """Go compiles a skip operation for every unknown field up front: undefined types fail there."""
    if type_id in SCALAR_IDS or type_id in seen:
        return None
    seen.add(type_id)
    wire = types.get(type_id)
    if wire is None:
        return GobError("gob: bad data: undefined type <nil>")
    if isinstance(wire, WireEmpty):
        return GobError(f"gob: bad data: ignore can't handle type id {type_id}")
    if isinstance(wire, (WireSlice, WireArray)):
        return ignorable_error(wire.elem, types, seen)
    if isinstance(wire, WireMap):
        return ignorable_error(wire.key, types, seen) or ignorable_error(wire.elem, types, seen)
    if isinstance(wire, WireStruct):
        for field_name, field_id in wire.fields:
            if field_name == "":
                return GobError(f"gob: empty name for remote field of type {wire.name}")
            error = ignorable_error(field_id, types, seen)
            if error:
                return error
    return None


def decode_with_plan(buf: bytes, pos: int, end: int, plan: Plan) -> dict[str, Any]:
    """Decode a top-level struct value; float32 slices come back as float32 numpy arrays."""
    if plan.error:
        raise plan.error
    if _decode_value is not None:
        names, kinds, floats = plan.for_accelerator()
        out = _decode_value(buf, pos, end, names, kinds)
        if out is not None:  # else: something the C path leaves to this one (a skipped field, an error)
            for name in floats:
                if name in out:
                    out[name] = np.frombuffer(out[name], dtype=np.float32)
            return out
    out: dict[str, Any] = {}
    fieldnum = -1
    ops = plan.ops
    nfields = len(ops)
    types = plan.types
    while pos < end:
        delta, pos = read_uint(buf, pos, end)
        if delta == 0:
            break
        if fieldnum >= nfields - delta:
            raise GobError("gob: bad data: field numbers out of bounds")
        fieldnum += delta
        name, kind, wire_id = ops[fieldnum]
        if kind is None:
            pos = skip_value(buf, pos, end, wire_id, types)
        elif kind == LOCAL_STRING:
            out[name], pos = read_string(buf, pos, end)
        elif kind == LOCAL_STRING_MAP:
            out[name], pos = read_string_map(buf, pos, end, out.get(name))
        else:
            out[name], pos = read_float32_field(buf, pos, end, name)
    return out


def read_float32_field(buf: bytes, pos: int, end: int, name: str) -> tuple[np.ndarray, int]:
    """A []float32 field with Go's checks and wording (the overflow error names the field)."""
    count, pos = read_uint(buf, pos, end)
    if count * 4 > TOO_BIG:
        raise GobError(f"gob: float32 slice too big: {count} elements of 4 bytes")
    try:
        if count > end - pos:
            fail_short_float32_run(buf, pos, end, count)
        return decode_float32_run(buf, pos, end, count)
    except GobError as exc:
        if exc.reason == ERR_FLOAT32_RANGE:
            raise GobError(f'value for "element of {name}" out of range') from None
        raise


def fail_short_float32_run(buf: bytes, pos: int, end: int, count: int) -> None:
    """More elements claimed than bytes left: fail where Go fails, element by element."""
    while pos < end:
        _, pos = read_float32(buf, pos, end)
    raise GobError(f"gob: decoding float32 array or slice: length exceeds input size ({count} elements)")


def read_string_map(buf: bytes, pos: int, end: int, existing: dict | None) -> tuple[dict, int]:
    count, pos = read_uint(buf, pos, end)  # no up-front check: Go reads entries until the bytes run out
    out = existing if existing is not None else {}
    for _ in range(count):
        key, pos = read_string(buf, pos, end)
        out[key], pos = read_string(buf, pos, end)
    return out, pos


# --------------------------------------------------------------------------- streams


@dataclass
class Message:
    start: int  # first byte of the body (the type id)
    end: int


def next_message(data: bytes, pos: int) -> Message | None:
    """Frame the message at ``pos``: None at a clean end of stream."""
    size = len(data)
    if pos >= size:
        return None
    try:
        length, body = read_uint(data, pos, size)
    except GobError as exc:
        if "invalid uint" in exc.reason:
            raise GobError(ERR_UNEXPECTED_EOF) from None
        raise
    if length >= TOO_BIG:
        raise GobError("gob: decoding message: count out of range")
    if body + length > size:
        raise GobError(ERR_UNEXPECTED_EOF)
    return Message(body, body + length)


class Decoder:
    """Decodes single-value gob streams into one LocalStruct, caching plans per type prefix."""

    def __init__(self, local: LocalStruct, cache_size: int = 64) -> None:
        self.local = local
        self.cache_size = cache_size
        self.plans: dict[bytes, Plan] = {}
        self.last: tuple[bytes, Plan] | None = None  # the prefix seen last and its plan

    def decode(self, data: bytes) -> dict[str, Any]:
        """Decode the first value of ``data`` (bytes after it are ignored, as Go does)."""
        found = self.after_last_prefix(data)
        if found is not None:
            return decode_with_plan(data, found[0], found[1], self.last[1])
        try:
            value_msg, value_type, value_pos, prefix_end = self.locate_value(data)
        except GobError as exc:
            # Go parses each definition before reading the next frame: its errors come first.
            raise definitions_error(data) or exc from None
        plan = self.plans.get(data[:prefix_end]) if prefix_end else None
        if plan is None:
            plan = self.compile_prefix(data, prefix_end, value_type)
        elif plan.value_type != value_type:
            plan = compile_plan(value_type, plan.types, self.local)
        if prefix_end and plan.value_type == value_type:
            self.last = (data[:prefix_end], plan)
        return decode_with_plan(data, value_pos, value_msg.end, plan)

    def after_last_prefix(self, data: bytes) -> tuple[int, int] | None:
        """(value start, value end) when ``data`` opens with the same type definitions as the last
        stream and its next message is a value of that plan's type: the frame walk over identical
        bytes would end at the same place, so it is skipped. None: take the full walk."""
        last = self.last
        if last is None or not data.startswith(last[0]):
            return None
        try:
            msg = next_message(data, len(last[0]))
            if msg is None or msg.start == msg.end:
                return None
            type_id, body = read_message_type(data, msg)
        except GobError:
            return None
        return (body, msg.end) if type_id == last[1].value_type else None

    def locate_value(self, data: bytes) -> tuple[Message, int, int, int]:
        """Walk message frames to the first value message (type definitions are not parsed here)."""
        pos = 0
        first = True
        while True:
            msg = next_message(data, pos)
            if msg is None:
                raise GobError("EOF" if first else ERR_UNEXPECTED_EOF)
            if msg.start == msg.end:
                raise GobError("EOF")  # Go reads the type id of an empty message from nothing: io.EOF
            type_id, body = read_message_type(data, msg)
            if type_id >= 0:
                return msg, type_id, body, pos
            pos = msg.end
            first = False

    def compile_prefix(self, data: bytes, prefix_end: int, value_type: int) -> Plan:
        types = TypeTable()
        pos = 0
        try:
            while pos < prefix_end:
                msg = next_message(data, pos)
                type_id, body = read_message_type(data, msg)
                after = define_type(data, body, msg.end, -type_id, types)
                if after != msg.end:
                    raise GobError("extra data in buffer")
                pos = msg.end
            plan = compile_plan(value_type, types, self.local)
        except GobError as exc:
            plan = Plan(value_type, None, types, error=exc)
        except RecursionError:
            plan = Plan(value_type, None, types, error=GobError("gob: type definitions nested too deeply"))
        if len(self.plans) >= self.cache_size:
            self.plans.clear()
        self.plans[data[:prefix_end]] = plan
        return plan


def read_message_type(data: bytes, msg: Message) -> tuple[int, int]:
    """The type id opening a message (Go reads it from the message buffer: short -> unexpected EOF)."""
    try:
        type_id, body = read_int(data, msg.start, msg.end)
        return ((type_id + (1 << 31)) % (1 << 32)) - (1 << 31), body  # Go: typeId(int32) conversion
    except GobError as exc:
        if "invalid uint" in exc.reason:
            raise GobError(ERR_UNEXPECTED_EOF) from None
        raise


def definitions_error(data: bytes) -> GobError | None:
    """The first error in the type definitions that precede a framing failure, if any."""
    types = TypeTable()
    pos = 0
    try:
        while True:
            msg = next_message(data, pos)
            if msg is None or msg.start == msg.end:
                return None
            type_id, body = read_message_type(data, msg)
            if type_id >= 0:
                return None
            if define_type(data, body, msg.end, -type_id, types) != msg.end:
                return GobError("extra data in buffer")
            pos = msg.end
    except GobError as exc:
        return None if exc.reason in (ERR_UNEXPECTED_EOF, "EOF") and pos_is_frame_error(data, pos) else exc
    except RecursionError:
        return GobError("gob: type definitions nested too deeply")


def pos_is_frame_error(data: bytes, pos: int) -> bool:
    """True when the frame at ``pos`` itself is what fails (not a definition inside it)."""
    try:
        msg = next_message(data, pos)
        if msg is not None and msg.start != msg.end:
            read_message_type(data, msg)
        return False
    except GobError:
        return True


# --------------------------------------------------------------------------- encoding


def frame(type_id: int, body: bytes) -> bytes:
    payload = encode_int(type_id) + body
    return encode_uint(len(payload)) + payload


def struct_type_def(name: str, type_id: int, fields: list[tuple[str, int]]) -> bytes:
    """The wireType body for a struct definition, byte-identical to Go's."""
    common = b""
    if name:
        common += b"\x01" + encode_string(name) + b"\x01" + encode_int(type_id)
    else:
        common += b"\x02" + encode_int(type_id)
    body = b"\x03\x01" + common + b"\x00"
    body += b"\x01" + encode_uint(len(fields))
    for field_name, field_id in fields:
        body += b"\x01" + encode_string(field_name) + b"\x01" + encode_int(field_id) + b"\x00"
    return body + b"\x00\x00"


def map_type_def(name: str, type_id: int, key: int, elem: int) -> bytes:
    return (b"\x04\x01\x01" + encode_string(name) + b"\x01" + encode_int(type_id) + b"\x00"
            + b"\x01" + encode_int(key) + b"\x01" + encode_int(elem) + b"\x00\x00")


def slice_type_def(name: str, type_id: int, elem: int) -> bytes:
    return (b"\x02\x01\x01" + encode_string(name) + b"\x01" + encode_int(type_id) + b"\x00"
            + b"\x01" + encode_int(elem) + b"\x00\x00")


def encode_string_map(mapping: dict[str, str]) -> bytes:
    parts = [encode_uint(len(mapping))]
    for key, value in mapping.items():
        parts.append(encode_string(key))
        parts.append(encode_string(value))
    return b"".join(parts)


def encode_struct_value(type_id: int, fields: list[tuple[int, bytes | None]]) -> bytes:
    """A struct value: (field number, encoded field or None for a zero value) in field order."""
    parts = [encode_int(type_id)]
    last = -1
    for number, encoded in fields:
        if encoded is None:
            continue
        parts.append(encode_uint(number - last))
        parts.append(encoded)
        last = number
    parts.append(b"\x00")
    payload = b"".join(parts)
    return encode_uint(len(payload)) + payload

