"""Net.set_input_arrays: arrays a MemoryData layer cycles over, as pycaffe's do.

pycaffe hands the arrays to MemoryDataLayer::Reset; Forward then points the tops at the next
batch_size items, wrapping round, and no transform_param is applied to them. Our MemoryData
layer pops batches from a queue instead, so the arrays are held here and caffe.Net.forward
writes the next batch into the layer's tops itself, then runs the layers after it. The
native solver (solver.step) still pops the queue: feed it with net.memory_data_feeder.

Tests: tests/caffe/test_set_input_arrays.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from caffeonspark.errors import ConfigError, ShapeError


class MemoryArrays:
    """data (N x C x H x W float32) and labels (N) for the MemoryData layer first in a net;
    `position` is the index of the next batch's first item."""

    def __init__(self, tops: list[str], batch_size: int, data: np.ndarray,
                 labels: np.ndarray) -> None:
        self.tops = tops
        self.batch_size = batch_size
        self.data = data
        self.labels = labels
        self.position = 0

    @classmethod
    def for_net(cls, net: Any, data: Any, labels: Any) -> MemoryArrays:
        """Check the arrays against the net's first layer as pycaffe does."""
        first = net.layers[0] if net.layers else None
        if first is None or first.type != "MemoryData":
            raise ConfigError("set_input_arrays may only be called if the first layer is a "
                              "MemoryData layer")
        param = net.net_param.layer[0].memory_data_param
        item = (int(param.channels), int(param.height), int(param.width))
        data = np.ascontiguousarray(data, dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.float32).reshape(-1)
        if data.ndim != 4 or data.shape[1:] != item:
            raise ShapeError(f"set_input_arrays: data has shape {data.shape}; layer "
                             f"'{first.name}' wants N x {item[0]} x {item[1]} x {item[2]}")
        if len(labels) != len(data):
            raise ShapeError(f"set_input_arrays: {len(data)} data items but {len(labels)} "
                             "labels")
        size = int(param.batch_size)
        if len(data) == 0 or len(data) % size:
            raise ShapeError(f"set_input_arrays: {len(data)} items is not a positive multiple "
                             f"of batch_size {size}")
        return cls(list(net.top_names[first.name]), size, data, labels)

    def fill_next(self, net: Any) -> None:
        """Write the next batch into the layer's tops and move on, wrapping at the end."""
        end = self.position + self.batch_size
        net.blobs[self.tops[0]].data[...] = self.data[self.position:end]
        if len(self.tops) > 1:
            label_blob = net.blobs[self.tops[1]]
            label_blob.data[...] = self.labels[self.position:end].reshape(label_blob.shape)
        self.position = end % len(self.data)
