"""LMDB source (CaffeOnSpark's `com.yahoo.ml.caffe.LMDB`): a Datum LMDB read by partition.

The N records in key order are split into n contiguous ranges; partition i reads
[N*i/n, N*(i+1)/n) (sizes differ by at most one). Its keys are listed once (keys only,
values unread), then each epoch reads the values in storage or shuffled order by key.
Record ids are positions in key order. Datums may be raw, float_data or encoded (decoded in
`mode`, see datums.datum_image). A run of raw Datums (no resize) is read zero-copy from the
read transaction's memory map and parsed in one native call (datums.raw_datum_batch), its
pixels copied once; a run of encoded ones is decoded straight from the map into the chunk
(datums.encoded_datum_batch); anything else goes record by record. Errors name the database
and the key.
Tests: tests/data/test_sources.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from caffeonspark.data.datums import (
    datum_image,
    encoded_datum_batch,
    key_text,
    parse_datum,
    raw_datum_batch,
)
from caffeonspark.data.lmdb_feeder import open_lmdb
from caffeonspark.data.sources.base import Chunk, Source, local_path, partition_range
from caffeonspark.errors import IoError

__all__ = ["LmdbSource"]


class LmdbSource(Source):
    kind = "LMDB"

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        super().__init__(local_path(path, options.get("owner", "")), **options)
        self._stack = contextlib.ExitStack()
        self._env = self._stack.enter_context(open_lmdb(self.path, self.owner))
        self.total = int(self._env.stat()["entries"])
        self._lo, self._hi = partition_range(self.total, self.partition, self.num_partitions)

    def _refs(self) -> Sequence[Any]:
        keys: list[bytes] = []
        with self._env.begin(buffers=False) as txn:
            cursor = txn.cursor()
            for index, key in enumerate(cursor.iternext(keys=True, values=False)):
                if index >= self._hi:
                    break
                if index >= self._lo:
                    keys.append(bytes(key))
        return keys

    def _read(self, refs: Sequence[Any]) -> Chunk:
        if self.resize is None:
            with self._env.begin(buffers=True) as txn:
                views = [txn.get(key) for key in refs]
                fast = raw_datum_batch(views, self._item_shape) or encoded_datum_batch(
                    views, self.mode, self._item_shape, self.pool
                )
                del views  # they point into the transaction's map
            if fast is not None:
                data, labels = fast
                if self._item_shape is None:
                    self._item_shape = tuple(int(d) for d in data.shape[1:])
                return Chunk(self._positions(refs), data, labels)
        with self._env.begin(buffers=False) as txn:
            values = [(key, txn.get(key)) for key in refs]
        data, labels = self.stack(values, self._convert)
        positions = self._positions(refs)
        return Chunk(positions, data, labels)

    def _positions(self, refs: Sequence[bytes]) -> np.ndarray:
        if not hasattr(self, "_index_of"):
            self._index_of = {key: self._lo + i for i, key in enumerate(self.local_refs)}
        return np.fromiter((self._index_of[k] for k in refs), dtype=np.int64, count=len(refs))

    def record_keys(self, ids: np.ndarray) -> list[str]:
        """The LMDB keys (as text) of records by id."""
        refs = self.local_refs
        return [key_text(refs[int(i) - self._lo]) for i in ids]

    def _convert(self, record: tuple[bytes, bytes | None]) -> tuple[np.ndarray, float]:
        key, value = record
        where = f"{self.owner}LMDB '{self.path}' key '{key_text(key)}'"
        if value is None:
            raise IoError(f"{where}: the record vanished while reading")
        datum = parse_datum(value, where)
        image = datum_image(datum, where, self.mode, self.resize)
        return self.check_shape(image, where), float(datum.label)

    def close(self) -> None:
        super().close()
        self._stack.close()
