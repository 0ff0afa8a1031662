"""Arrow columns -> items: the conversion ParquetSource and ArrowSource share (a mixin over
data/sources/base.py's Source), vectorised over a table slice, never one Python object per
row except to decode encoded images.

Columns per top:
- data top: `data_columns` (default ["data"]). One binary column = CaffeOnSpark's image
  schema (parquet_io.IMAGE_SCHEMA): planar CHW uint8 pixels, or image files when the
  `encoded` column (else `encoded_default`, memory_data_param.image_encoded) says so; sizes
  from the channels / height / width columns, else `default_shape` (memory_data_param).
  Otherwise plain numeric columns: each a number or a list of numbers per row,
  concatenated per row into float32 features reshaped to `default_shape` (or (F, 1, 1)).
- label top: `label_column` (default "label"; string, integer or float).
`select` (memory_data_param.dataframe_column_select) renames first: "col" or "col AS name".
CoSData instead gives `tops` (data/cos_tops.py TopSpecs): each top reads the column named
like it, converted by its type (cos_tops.top_arrays); chunks then hold one array per top
and no labels; `resize_tops` resizes decoded images to each top's height x width.

`_setup_items(schema, ...)` checks the columns against a schema (FormatError naming
`where` and the missing columns); `_items(table, ids, where)` turns rows into a Chunk;
`_raw_image_plan(table)` / `_gathered(...)` read shuffled raw images without Table.take
(arrow_gather.py).
Tests: tests/data/test_sources.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from caffeonspark.data.cos_tops import TopSpec, top_arrays
from caffeonspark.data.image_codec import decode_image, resize_image
from caffeonspark.data.parquet_io import parse_labels
from caffeonspark.data.sources.arrow_gather import RawImageRows
from caffeonspark.data.sources.base import Chunk
from caffeonspark.errors import FormatError

__all__ = ["ArrowItems", "parse_select", "IMAGE_EXTRAS"]

_AS = re.compile(r"^\s*(\S+)\s+as\s+(\S+)\s*$", re.IGNORECASE)
IMAGE_EXTRAS = ("channels", "height", "width", "encoded", "id")


def parse_select(select: Sequence[str]) -> dict[str, str]:
    """name -> column of "col" / "col AS name" entries."""
    names: dict[str, str] = {}
    for entry in select:
        match = _AS.match(entry)
        column, name = (match.group(1), match.group(2)) if match else (entry.strip(), entry.strip())
        names[name] = column
    return names


class ArrowItems:
    """Mixin for Source subclasses whose records are rows of Arrow tables."""

    # Set by Source.__init__ in the concrete class.
    owner: str
    mode: str
    resize: tuple[int, int] | None
    pool: Any

    def _setup_items(
        self,
        schema: pa.Schema,
        where: str,
        *,
        data_columns: Sequence[str] | str = ("data",),
        label_column: str = "label",
        select: Sequence[str] = (),
        default_shape: tuple[int, int, int] | None = None,
        encoded_default: bool = False,
        tops: Sequence[TopSpec] = (),
        resize_tops: bool = False,
    ) -> None:
        self.tops = list(tops)
        self.resize_tops = bool(resize_tops)
        if self.tops:
            missing = [t for t in self.tops if t.name not in schema.names]
            if missing:
                t = missing[0]
                raise FormatError(
                    f"{where} lacks the column '{t.name}' of {t.label()} (has {schema.names})"
                )
            self._columns = list(dict.fromkeys(t.name for t in self.tops))
            self.image = False
            return
        names = parse_select(select)
        data_columns = [data_columns] if isinstance(data_columns, str) else list(data_columns)
        self.data_columns = [names.get(c, c) for c in data_columns]
        self.label_column = names.get(label_column, label_column)
        self.default_shape = tuple(default_shape) if default_shape else None
        self.encoded_default = bool(encoded_default)
        self._check_columns(schema, where)
        first = schema.field(self.data_columns[0]).type
        self.image = len(self.data_columns) == 1 and (
            pa.types.is_binary(first) or pa.types.is_large_binary(first)
        )
        self._columns = [*self.data_columns, self.label_column]
        if self.image:
            self._columns += [
                c for c in IMAGE_EXTRAS if c in schema.names and c not in self._columns
            ]

    def _check_columns(self, schema: pa.Schema, where: str) -> None:
        missing = [c for c in (*self.data_columns, self.label_column) if c not in schema.names]
        if missing:
            raise FormatError(f"{where} lacks the column(s) {missing} (has {schema.names})")

    def _items(self, table: pa.Table, ids: np.ndarray, where: str) -> Chunk:
        if self.tops:
            arrays = top_arrays(
                table, self.tops, ids, where, pool=self.pool, resize=self.resize_tops
            )
            return Chunk(ids, arrays, None)
        labels = self._labels(table, ids, where)
        data = self._images(table, ids, where) if self.image else self._numbers(table, ids, where)
        return Chunk(ids, data, labels)

    def _raw_image_plan(self, table: pa.Table) -> RawImageRows | None:
        """The take-free read plan of `table` when every row is a raw image of one size."""
        if self.tops or not self.image or self.resize:
            return None
        n = table.num_rows
        encoded = self._column(table, "encoded", n, self.encoded_default).astype(bool)
        dims = self._dims(table, n)
        return RawImageRows.plan(table, self.data_columns[0], self.label_column, dims, encoded)

    def _gathered(self, plan: RawImageRows, rows: np.ndarray, ids: np.ndarray, where: str) -> Chunk:
        """Rows `rows` of the plan's table as the Chunk of records `ids`."""
        data, labels = plan.gather(rows)
        self.check_shape(data[0], f"{where} row {ids[0]}")  # type: ignore[attr-defined]
        return Chunk(ids, data, labels)

    def _labels(self, table: pa.Table, ids: np.ndarray, where: str) -> np.ndarray:
        column = table.column(self.label_column)
        values = parse_labels(column, f"{where} rows {ids.min()}-{ids.max()}")
        if values.null_count:
            bad = int(np.flatnonzero(pc.is_null(values).to_numpy(zero_copy_only=False))[0])
            raise FormatError(f"{where} row {ids[bad]}: label is null")
        return values.to_numpy(zero_copy_only=False).astype(np.float32)

    def _numbers(self, table: pa.Table, ids: np.ndarray, where: str) -> np.ndarray:
        parts = []
        n = len(ids)
        for name in self.data_columns:
            column = table.column(name).combine_chunks()
            if column.null_count:
                bad = int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
                raise FormatError(f"{where} row {ids[bad]}: column '{name}' is null")
            if (
                pa.types.is_list(column.type)
                or pa.types.is_large_list(column.type)
                or pa.types.is_fixed_size_list(column.type)
            ):
                lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
                if len(set(lengths.tolist())) > 1:
                    bad = int(np.flatnonzero(lengths != lengths[0])[0])
                    raise FormatError(
                        f"{where} row {ids[bad]}: column '{name}' holds {lengths[bad]} values; "
                        f"row {ids[0]} holds {lengths[0]}"
                    )
                flat = pc.list_flatten(column)
                values = pc.cast(flat, pa.float32()).to_numpy(zero_copy_only=False)
                parts.append(values.reshape(n, -1))
            else:
                parts.append(
                    pc.cast(column, pa.float32()).to_numpy(zero_copy_only=False).reshape(n, 1)
                )
        features = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        shape = self.default_shape or (features.shape[1], 1, 1)
        if features.shape[1] != shape[0] * shape[1] * shape[2]:
            raise FormatError(
                f"{where} row {ids[0]}: {features.shape[1]} values per row do not fill "
                f"items of shape {shape}"
            )
        data = np.ascontiguousarray(features).reshape(n, *shape)
        self.check_shape(data[0], f"{where} row {ids[0]}")  # type: ignore[attr-defined]
        return data

    def _images(self, table: pa.Table, ids: np.ndarray, where: str) -> np.ndarray:
        n = len(ids)
        column = table.column(self.data_columns[0]).combine_chunks()
        if column.null_count:
            bad = int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
            raise FormatError(f"{where} row {ids[bad]}: data is null")
        offset_type = np.int64 if pa.types.is_large_binary(column.type) else np.int32
        buffers = column.buffers()
        offsets = np.frombuffer(buffers[1], dtype=offset_type)[
            column.offset : column.offset + n + 1
        ]
        values = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] else np.empty(0, np.uint8)
        encoded = self._column(table, "encoded", n, self.encoded_default).astype(bool)
        dims = self._dims(table, n)
        check_shape = self.check_shape  # type: ignore[attr-defined]
        if not encoded.any() and not self.resize and (dims == dims[0]).all():
            c, h, w = (int(d) for d in dims[0])
            lengths = np.diff(offsets)
            size = c * h * w
            if size == 0 or (lengths != size).any():
                bad = 0 if size == 0 else int(np.flatnonzero(lengths != size)[0])
                raise FormatError(
                    self._size_error(table, ids, bad, where, int(lengths[bad]), dims[bad])
                )
            check_shape(np.empty((c, h, w), np.uint8), f"{where} row {ids[0]}")
            return values[offsets[0] : offsets[0] + n * size].reshape(n, c, h, w)

        def one(i: int) -> np.ndarray:
            payload = values[offsets[i] : offsets[i + 1]]
            at = f"{where} row {ids[i]}"
            if encoded[i]:
                image = decode_image(payload, self.mode, at + ": ")
            else:
                c, h, w = (int(d) for d in dims[i])
                if c * h * w == 0 or payload.size != c * h * w:
                    raise FormatError(self._size_error(table, ids, i, where, payload.size, dims[i]))
                image = payload.reshape(c, h, w)
            if self.resize:
                image = resize_image(image, *self.resize)
            return check_shape(image, at)

        images = self.pool.map(one, range(n))
        return np.stack(images)

    def _column(self, table: pa.Table, name: str, n: int, default: Any) -> np.ndarray:
        if name not in table.column_names:
            return np.full(n, default)
        column = table.column(name).combine_chunks()
        filled = pc.fill_null(column, default) if column.null_count else column
        return filled.to_numpy(zero_copy_only=False)

    def _dims(self, table: pa.Table, n: int) -> np.ndarray:
        default = self.default_shape or (0, 0, 0)
        cols = [
            self._column(table, name, n, d)
            for name, d in zip(("channels", "height", "width"), default, strict=True)
        ]
        dims = np.stack(cols, axis=1).astype(np.int64)
        zero = (dims == 0).any(axis=1)
        if zero.any() and self.default_shape:
            dims[zero] = self.default_shape
        return dims

    def _size_error(self, table, ids, i, where, got, dims) -> str:
        label = f" (id {table.column('id')[i].as_py()!r})" if "id" in table.column_names else ""
        c, h, w = (int(d) for d in dims)
        if c * h * w == 0:
            return (
                f"{where} row {ids[i]}{label}: a raw image needs channels, height and width "
                "(columns, or memory_data_param)"
            )
        return (
            f"{where} row {ids[i]}{label}: {got} data bytes but channels*height*width = "
            f"{c * h * w} ({c}, {h}, {w})"
        )
