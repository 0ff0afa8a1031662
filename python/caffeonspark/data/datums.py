"""Caffe ``Datum`` records (docs/CAFFE.md §5 field numbers: channels=1, height=2, width=3, data=4,
label=5, float_data=6, encoded=7) to and from images.

- `parse_datum(value, where)`: bytes -> Datum; FormatError naming `where` (source and key).
- `datum_image(datum, where, mode, resize)`: the record's pixels as planar (C, H, W):
  raw `data` (uint8, size must be C*H*W), `float_data` (float32), or, when `encoded`, the
  image decoded with OpenCV in `mode` ("native" / "color" / "gray", image_codec.decode_mode;
  an encoded Datum's channels/height/width are 0 and ignored). `resize` = (height, width)
  resizes bilinearly afterwards (convert_imageset's resize, CaffeOnSpark's `-resize`).
- `raw_datum_batch(values, shape)`: the fast path for a batch of raw records: one native
  call (cpp/data/datum_view.h) reads the Datums' wire bytes (bytes, or memoryviews into an
  LMDB read transaction) and copies their pixels once, into one (N, C, H, W) uint8 array,
  with the GIL released. None when any record is not a raw Datum of that shape (encoded,
  float_data, malformed, wrong size): the caller then takes the per-record path above,
  whose errors name the source and key.
- `encoded_datum_batch(values, mode, shape, pool)`: the same for a batch of encoded
  records: the Datums' fields are read natively (no protobuf objects, no copy of the file
  bytes), each image is decoded straight from the record's memory on the DecodePool and its
  planes written into the batch (one copy); None when anything is unusual (a record not
  encoded, undecodable, of another shape), for the per-record path and its keyed errors.
- `raw_datum(image, label)` / `encoded_datum(data, label)`: build Datums the way Caffe's
  converters do (raw: channels/height/width set, encoded false; encoded: only data, label and
  encoded = true).

Tests: tests/data/test_image_codec.py, tests/data/test_convert_imageset.py,
tests/data/test_datum_batch.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from caffeonspark._native import _engine
from caffeonspark.data.image_codec import DecodePool, decode_hwc, decode_image, resize_image
from caffeonspark.errors import FormatError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "key_text",
    "parse_datum",
    "datum_image",
    "raw_datum_batch",
    "encoded_datum_batch",
    "raw_datum",
    "encoded_datum",
]


def key_text(key: bytes | str) -> str:
    """A database key for messages (Caffe's keys are ASCII; anything else is escaped)."""
    if isinstance(key, str):
        return key
    return bytes(key).decode("utf-8", errors="backslashreplace")


def parse_datum(value: bytes, where: str = "") -> caffe_pb2.Datum:
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except Exception as err:  # protobuf's DecodeError and friends
        raise FormatError(f"{where}: not a Datum: {err}") from err
    return datum


def datum_image(
    datum: caffe_pb2.Datum,
    where: str = "",
    mode: str = "native",
    resize: tuple[int, int] | None = None,
) -> np.ndarray:
    """The Datum's pixels as (C, H, W): uint8 (raw or decoded) or float32 (float_data)."""
    if datum.encoded:
        image = decode_image(datum.data, mode, f"{where}: ")
    else:
        shape = (int(datum.channels), int(datum.height), int(datum.width))
        count = shape[0] * shape[1] * shape[2]
        if datum.data:
            if len(datum.data) != count:
                raise FormatError(
                    f"{where}: Datum holds {len(datum.data)} data bytes but "
                    f"channels*height*width = {count} {shape}"
                )
            image = np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
        else:
            if len(datum.float_data) != count or count == 0:
                raise FormatError(
                    f"{where}: Datum holds {len(datum.float_data)} float_data values (and no "
                    f"data bytes) but channels*height*width = {count} {shape}"
                )
            image = np.asarray(datum.float_data, dtype=np.float32).reshape(shape)
    if resize is not None:
        image = resize_image(image, int(resize[0]), int(resize[1]))
    return image


def raw_datum_batch(
    values: Sequence[Any], shape: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(data (N, C, H, W) uint8, labels (N,) float32) of serialized raw Datums, every one of
    shape `shape` (or of the first's), or None for the per-record path (see module doc)."""
    if not values or any(value is None for value in values):
        return None
    return _engine.parse_raw_datums(values, None if shape is None else [int(d) for d in shape])


def encoded_datum_batch(
    values: Sequence[Any],
    mode: str = "native",
    shape: tuple[int, int, int] | None = None,
    pool: DecodePool | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(data (N, C, H, W) uint8, labels (N,) float32) of serialized encoded Datums decoded in
    `mode`, every image of shape `shape` (or of the first's), or None (see module doc).
    `values` must stay valid until this returns (LMDB views: inside their transaction)."""
    if not values or any(value is None for value in values):
        return None
    rows = _engine.scan_datums(values)
    # parsed, encoded, with data
    if not (rows[:, 0].all() and rows[:, 1].all() and (rows[:, 7] > 0).all()):
        return None

    def decode(i: int) -> np.ndarray | None:
        offset, size = int(rows[i, 6]), int(rows[i, 7])
        return decode_hwc(np.frombuffer(values[i], np.uint8, count=size, offset=offset), mode)

    first = decode(0)
    if first is None:
        return None
    planes = 1 if first.ndim == 2 else first.shape[2]
    shape = tuple(shape) if shape is not None else (planes, first.shape[0], first.shape[1])
    data = np.empty((len(values), *shape), np.uint8)

    def store(i: int, image: np.ndarray | None) -> bool:
        if image is None or (1 if image.ndim == 2 else image.shape[2], *image.shape[:2]) != shape:
            return False
        data[i] = image[np.newaxis] if image.ndim == 2 else image.transpose(2, 0, 1)
        return True

    if not store(0, first):
        return None
    rest = range(1, len(values))
    stored = (pool or DecodePool(1)).map(lambda i: store(i, decode(i)), rest)
    if not all(stored):
        return None
    return data, rows[:, 5].astype(np.float32)


def raw_datum(image: np.ndarray, label: int) -> caffe_pb2.Datum:
    """A raw Datum of a (C, H, W) or (H, W) uint8 image."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise FormatError(f"Datum images must be uint8, got {img.dtype}")
    if img.ndim == 2:
        img = img[np.newaxis]
    if img.ndim != 3:
        raise FormatError(f"Datum images must be (H, W) or (C, H, W), got shape {img.shape}")
    channels, height, width = img.shape
    return caffe_pb2.Datum(
        channels=channels,
        height=height,
        width=width,
        data=np.ascontiguousarray(img).tobytes(),
        label=int(label),
    )


def encoded_datum(data: bytes, label: int) -> caffe_pb2.Datum:
    """An encoded Datum: the image file's bytes, channels/height/width left 0."""
    return caffe_pb2.Datum(data=bytes(data), label=int(label), encoded=True)
