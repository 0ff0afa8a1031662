"""Python side of the engine's native batch queues (cpp/data/batch_queue.h).

A queue-fed data layer (MemoryData, Data) owns two native queues: feeders push raw uint8
or float batches into its *feed* queue; its prefetch thread transforms them into its
*ready* queue, which Forward pops (with the pop timeout and the wait statistics). Pushes
copy the arrays and block with the GIL released, so feeding never stalls the solver.

- `layer_owner` builds the "layer 'x' (Type) at file:line: " prefix the engine's errors use.
- `close_with_error` ends a queue with a Python exception, which the consumer re-raises in
  the solver's / forward's thread as the caffeonspark error of the same class (any other
  exception becomes IoError naming its class).
- `MemoryDataFeeder` is what `engine.Net.memory_data_feeder(name)` returns: push() takes
  arrays, push_encoded() image files' bytes, decoded (transform_param force_color /
  force_gray) and, with resize, resized to the layer's height x width (CaffeOnSpark's
  `-resize`: images of any size are brought to the net's input size).

Tests: tests/data/test_batch_queue.py, tests/layers/test_memory_data.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from caffeonspark import errors
from caffeonspark.data.image_codec import decode_image, decode_mode, resize_image
from caffeonspark.errors import ConfigError, ShapeError
from caffeonspark.proto import caffe_pb2

__all__ = ["layer_owner", "close_with_error", "MemoryDataFeeder"]

_TAXONOMY = {
    name
    for name in dir(errors)
    if isinstance(getattr(errors, name), type)
    and issubclass(getattr(errors, name), errors.CaffeOnSparkError)
    and name != "CaffeOnSparkError"
}


def layer_owner(name: str, type_name: str, where: str = "") -> str:
    """The prefix the engine puts on a layer's errors: "layer 'x' (Type) at f:3: "."""
    return f"layer '{name}' ({type_name})" + (f" at {where}" if where else "") + ": "


def close_with_error(queue: Any, error: BaseException | str | None, owner: str = "") -> None:
    """Close a native queue; consumers raise `error` once the queued batches are used up."""
    if error is None:
        queue.close()
        return
    if isinstance(error, str):
        queue.close("IoError", owner + error)
        return
    kind = type(error).__name__
    if kind in _TAXONOMY:
        queue.close(kind, str(error))
    else:
        queue.close("IoError", f"{owner}its data feeder failed: {kind}: {error}")


def push_until_closed(queue: Any, batches: Iterable[tuple[Any, Any]], owner: str = "") -> None:
    """A feeder thread's loop: push (data, labels) batches until the queue closes; a failure
    closes it with the error, which surfaces in Forward on the solver's thread."""
    try:
        for data, labels in batches:
            if not queue.push(data, labels):
                return
    except BaseException as err:
        close_with_error(queue, err, owner)


def _transform_is_identity(param: caffe_pb2.TransformationParameter) -> bool:
    return (
        param.scale == 1
        and not param.mirror
        and param.crop_size == 0
        and not param.mean_file
        and not param.mean_value
    )


