"""Shuffled reads from an Arrow table without `Table.take` over the whole table.

`Table.take` on a chunked binary column concatenates the column first: it copies every
row's bytes for each read, 17 ms per 256 rows of a 100,000-row table of 28x28 images
(tools/bench_arrow_gather.py), and gigabytes per read for a spool of encoded images. A
Spark task's spool is the commonest Arrow table trained from, read shuffled, on an executor
whose cores the solver needs. Two ways round it:

- RawImageRows: when every row is a raw image of one size with a numeric label (checked
  once, vectorised, over the whole table), a read is a NumPy gather from zero-copy views of
  each record batch's pixel buffer (memory-mapped for a spool file) into one (k, C, H, W)
  array: 0.15 ms for those 256 rows. ParquetSource plans each row group the same way.
- BatchRows.take, for any other table (encoded images, numeric columns, CoSData tops): the
  rows are grouped by record batch, each batch takes its own rows (copying only those), and
  the small result is put back in the order asked for. The rows' conversion, and its
  row-precise errors, stay with ArrowItems.

Tests: tests/data/test_arrow_gather.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from caffeonspark.data.parquet_io import parse_labels
from caffeonspark.errors import FormatError

__all__ = ["BatchRows", "RawImageRows", "by_batch"]


class RawImageRows:
    """Row-indexed (pixels, label) of a table whose rows are all raw images of one shape."""

    def __init__(self, views: list[np.ndarray], starts: np.ndarray, labels: np.ndarray) -> None:
        self._views = views  # per record batch: (rows, C, H, W) uint8, zero-copy
        self._starts = starts  # first table row of each record batch, then the row count
        self.labels = labels  # (rows,) float32
        self.shape = tuple(int(d) for d in views[0].shape[1:])

    @classmethod
    def plan(
        cls,
        table: pa.Table,
        data_column: str,
        label_column: str,
        dims: np.ndarray | None,
        encoded: np.ndarray | None,
    ) -> RawImageRows | None:
        """A plan for `table`, or None when any row is not a raw image of the common size.
        `dims` is the (rows, 3) channels/height/width after defaults, `encoded` the per-row
        flag (None: no row is encoded)."""
        if table.num_rows == 0 or dims is None or not (dims == dims[0]).all():
            return None
        if encoded is not None and encoded.any():
            return None
        size = int(np.prod(dims[0]))
        column = table.column(data_column)
        if size == 0 or column.null_count:
            return None
        try:
            labels = parse_labels(table.column(label_column), "")
        except FormatError:
            return None
        if labels.null_count:
            return None
        views = []
        for chunk in column.chunks:
            pixels = _fixed_rows(chunk, size)
            if pixels is None:
                return None
            views.append(pixels.reshape(len(chunk), *(int(d) for d in dims[0])))
        lengths = np.array([len(c) for c in column.chunks], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        return cls(views, starts, labels.to_numpy().astype(np.float32))

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pixels (k, C, H, W) uint8, labels (k,) float32) of table rows `rows`."""
        out = np.empty((len(rows), *self.shape), np.uint8)
        for b, picked in by_batch(self._starts, rows):
            out[picked] = self._views[b][rows[picked] - self._starts[b]]
        return out, self.labels[rows]


class BatchRows:
    """A table's record batches, for order-keeping takes that copy only the rows taken."""

    def __init__(self, table: pa.Table) -> None:
        self.schema = table.schema
        self._batches = table.to_batches()  # zero-copy; aligned across columns
        lengths = [b.num_rows for b in self._batches]
        self._starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])

    def take(self, rows: np.ndarray) -> pa.Table:
        """Table rows `rows`, in that order."""
        parts, placed = [], []
        for b, picked in by_batch(self._starts, rows):
            parts.append(self._batches[b].take(pa.array(rows[picked] - self._starts[b])))
            placed.append(picked)
        if len(parts) <= 1:
            return pa.Table.from_batches(parts, self.schema)
        placed_at = np.concatenate(placed)  # result row i is the placed_at[i]-th asked for
        back = np.empty_like(placed_at)
        back[placed_at] = np.arange(len(placed_at))
        return pa.Table.from_batches(parts, self.schema).take(pa.array(back))


def by_batch(starts: np.ndarray, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(record batch b, positions in `rows` of its rows), one sort, batches in order."""
    if not len(rows):
        return
    batch = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(batch, kind="stable")
    for picked in np.split(order, np.flatnonzero(np.diff(batch[order])) + 1):
        yield int(batch[picked[0]]), picked


def _fixed_rows(chunk: pa.Array, size: int) -> np.ndarray | None:
    """The pixel bytes of a binary array as one flat view, when every row holds `size`."""
    if len(chunk) == 0:
        return np.empty(0, np.uint8)
    large = pa.types.is_large_binary(chunk.type)
    buffers = chunk.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)[
        chunk.offset : chunk.offset + len(chunk) + 1
    ]
    if (np.diff(offsets) != size).any():
        return None
    values = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] else np.empty(0, np.uint8)
    return values[offsets[0] : offsets[0] + len(chunk) * size]
