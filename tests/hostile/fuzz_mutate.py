"""Mutators for format fuzzing (tests/hostile/test_fuzz_formats.py): byte flips, insertions,
deletions, truncation, and "interesting" integers written over the length and dimension
fields a format declares (`Field`s, found by the finders below in a valid file).

    data = mutate(rng, seed_bytes, fields)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Values that break size arithmetic: zero, all-ones (-1), the int32/uint32/int64 edges.
INTERESTING = (0, 1, -1, 0x7F, 0x80, 0xFF, 2**15 - 1, 2**16 - 1, 2**31 - 1, 2**31,
               2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1)


class Field(NamedTuple):
    offset: int
    width: int  # bytes; 0 means a protobuf varint ending at `end`
    order: str  # "big" / "little"; unused for varints
    end: int = 0


def _write_int(data: bytearray, field: Field, value: int) -> bytearray:
    if field.width == 0:  # a varint: replaced by the varint of the new value
        return data[: field.offset] + varint(value % 2**64) + data[field.end :]
    raw = (value % 2 ** (8 * field.width)).to_bytes(field.width, field.order)  # type: ignore[arg-type]
    data[field.offset : field.offset + field.width] = raw
    return data


def mutate(rng: np.random.Generator, seed: bytes, fields: list[Field]) -> bytes:
    """One to three random mutations of `seed`."""
    data = bytearray(seed)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 6 if fields else 5))
        at = int(rng.integers(0, max(len(data), 1)))
        if kind == 0 and data:  # flip one bit or set a random byte
            data[at] = data[at] ^ (1 << int(rng.integers(0, 8))) if rng.random() < 0.5 \
                else int(rng.integers(0, 256))
        elif kind == 1:  # insert a few random bytes
            data[at:at] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif kind == 2:  # delete a few bytes
            del data[at : at + int(rng.integers(1, 9))]
        elif kind == 3:  # truncate
            del data[at:]
        elif kind == 4 and len(data) >= 8:  # an interesting int at a random aligned offset
            width = 4 if rng.random() < 0.5 else 8
            field = Field(at - at % width, width, "little" if rng.random() < 0.5 else "big")
            if field.offset + width <= len(data):
                data = _write_int(data, field, _interesting(rng))
        elif kind == 5:  # an interesting int over a declared field (of the unmutated seed)
            field = fields[int(rng.integers(0, len(fields)))]
            if len(data) == len(seed):  # offsets are only meaningful before a resize
                data = _write_int(data, field, _interesting(rng))
    return bytes(data)


def _interesting(rng: np.random.Generator) -> int:
    return INTERESTING[int(rng.integers(0, len(INTERESTING)))]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def protobuf_fields(data: bytes) -> list[Field]:
    """The top-level varints and length prefixes of a protobuf message (dims, labels,
    lengths of the data / layer / blob fields)."""
    fields: list[Field] = []
    pos = 0
    while pos < len(data):
        wire = data[pos] & 7  # the tag's low bits
        pos = _skip_varint(data, pos)
        if wire in (0, 2):
            start, pos = pos, _skip_varint(data, pos)
            fields.append(Field(start, 0, "", pos))
            if wire == 2:
                pos += _read_varint(data, start)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            break
    return fields


def _skip_varint(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] & 0x80:
        pos += 1
    return pos + 1


def _read_varint(data: bytes, pos: int) -> int:
    value, shift = 0, 0
    while pos < len(data):
        value |= (data[pos] & 0x7F) << shift
        shift += 7
        if not data[pos] & 0x80:
            break
        pos += 1
    return value


def png_fields(data: bytes) -> list[Field]:
    """Chunk lengths and IHDR's width and height (big-endian u32)."""
    fields, pos = [Field(16, 4, "big"), Field(20, 4, "big")], 8
    while pos + 8 <= len(data):
        fields.append(Field(pos, 4, "big"))
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    return fields


def jpeg_fields(data: bytes) -> list[Field]:
    """Segment lengths (big-endian u16) and the frame's height and width."""
    fields, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
        fields.append(Field(pos + 2, 2, "big"))
        if 0xC0 <= data[pos + 1] <= 0xC3:
            fields += [Field(pos + 5, 2, "big"), Field(pos + 7, 2, "big")]
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return fields
