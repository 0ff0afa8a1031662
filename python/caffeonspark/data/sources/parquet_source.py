"""Parquet source (CaffeOnSpark's `com.yahoo.ml.caffe.ImageDataFrame`): one .parquet file or a
folder of them, read as Arrow record batches — never one Python object per row in the hot
path (raw images are a zero-copy view of the binary column's buffer; numeric columns are
flattened by Arrow; only encoded images are touched one by one, to decode them). Which
columns feed which top, and how rows become items, is arrow_items.ArrowItems (shared with
ArrowSource): `data_columns`, `label_column`, `select`, `default_shape`, `encoded_default`.

Partitioning: the N rows (files in sorted order, then row groups) are split into n
contiguous ranges; partition i reads its range, as slices of row groups. Shuffling is by
block, since Parquet is read a row group at a time: each epoch permutes the order of the
share's row-group slices and the rows within each slice (a full shuffle when the share
lies in one row group). Record ids are global row numbers. Errors name the file and row.
Tests: tests/data/test_sources.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from caffeonspark.data.parquet_io import parquet_files
from caffeonspark.data.sources.arrow_gather import RawImageRows
from caffeonspark.data.sources.arrow_items import ArrowItems, parse_select
from caffeonspark.data.sources.base import Chunk, Source, local_path, partition_range

__all__ = ["ParquetSource", "parse_select"]


class _Slice(NamedTuple):
    file: int
    group: int
    start: int  # row within the row group
    stop: int
    first_row: int  # global row number of the row group's row 0


class ParquetSource(ArrowItems, Source):
    kind = "Parquet"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        data_columns: Sequence[str] | str = ("data",),
        label_column: str = "label",
        select: Sequence[str] = (),
        default_shape: tuple[int, int, int] | None = None,
        encoded_default: bool = False,
        tops: Sequence[Any] = (),
        resize_tops: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(local_path(path, options.get("owner", "")), **options)
        self.files = parquet_files(self.path)
        self._parquet = [pq.ParquetFile(f) for f in self.files]
        options_items = {
            "data_columns": data_columns,
            "label_column": label_column,
            "select": select,
            "default_shape": default_shape,
            "encoded_default": encoded_default,
            "tops": tops,
            "resize_tops": resize_tops,
        }
        for f, parquet in zip(self.files, self._parquet, strict=True):
            self._setup_items(parquet.schema_arrow, f"{self.owner}Parquet '{f}'", **options_items)
        groups = []
        row = 0
        for index, parquet in enumerate(self._parquet):
            for group in range(parquet.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                groups.append((index, group, row, rows))
                row += rows
        self.total = row
        lo, hi = partition_range(row, self.partition, self.num_partitions)
        self._slices = [
            _Slice(index, group, max(lo, start) - start, min(hi, start + rows) - start, start)
            for index, group, start, rows in groups
            if start < hi and start + rows > lo
        ]
        # The row group being read: (file, group), its table, its take-free plan.
        self._cache: tuple[tuple[int, int], pa.Table, RawImageRows | None] | None = None

    # -- Source hooks --------------------------------------------------------------------

    def _refs(self) -> Sequence[Any]:
        return self._slices

    def __len__(self) -> int:
        return sum(s.stop - s.start for s in self._slices)

    def _epoch_refs(self, epoch: int) -> Iterator[Sequence[Any]]:
        rng = self.epoch_rng(epoch) if self.shuffle else None
        order = rng.permutation(len(self._slices)) if rng is not None else range(len(self._slices))
        for k in order:
            piece = self._slices[k]
            rows = np.arange(piece.start, piece.stop, dtype=np.int64)
            if rng is not None:
                rows = rng.permutation(rows)
            for start in range(0, len(rows), self.chunk_size):
                yield [(piece, rows[start : start + self.chunk_size])]

    @property
    def item_shape(self) -> tuple[int, int, int]:
        if self._item_shape is None:
            piece = self._slices[0] if self._slices else None
            if piece is None:
                return super().item_shape  # raises: empty share
            self._read([(piece, np.array([piece.start]))])
        return self._item_shape

    def _read(self, refs: Sequence[Any]) -> Chunk:
        piece, rows = refs[0]
        rows = np.asarray(rows, dtype=np.int64)
        table, plan = self._group(piece)
        ids = piece.first_row + rows
        where = f"{self.owner}Parquet '{self.files[piece.file]}'"
        if plan is not None and len(rows):
            return self._gathered(plan, rows, ids, where)
        return self._items(table.take(pa.array(rows)), ids, where)

    # -- reading -------------------------------------------------------------------------

    def _group(self, piece: _Slice) -> tuple[pa.Table, RawImageRows | None]:
        key = (piece.file, piece.group)
        if self._cache is None or self._cache[0] != key:
            table = self._parquet[piece.file].read_row_group(piece.group, columns=self._columns)
            self._cache = (key, table, self._raw_image_plan(table))
        return self._cache[1], self._cache[2]

    def close(self) -> None:
        super().close()
        self._cache = None
