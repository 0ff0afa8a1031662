"""caffe.Layer: the base class of Python layers (`type: "Python"`), as pycaffe's.

A net naming `python_param { module: "m" layer: "C" param_str: "..." }` builds `m.C(param)`
(param: the LayerParameter) through python/caffeonspark/python_layer.py and then calls, with
lists of Blobs whose `.data` / `.diff` are NumPy views of the engine's tensors:
`setup(bottom, top)` once, `reshape(bottom, top)` before every forward,
`forward(bottom, top)` and `backward(top, propagate_down, bottom)`. The layer has
`param_str`, `phase` (caffe.TRAIN 0 / caffe.TEST 1) and `blobs` (its learnable parameters:
`self.blobs.add_blob(*shape)` in setup adds a zero-filled one that the solver then trains,
snapshots and shares like any layer's). Tests: tests/layers/test_python_layer.py,
tests/caffe/test_net_api.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from caffeonspark.engine import Blob


class LayerBlobs:
    """A Python layer's parameter blobs (pycaffe's BlobVec): index, iterate, add_blob."""

    def __init__(self, native: Any = None) -> None:
        self._native = native

    def __len__(self) -> int:
        return 0 if self._native is None else len(self._native)

    def __getitem__(self, index: int) -> Blob:
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"the layer has {size} parameter blobs, no blob {index}")
        return Blob(self._native.tensor(index % size))

    def __iter__(self) -> Iterator[Blob]:
        return (self[i] for i in range(len(self)))

    def add_blob(self, *shape: int) -> Blob:
        """A new zero-filled parameter blob of `shape` (only in setup)."""
        if self._native is None:
            raise RuntimeError("add_blob: this layer is not part of a net")
        return Blob(self._native.add([int(d) for d in shape]))

    def __repr__(self) -> str:
        return f"LayerBlobs({[b.shape for b in self]})"


class Layer:
    """Override setup, reshape, forward and backward; `param_str` is python_param's string."""

    param_str: str = ""
    phase: int = 1

    def __init__(self, param: Any = None) -> None:
        self.layer_param = param
        self.blobs = LayerBlobs()

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Check the bottoms and read param_str, once, before the first reshape."""

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Reshape the tops from the bottoms' shapes."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.backward is not written")
