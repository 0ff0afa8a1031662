"""Writers of DataFrames in the layout CoSData layers read (data/cos_tops.py): one column per
top, named like the top, typed by the top's DataType.

`cos_table({name: (type, values)})` builds the Arrow table:
- STRING: numbers written as text ("7", "0.25"); INT: int32; FLOAT: float32;
- INT_ARRAY / FLOAT_ARRAY: (n, k) arrays as lists of int32 / float32;
- RAW_IMAGE: (n, C, H, W) uint8 (or (n, H, W)) as binary OpenCV buffers (H x W x C,
  interleaved);
- ENCODED_IMAGE: image file bytes as they are, or (C, H, W) uint8 arrays encoded as `ext`;
- ENCODED_IMAGE_WITH_DIM: the same, as a struct {height, width, image} with the image's size.
`write_cos_parquet(path, columns)` writes it as one Parquet file, `write_cos_arrow(path,
columns)` as an Arrow IPC file; both write under a temporary name, fsync and rename when
complete (atomic_file.py).
Tests: tests/layers/test_cos_data.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from caffeonspark.atomic_file import atomic_path
from caffeonspark.data.cos_tops import ARRAY_TYPES, IMAGE_TYPES, NUMBER_TYPES
from caffeonspark.data.image_codec import decode_image, encode_image
from caffeonspark.errors import ConfigError

__all__ = ["cos_table", "write_cos_parquet", "write_cos_arrow"]


def cos_table(columns: Mapping[str, tuple[str, Any]], ext: str = ".png") -> pa.Table:
    """Columns {name: (DataType name, values)} as an Arrow table (see the module doc)."""
    arrays = {}
    for name, (kind, values) in columns.items():
        if kind not in (*NUMBER_TYPES, *ARRAY_TYPES, *IMAGE_TYPES):
            raise ConfigError(f"column '{name}': unknown CoSData type {kind!r}")
        arrays[name] = _column(kind, values, ext)
    return pa.table(arrays)


def _column(kind: str, values: Any, ext: str) -> pa.Array:
    if kind == "STRING":
        return pa.array([_number_text(v) for v in np.asarray(values).reshape(-1).tolist()])
    if kind == "INT":
        return pa.array(np.asarray(values).reshape(-1).astype(np.int32))
    if kind == "FLOAT":
        return pa.array(np.asarray(values).reshape(-1).astype(np.float32))
    if kind in ARRAY_TYPES:
        dtype = np.int32 if kind == "INT_ARRAY" else np.float32
        rows = np.asarray(values, dtype=dtype)
        rows = rows.reshape(rows.shape[0], -1)
        flat = pa.array(rows.reshape(-1))
        offsets = pa.array(np.arange(rows.shape[0] + 1, dtype=np.int32) * rows.shape[1])
        return pa.ListArray.from_arrays(offsets, flat)
    if kind == "RAW_IMAGE":
        images = np.asarray(values, dtype=np.uint8)
        if images.ndim == 3:
            images = images[:, np.newaxis]
        hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
        return pa.array([image.tobytes() for image in hwc], type=pa.binary())
    files = [_encoded(v, ext) for v in values]
    if kind == "ENCODED_IMAGE":
        return pa.array([data for data, _ in files], type=pa.binary())
    return pa.StructArray.from_arrays(
        [
            pa.array([shape[0] for _, shape in files], pa.int32()),
            pa.array([shape[1] for _, shape in files], pa.int32()),
            pa.array([data for data, _ in files], type=pa.binary()),
        ],
        names=["height", "width", "image"],
    )


def _number_text(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _encoded(value: Any, ext: str) -> tuple[bytes, tuple[int, int]]:
    """(file bytes, (height, width)) of image bytes or a (C, H, W) / (H, W) uint8 array."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        image = decode_image(value, "native")
        return bytes(value), (int(image.shape[1]), int(image.shape[2]))
    image = np.asarray(value, dtype=np.uint8)
    if image.ndim == 2:
        image = image[np.newaxis]
    return encode_image(image, ext), (int(image.shape[1]), int(image.shape[2]))


def _write(path: str | os.PathLike[str], table: pa.Table, write: Any) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        write(table, tmp)
    return target


def write_cos_parquet(
    path: str | os.PathLike[str],
    columns: Mapping[str, tuple[str, Any]],
    *,
    row_group_size: int = 1024,
    ext: str = ".png",
) -> Path:
    """The columns as one Parquet file at `path` (see the module doc)."""
    return _write(
        path,
        cos_table(columns, ext),
        lambda table, tmp: pq.write_table(table, tmp, row_group_size=row_group_size),
    )


def write_cos_arrow(
    path: str | os.PathLike[str], columns: Mapping[str, tuple[str, Any]], ext: str = ".png"
) -> Path:
    """The columns as one Arrow IPC file at `path` (what ArrowSource memory-maps)."""

    def write(table: pa.Table, tmp: str) -> None:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    return _write(path, cos_table(columns, ext), write)