class MemoryDataFeeder:
    """Pushes batches into one MemoryData layer of a net.

    push(data, labels): data (N, C, h, w) uint8 images (the layer's transform_param is
    applied natively; with crop_size, h and w may exceed the layer's height/width) or float
    arrays (N, C, height, width) taken as they are; N a multiple of batch_size (each
    batch_size slice becomes one Forward). Blocks with the GIL released while the queue is
    full; returns False when the layer's queue is closed.
    close(error=None): ends the stream; with an error, Forward raises it after the queued
    batches (a Python feeder's exception surfaces in the solver instead of a hang).
    `timeout`: seconds Forward waits for a batch before raising IoError.
    """

    def __init__(
        self,
        layer: caffe_pb2.LayerParameter,
        queues: tuple[Any, Any],
        owner: str,
        resize: bool = False,
    ):
        self._feed, self._ready = queues
        self._owner = owner
        p = layer.memory_data_param
        self.batch_size = int(p.batch_size)
        self.item_shape = (int(p.channels), int(p.height), int(p.width))
        self._crop = int(layer.transform_param.crop_size)
        self._identity = _transform_is_identity(layer.transform_param)
        self.mode = decode_mode(
            layer.transform_param.force_color, layer.transform_param.force_gray, owner
        )
        self.resize = bool(resize)

    def prepare_image(self, image: Any, where: str = "", resize: bool | None = None) -> np.ndarray:
        """One item as the layer takes it: encoded bytes decoded in the layer's mode, then,
        with resize (default: the feeder's `resize`), brought to the layer's height x width."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            image = decode_image(image, self.mode, where)
        image = np.asarray(image)
        if self.resize if resize is None else resize:
            image = resize_image(image, self.item_shape[1], self.item_shape[2])
        return image

    def push_encoded(
        self,
        images: Sequence[Any],
        labels: Any,
        timeout: float | None = None,
        resize: bool | None = None,
    ) -> bool:
        """push() for encoded image files (bytes) or (C, H, W) arrays of any size: each is
        decoded and, with resize, resized to the layer's height x width."""
        items = [
            self.prepare_image(image, f"{self._owner}item {i}: ", resize)
            for i, image in enumerate(images)
        ]
        shapes = {item.shape for item in items}
        if len(shapes) > 1:
            raise ShapeError(
                f"{self._owner}push_encoded got images of different shapes {sorted(shapes)}; "
                "resize them (resize=True) to the layer's height x width"
            )
        return self.push(
            np.stack(items) if items else np.empty((0, *self.item_shape)), labels, timeout
        )

    def push(self, data: Any, labels: Any, timeout: float | None = None) -> bool:
        data = np.asarray(data)
        labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        self._check(data, labels)
        if data.dtype != np.uint8:
            data = np.ascontiguousarray(data, dtype=np.float32)
        size = self.batch_size
        for start in range(0, data.shape[0], size):
            end = start + size
            if not self._feed.push(data[start:end], labels[start:end], timeout):
                return False
        return True

    def push_transformed(self, data: np.ndarray, labels: Any, timeout: float | None = None) -> bool:
        """push() for float items the layer's transform_param was already applied to (by a
        source feeder running the native DataTransformer): only the shape is checked."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim != 4 or data.shape[1:] != self.item_shape:
            raise ShapeError(
                f"{self._owner}transformed items have shape {data.shape[1:]}; "
                f"memory_data_param says {self.item_shape}"
            )
        labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        for start in range(0, data.shape[0], self.batch_size):
            end = start + self.batch_size
            if not self._feed.push(data[start:end], labels[start:end], timeout):
                return False
        return True

    @property
    def identity_transform(self) -> bool:
        return self._identity

    def close(self, error: BaseException | str | None = None) -> None:
        close_with_error(self._feed, error, self._owner)

    @property
    def timeout(self) -> float:
        return float(self._ready.timeout)

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._ready.timeout = float(seconds)

    @property
    def capacity(self) -> int:
        return int(self._feed.capacity)

    @capacity.setter
    def capacity(self, batches: int) -> None:
        self._feed.capacity = int(batches)
        self._ready.capacity = int(batches)

    @property
    def wait_seconds(self) -> float:
        """Seconds Forward has spent waiting for data."""
        return float(self._ready.wait_seconds)

    @property
    def batches_used(self) -> int:
        return int(self._ready.pops)

    @property
    def closed(self) -> bool:
        return bool(self._feed.closed)

    def _check(self, data: np.ndarray, labels: np.ndarray) -> None:
        channels, height, width = self.item_shape
        if data.ndim != 4:
            raise ShapeError(
                f"{self._owner}push wants data of shape (N, C, H, W), got {data.shape}"
            )
        num = data.shape[0]
        if num == 0 or num % self.batch_size:
            raise ShapeError(
                f"{self._owner}push got {num} items; it needs a positive multiple of "
                f"batch_size {self.batch_size}"
            )
        if labels.size != num:
            raise ShapeError(f"{self._owner}push got {num} items but {labels.size} labels")
        if data.shape[1] != channels:
            raise ShapeError(
                f"{self._owner}push got {data.shape[1]} channels; memory_data_param says {channels}"
            )
        if data.dtype == np.uint8:
            if self._crop:
                ok = data.shape[2] >= self._crop and data.shape[3] >= self._crop
                want = f"at least {self._crop} x {self._crop} (crop_size)"
            else:
                ok = data.shape[2:] == (height, width)
                want = f"{height} x {width}"
            if not ok:
                raise ShapeError(
                    f"{self._owner}push got images of {data.shape[2]} x {data.shape[3]}; "
                    f"the layer wants {want}"
                )
            return
        if not self._identity:
            raise ConfigError(
                f"{self._owner}float arrays are taken as already preprocessed, but this layer "
                "has a transform_param (scale/crop/mirror/mean): push uint8 images to have it "
                "applied, or remove transform_param to push preprocessed floats"
            )
        if data.shape[1:] != self.item_shape:
            raise ShapeError(
                f"{self._owner}push got items of shape {data.shape[1:]}; memory_data_param "
                f"says {self.item_shape}"
            )
