"""NumPy source: in-memory arrays (or an .npz file holding `data` and `label`) read by
partition, like the file sources: partition i of n is the contiguous row range
[N*i/n, N*(i+1)/n); record ids are row indices. data is (N, C, H, W) uint8 (transformed by
the layer) or float32 (taken as preprocessed), labels (N,). Rows are gathered with one
fancy-indexing copy per chunk.
Tests: tests/data/test_sources.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from caffeonspark.data.image_codec import resize_image
from caffeonspark.data.sources.base import Chunk, Source, local_path, partition_range
from caffeonspark.errors import FormatError, IoError, ShapeError

__all__ = ["NumpySource"]


def _load(path: Any, owner: str) -> tuple[np.ndarray, np.ndarray, str]:
    if isinstance(path, tuple) and len(path) == 2:
        return np.asarray(path[0]), np.asarray(path[1]), "arrays"
    if isinstance(path, dict):
        return np.asarray(path["data"]), np.asarray(path["label"]), "arrays"
    name = local_path(path, owner)
    if not os.path.isfile(name):
        raise IoError(f"{owner}NumPy source '{name}' does not exist")
    try:
        with np.load(name) as archive:
            return archive["data"], archive["label"], name
    except KeyError as err:
        raise FormatError(f"{owner}NumPy source '{name}' needs arrays 'data' and 'label'") from err
    except (OSError, ValueError) as err:
        raise FormatError(f"{owner}NumPy source '{name}' is not an .npz file: {err}") from err


class NumpySource(Source):
    kind = "NumPy"

    def __init__(self, path: Any, **options: Any) -> None:
        data, labels, name = _load(path, options.get("owner", ""))
        super().__init__(name, **options)
        if data.ndim == 3:
            data = data[:, np.newaxis]
        if data.ndim != 4:
            raise ShapeError(
                f"{self.owner}NumPy source data must be (N, C, H, W), got {data.shape}"
            )
        if labels.reshape(-1).shape[0] != data.shape[0]:
            raise ShapeError(
                f"{self.owner}NumPy source has {data.shape[0]} items but {labels.size} labels"
            )
        if data.dtype != np.uint8:
            data = data.astype(np.float32, copy=False)
        self.data, self.labels = data, labels.reshape(-1).astype(np.float32)
        self.total = data.shape[0]
        self._lo, self._hi = partition_range(self.total, self.partition, self.num_partitions)
        shape = (data.shape[1], *(self.resize or data.shape[2:]))
        self._item_shape = self._item_shape or tuple(int(d) for d in shape)
        if tuple(shape) != self._item_shape:
            raise FormatError(
                f"{self.owner}NumPy source '{self.path}' row {self._lo}: image shape "
                f"{tuple(shape)} differs from the source's {self._item_shape}"
            )

    def _refs(self) -> Sequence[Any]:
        return np.arange(self._lo, self._hi, dtype=np.int64)

    def _read(self, refs: Sequence[Any]) -> Chunk:
        rows = np.asarray(refs, dtype=np.int64)
        data = self.data[rows]
        if self.resize:
            data = np.stack([resize_image(image, *self.resize) for image in data])
        return Chunk(rows, data, self.labels[rows])
