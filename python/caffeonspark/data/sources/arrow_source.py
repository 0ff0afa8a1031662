"""Arrow source: rows of an Arrow table as records — an Arrow IPC file (memory-mapped, so a
large spooled partition costs page cache, not heap) or a table / record batches already in
memory. It is what a Spark task trains from: the DataFrame partition arrives as Arrow record
batches (mapInArrow), is spooled to an IPC file, and a MemoryData layer naming
`source_class: "Arrow"` reads it (caffeonspark/spark/tasks.py).

Columns become items as in Parquet (arrow_items.ArrowItems: image schema or numeric
columns, `select` renames). Partition i of n is the contiguous row range [N*i/n, N*(i+1)/n);
record ids are row numbers; the shuffle permutes the share's rows per epoch. Rows read in
order are zero-copy slices of the table; shuffled rows are gathered by NumPy from the pixel
buffers when every row is a raw image of one size (a spool), else taken batch by batch
(arrow_gather.py: never `Table.take` over the whole table, which copies it).
Tests: tests/data/test_sources.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from caffeonspark.data.sources.arrow_gather import BatchRows
from caffeonspark.data.sources.arrow_items import ArrowItems
from caffeonspark.data.sources.base import Chunk, Source, local_path, partition_range
from caffeonspark.errors import FormatError, IoError

__all__ = ["ArrowSource", "open_arrow_file"]


def open_arrow_file(path: str, owner: str = "") -> pa.Table:
    """The table of an Arrow IPC file (file or stream format), memory-mapped."""
    if not os.path.isfile(path):
        raise IoError(f"{owner}Arrow source '{path}' does not exist")
    try:
        source = pa.memory_map(path, "r")
        try:
            return pa.ipc.open_file(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_stream(source).read_all()
    except (pa.ArrowInvalid, OSError) as err:
        raise FormatError(f"{owner}Arrow source '{path}' is not an Arrow IPC file: {err}") from err


def _as_table(path: Any, owner: str) -> tuple[pa.Table, str]:
    if isinstance(path, pa.Table):
        return path, "<Arrow table>"
    if isinstance(path, pa.RecordBatch):
        return pa.Table.from_batches([path]), "<Arrow table>"
    if isinstance(path, (list, tuple)) and path and isinstance(path[0], pa.RecordBatch):
        return pa.Table.from_batches(list(path)), "<Arrow table>"
    name = local_path(path, owner)
    return open_arrow_file(name, owner), name


class ArrowSource(ArrowItems, Source):
    kind = "Arrow"

    def __init__(
        self,
        path: Any,
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
        table, name = _as_table(path, options.get("owner", ""))
        super().__init__(name, **options)
        self._setup_items(
            table.schema,
            f"{self.owner}Arrow '{name}'",
            data_columns=data_columns,
            label_column=label_column,
            select=select,
            default_shape=default_shape,
            encoded_default=encoded_default,
            tops=tops,
            resize_tops=resize_tops,
        )
        self.table = table.select(self._columns)
        self.total = table.num_rows
        self._lo, self._hi = partition_range(self.total, self.partition, self.num_partitions)
        self._raw_rows = self._raw_image_plan(self.table)  # a spool: no Table.take
        self._batch_rows = BatchRows(self.table)

    def _refs(self) -> Sequence[Any]:
        return np.arange(self._lo, self._hi, dtype=np.int64)

    def _read(self, refs: Sequence[Any]) -> Chunk:
        rows = np.asarray(refs, dtype=np.int64)
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows) and (np.diff(rows) == 1).all():
            part = self.table.slice(int(rows[0]), len(rows))
        elif self._raw_rows is not None and len(rows):
            return self._gathered(self._raw_rows, rows, rows, f"{self.owner}Arrow '{self.path}'")
        else:
            part = self._batch_rows.take(rows)
        return self._items(part, rows, f"{self.owner}Arrow '{self.path}'")
