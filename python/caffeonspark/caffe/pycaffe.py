"""pycaffe's Net on top of engine.Net: the attributes and methods pycaffe scripts use.

engine.Net already holds the engine, the blob views, copy_from, save and to_proto; this
subclass adds what pycaffe has on top: `layers` and `layer_dict` (layer objects with
`.type` and `.blobs`), `top_names` / `bottom_names`, `blob_loss_weights`, forward and
backward with pycaffe's start/end rules, `forward_all` / `forward_backward_all` (inputs cut
into batches of the net's batch size), `_forward` / `_backward` by layer index,
`share_with`, `clear_param_diffs`, `save_hdf5` / `load_hdf5`, `set_input_arrays`
(caffe/memory_arrays.py).

Tests: tests/caffe/test_net_api.py, tests/caffe/test_scripts.py.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np

from caffeonspark import engine, hdf5_io
from caffeonspark.caffe import memory_arrays


class LayerView:
    """One built layer as pycaffe shows it: `type`, `blobs` (its parameter Blobs), `name`."""

    def __init__(self, name: str, type_: str, blobs: list[engine.Blob]) -> None:
        self.name = name
        self.type = type_
        self.blobs = blobs

    def __repr__(self) -> str:
        return f"<Layer {self.name!r} type {self.type!r}, {len(self.blobs)} blobs>"


class Net(engine.Net):
    """caffe.Net(prototxt, phase), caffe.Net(prototxt, weights, phase) or
    caffe.Net(prototxt, phase, weights=..., level=..., stages=[...]), as in pycaffe."""

    def __init__(self, network: Any, *args: Any, stages: Iterable[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(network, *args, stages=stages or (), **kwargs)

    def _build_views(self) -> None:
        super()._build_views()
        native = self._native
        names = list(native.blob_names)
        self._layer_names = list(native.layer_names)
        self._blob_names = names
        self._index = {name: i for i, name in enumerate(self._layer_names)}
        self.layers = [
            LayerView(name, native.layer_type(i), [engine.Blob(t) for t in native.layer_blobs(i)])
            for i, name in enumerate(self._layer_names)
        ]
        # pycaffe maps a layer name to the layer object (engine.Net maps it to an index).
        self.layer_dict = OrderedDict((layer.name, layer) for layer in self.layers)
        self.params = OrderedDict((lay.name, lay.blobs) for lay in self.layers if lay.blobs)
        self.top_names = OrderedDict(
            (name, [names[j] for j in native.top_ids(i)])
            for i, name in enumerate(self._layer_names)
        )
        self.bottom_names = OrderedDict(
            (name, [names[j] for j in native.bottom_ids(i)])
            for i, name in enumerate(self._layer_names)
        )

    @property
    def blob_loss_weights(self) -> OrderedDict[str, float]:
        return OrderedDict(zip(self._blob_names, self._native.blob_loss_weights, strict=True))

    # -- running by index ----------------------------------------------------------------

    def _forward(self, start: int, end: int) -> float:
        """Forward layers start..end (inclusive); returns the loss they produced."""
        return float(self._native.forward_from_to(int(start), int(end)))

    def _backward(self, start: int, end: int) -> None:
        """Backward layers start down to end (inclusive)."""
        self._native.backward_from_to(int(start), int(end))

    def _layer_index(self, name: str | None, default: int) -> int:
        if name is None:
            return default
        if name not in self._index:
            raise KeyError(f"net '{self.name}' has no layer '{name}'")
        return self._index[name]

    # -- pycaffe's forward and backward --------------------------------------------------

    def forward(self, blobs: Iterable[str] | None = None, start: str | None = None,
                end: str | None = None, **inputs: Any) -> dict[str, np.ndarray]:
        """Set `inputs`, run layers start..end; return the net outputs (or end's tops) and
        `blobs`, as copies."""
        extra = list(blobs or [])
        self._set_inputs(inputs)
        self._run_from(self._layer_index(start, 0), self._layer_index(end, len(self.layers) - 1))
        wanted = self.outputs if end is None else self.top_names[end]
        return {name: self.blobs[name].data.copy() for name in dict.fromkeys(wanted + extra)}

    def backward(self, diffs: Iterable[str] | None = None, start: str | None = None,
                 end: str | None = None, **top_diffs: Any) -> dict[str, np.ndarray]:
        """Set the tops' diffs, run layers start down to end; return the diffs of the net
        inputs (or end's bottoms) and `diffs`, as copies."""
        extra = list(diffs or [])
        for name, value in top_diffs.items():
            if name not in self.outputs:
                raise ValueError(f"'{name}' is not an output of net '{self.name}' "
                                 f"(outputs: {self.outputs})")
            self.blobs[name].diff[...] = value
        self._backward(self._layer_index(start, len(self.layers) - 1),
                       self._layer_index(end, 0))
        wanted = self.inputs if end is None else self.bottom_names[end]
        return {name: self.blobs[name].diff.copy() for name in dict.fromkeys(wanted + extra)}

    def forward_all(self, blobs: Iterable[str] | None = None,
                    **inputs: Any) -> dict[str, np.ndarray]:
        """forward() over inputs of any length, a batch at a time (the last one padded with
        zeros); the outputs are concatenated and the padding cut off."""
        extra = list(blobs or [])
        outs: dict[str, list[np.ndarray]] = {}
        for batch in self._batches(inputs):
            for name, value in self.forward(blobs=extra, **batch).items():
                outs.setdefault(name, []).append(value)
        return self._joined(outs, inputs)

    def forward_backward_all(self, blobs: Iterable[str] | None = None,
                             diffs: Iterable[str] | None = None,
                             **arrays: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """forward_all and backward over the same batches: keyword arrays naming net inputs
        feed forward, those naming net outputs are the top diffs of backward."""
        inputs = {k: v for k, v in arrays.items() if k in self.inputs}
        top_diffs = {k: v for k, v in arrays.items() if k in self.outputs}
        unknown = set(arrays) - set(inputs) - set(top_diffs)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are neither inputs nor outputs of the net")
        outs: dict[str, list[np.ndarray]] = {}
        grads: dict[str, list[np.ndarray]] = {}
        for batch in self._batches({**inputs, **top_diffs}):
            fed = {k: v for k, v in batch.items() if k in inputs}
            for name, value in self.forward(blobs=blobs, **fed).items():
                outs.setdefault(name, []).append(value)
            back = {k: v for k, v in batch.items() if k in top_diffs}
            for name, value in self.backward(diffs=diffs, **back).items():
                grads.setdefault(name, []).append(value)
        return self._joined(outs, arrays), self._joined(grads, arrays)

    def _batches(self, arrays: dict[str, Any]) -> Iterable[dict[str, np.ndarray]]:
        if not arrays:
            yield {}
            return
        values = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        lengths = {len(v) for v in values.values()}
        if len(lengths) != 1:
            raise ValueError(f"the arrays have different lengths {sorted(lengths)}")
        total = lengths.pop()
        size = self.blobs[next(iter(values))].shape[0]
        for start in range(0, total, size):
            batch = {}
            for name, value in values.items():
                part = value[start:start + size]
                if len(part) < size:  # the net keeps its batch size: pad with zeros
                    pad = np.zeros((size - len(part),) + part.shape[1:], np.float32)
                    part = np.concatenate([part, pad])
                batch[name] = part
            yield batch

    @staticmethod
    def _joined(parts: dict[str, list[np.ndarray]], arrays: dict[str, Any]) -> dict[str, Any]:
        total = len(next(iter(arrays.values()))) if arrays else None
        joined = {}
        for name, chunks in parts.items():
            if chunks[0].ndim == 0:  # a scalar output (a loss): one value per batch
                joined[name] = np.asarray(chunks)
                continue
            whole = np.concatenate(chunks)
            joined[name] = whole if total is None else whole[:total]
        return joined

    # -- weights ---------------------------------------------------------------------------

    def share_with(self, other: engine.Net) -> None:
        """Use `other`'s parameter blobs for the layers of the same name (Caffe's
        ShareTrainedLayersWith)."""
        self._native.share_trained_layers_with(other.native)
        self._build_views()

    def clear_param_diffs(self) -> None:
        self._native.clear_param_diffs()

    def save_hdf5(self, path: str | os.PathLike[str]) -> None:
        hdf5_io.write_caffemodel_h5(path, self.to_proto())

    def load_hdf5(self, path: str | os.PathLike[str]) -> None:
        """Copy the weights of an HDF5 model, whatever the file's suffix."""
        shapes = {lay.name: [b.shape for b in lay.blobs] for lay in self.layers}
        self.copy_from(hdf5_io.read_caffemodel_h5(path, shapes))

    # -- pycaffe's MemoryData arrays ------------------------------------------------------

    def set_input_arrays(self, data: Any, labels: Any) -> None:
        """Hold `data` (N x C x H x W) and `labels` (N) for the first layer, a MemoryData
        layer: each forward() from the start takes the next batch_size of them, cycling, and
        a new call starts again at the first (pycaffe's MemoryDataLayer::Reset)."""
        self._memory_arrays = memory_arrays.MemoryArrays.for_net(self, data, labels)

    def _run_from(self, start: int, end: int) -> None:
        arrays = getattr(self, "_memory_arrays", None)
        if start == 0 and arrays is not None:
            # The held arrays stand in for the MemoryData layer's queue: write its tops and
            # run the layers after it.
            arrays.fill_next(self)
            if end == 0:
                return
            start = 1
        self._forward(start, end)

