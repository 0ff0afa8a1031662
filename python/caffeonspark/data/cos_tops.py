"""CoSData tops: the typed columns of a DataFrame row as the arrays a CoSData layer is fed.

`top_specs(layer)` reads cos_data_param's `top` entries into TopSpecs. Each top reads the
DataFrame column named like it (`TopSpec.name`). `top_arrays(table, tops, ids, where, ...)`
turns a slice of rows into one (k, C, H, W) array per top — C, H, W the top's channels,
height, width, 1 beyond its sample_num_axes — as CaffeOnSpark's DataFrameSource fills its
blobs (docs/DATA.md, "CoSData"):

- STRING: text parsed as a number ("7", " 3.5 "); INT: an integer column; FLOAT: any
  numeric column. One value per row, float32.
- INT_ARRAY / FLOAT_ARRAY: a list column of exactly C*H*W numbers per row, float32.
- RAW_IMAGE: a binary column of exactly C*H*W bytes per row, laid out as an OpenCV image
  buffer (rows of interleaved channels, H x W x C; the same bytes as planar for 1 channel),
  returned planar uint8.
- ENCODED_IMAGE: a binary column of image files, decoded as gray for 1 channel, colour
  (BGR) for 3, the file's own channels otherwise.
- ENCODED_IMAGE_WITH_DIM: a struct column {image (binary or list of bytes), height, width}:
  decoded as ENCODED_IMAGE; the decoded size must equal the row's height x width.
Decoded images must have the top's H x W unless `resize` (CaffeOnSpark's -resize), which
brings them there bilinearly. Nulls, unparsable text, wrong lengths and undecodable files
raise FormatError naming `where` (the layer and file), the row and the top.
The transform (scale, crop, mirror, mean) and the transpose happen natively afterwards
(cpp/layers/cos_data.h).
Tests: tests/layers/test_cos_data.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from caffeonspark.data.image_codec import decode_image, resize_image
from caffeonspark.errors import ConfigError, FormatError
from caffeonspark.proto import caffe_pb2

__all__ = ["TopSpec", "top_specs", "top_arrays", "NUMBER_TYPES", "ARRAY_TYPES", "IMAGE_TYPES"]

NUMBER_TYPES = ("STRING", "INT", "FLOAT")
ARRAY_TYPES = ("INT_ARRAY", "FLOAT_ARRAY")
IMAGE_TYPES = ("RAW_IMAGE", "ENCODED_IMAGE", "ENCODED_IMAGE_WITH_DIM")
_TopBlob = caffe_pb2.CoSDataParameter.TopBlob


@dataclass(frozen=True)
class TopSpec:
    index: int
    name: str  # the DataFrame column
    type: str  # DataType name
    item: tuple[int, int, int]  # (C, H, W) as fed; 1 beyond sample_num_axes

    @property
    def image(self) -> bool:
        return self.type in IMAGE_TYPES

    @property
    def size(self) -> int:
        return self.item[0] * self.item[1] * self.item[2]

    @property
    def mode(self) -> str:
        """How encoded images of this top are decoded (by its channel count)."""
        return {1: "gray", 3: "color"}.get(self.item[0], "native")

    def label(self) -> str:
        return f"top {self.index} '{self.name}' ({self.type})"


def top_specs(layer: caffe_pb2.LayerParameter, owner: str = "") -> list[TopSpec]:
    """The layer's cos_data_param tops (the engine checks the rest of their rules)."""
    specs = []
    for index, top in enumerate(layer.cos_data_param.top):
        kind = _TopBlob.DataType.Name(top.type)
        axes = int(top.sample_num_axes)
        if not 0 <= axes <= 3:
            raise ConfigError(f"{owner}cos_data_param top {index}: sample_num_axes {axes}")
        dims = [int(top.channels), int(top.height), int(top.width)]
        item = tuple(dims[a] if a < axes else 1 for a in range(3))
        specs.append(TopSpec(index, top.name, kind, item))  # type: ignore[arg-type]
    return specs


def top_arrays(
    table: pa.Table,
    tops: Sequence[TopSpec],
    ids: np.ndarray,
    where: str,
    *,
    pool: Any = None,
    resize: bool = False,
) -> tuple[np.ndarray, ...]:
    """One (k, C, H, W) array per top for the k rows of `table` (ids: their row numbers)."""
    return tuple(
        _top_array(table.column(top.name).combine_chunks(), top, ids, where, pool, resize)
        for top in tops
    )


def _top_array(
    column: pa.Array, top: TopSpec, ids: np.ndarray, where: str, pool: Any, resize: bool
) -> np.ndarray:
    at = f"{where} top '{top.name}' ({top.type})"
    if column.null_count:
        bad = int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
        raise FormatError(f"{where} row {ids[bad]}: column '{top.name}' of {top.label()} is null")
    n = len(ids)
    if top.type in NUMBER_TYPES:
        return _numbers(column, top, ids, at).reshape(n, *top.item)
    if top.type in ARRAY_TYPES:
        return _arrays(column, top, ids, at).reshape(n, *top.item)
    if top.type == "RAW_IMAGE":
        return _raw_images(column, top, ids, where)
    return _encoded_images(column, top, ids, where, pool, resize)


def _numbers(column: pa.Array, top: TopSpec, ids: np.ndarray, at: str) -> np.ndarray:
    kind = column.type
    if top.type == "STRING":
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise FormatError(f"{at}: column holds {kind}; STRING wants text")
        text = pc.utf8_trim_whitespace(column)
        try:
            values = pc.cast(text, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            for i, value in enumerate(text.to_pylist()):
                try:
                    float(value)
                except ValueError:
                    raise FormatError(f"{at} row {ids[i]}: {value!r} is not a number") from None
            raise
        return values.to_numpy(zero_copy_only=False).astype(np.float32)
    if top.type == "INT" and not pa.types.is_integer(kind):
        raise FormatError(f"{at}: column holds {kind}; INT wants integers")
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise FormatError(f"{at}: column holds {kind}; FLOAT wants numbers")
    return column.to_numpy(zero_copy_only=False).astype(np.float32)


def _arrays(column: pa.Array, top: TopSpec, ids: np.ndarray, at: str) -> np.ndarray:
    kind = column.type
    if not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        raise FormatError(f"{at}: column holds {kind}; {top.type} wants a list of numbers per row")
    value_type = kind.value_type
    wanted = pa.types.is_integer if top.type == "INT_ARRAY" else _is_number
    if not wanted(value_type):
        raise FormatError(
            f"{at}: lists hold {value_type}; {top.type} wants "
            + ("integers" if top.type == "INT_ARRAY" else "numbers")
        )
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if (lengths != top.size).any():
        bad = int(np.flatnonzero(lengths != top.size)[0])
        raise FormatError(
            f"{at} row {ids[bad]}: {lengths[bad]} values; channels x height x width of its "
            f"sample axes is {top.size}"
        )
    flat = pc.list_flatten(column)
    if flat.null_count:
        raise FormatError(f"{at}: a list holds a null value")
    return flat.to_numpy(zero_copy_only=False).astype(np.float32)


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _binary_parts(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (n + 1), bytes) of a binary or list-of-byte column, without copies."""
    kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        offset_type = np.int64 if pa.types.is_large_binary(kind) else np.int32
        buffers = column.buffers()
        offsets = np.frombuffer(buffers[1], dtype=offset_type)[
            column.offset : column.offset + len(column) + 1
        ]
        values = np.frombuffer(buffers[2], np.uint8) if buffers[2] else np.empty(0, np.uint8)
        return offsets, values
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and kind.value_type in (
        pa.int8(),
        pa.uint8(),
    ):
        offsets = column.offsets.to_numpy(zero_copy_only=False)
        values = column.values.to_numpy(zero_copy_only=False).view(np.uint8)
        return offsets, values
    raise TypeError(str(kind))


def _bytes_column(column: pa.Array, at: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return _binary_parts(column)
    except TypeError:
        raise FormatError(f"{at}: column holds {column.type}; {what}") from None


def _raw_images(column: pa.Array, top: TopSpec, ids: np.ndarray, where: str) -> np.ndarray:
    at = f"{where} top '{top.name}' ({top.type})"
    offsets, values = _bytes_column(column, at, "RAW_IMAGE wants binary pixels")
    lengths = np.diff(offsets)
    if (lengths != top.size).any():
        bad = int(np.flatnonzero(lengths != top.size)[0])
        c, h, w = top.item
        raise FormatError(
            f"{at} row {ids[bad]}: {lengths[bad]} bytes but channels x height x width = "
            f"{top.size} ({c}, {h}, {w})"
        )
    c, h, w = top.item
    start = int(offsets[0])
    hwc = values[start : start + len(ids) * top.size].reshape(len(ids), h, w, c)
    return np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))


def _encoded_images(
    column: pa.Array, top: TopSpec, ids: np.ndarray, where: str, pool: Any, resize: bool
) -> np.ndarray:
    at = f"{where} top '{top.name}' ({top.type})"
    dims = None
    if top.type == "ENCODED_IMAGE_WITH_DIM":
        column, dims = _image_struct(column, at)
    offsets, values = _bytes_column(column, at, "encoded images must be binary")
    c, h, w = top.item

    def one(i: int) -> np.ndarray:
        row = f"{at} row {ids[i]}: "
        image = decode_image(values[offsets[i] : offsets[i + 1]], top.mode, row)
        if dims is not None and image.shape[1:] != tuple(dims[i]):
            raise FormatError(
                f"{row}the image decodes to {image.shape[1]} x {image.shape[2]} but the row "
                f"says height x width = {dims[i][0]} x {dims[i][1]}"
            )
        if image.shape[0] != c:
            raise FormatError(f"{row}the image has {image.shape[0]} channels; the top wants {c}")
        if image.shape[1:] != (h, w):
            if not resize:
                raise FormatError(
                    f"{row}the image is {image.shape[1]} x {image.shape[2]}; the top wants "
                    f"{h} x {w} (resize images with FeedOptions(resize=True) / -resize)"
                )
            image = resize_image(image, h, w)
        return image

    indices = range(len(ids))
    images = pool.map(one, indices) if pool is not None else [one(i) for i in indices]
    return np.stack(images) if images else np.empty((0, c, h, w), np.uint8)


def _image_struct(column: pa.Array, at: str) -> tuple[pa.Array, np.ndarray]:
    """(image bytes column, (n, 2) height/width) of an ENCODED_IMAGE_WITH_DIM struct column."""
    kind = column.type
    names = [kind.field(i).name for i in range(kind.num_fields)] if pa.types.is_struct(kind) else []
    missing = [f for f in ("image", "height", "width") if f not in names]
    if missing:
        raise FormatError(
            f"{at}: column holds {kind}; ENCODED_IMAGE_WITH_DIM wants a struct with image, "
            f"height and width (missing {missing})"
        )
    # pc.struct_field honours the slice offset of `column` (StructArray.field may not).
    dims = np.stack(
        [pc.struct_field(column, f).to_numpy(zero_copy_only=False) for f in ("height", "width")],
        axis=1,
    ).astype(np.int64)
    return pc.struct_field(column, "image"), dims
