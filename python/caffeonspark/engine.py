"""pycaffe-shaped API over the native engine: Net, Blob, and the mode/seed switches.

A Net is built the way Caffe's Net::Init does it: read (and upgrade) the prototxt, filter
layers by NetState (phase/level/stages), insert Split layers, then hand one spec per layer
to the C++ engine. Blob data and diffs are NumPy views of engine memory (no copies).
Tests: tests/test_engine.py.
"""

from __future__ import annotations

import os
import re
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from caffeonspark import hdf5_io, model_io, netspec
from caffeonspark._native import _engine
from caffeonspark.data import feeders as data_feeders
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.errors import ConfigError, FormatError, IoError, ShapeError
from caffeonspark.proto import caffe_pb2

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST

_NAME_FIELD = re.compile(r'\bname\s*:\s*"([^"]*)"')


def set_mode_cpu() -> None:
    """Run on the CPU (the default)."""


def set_mode_gpu() -> None:
    """Run on the GPU; this build has no CUDA kernels yet."""
    from caffeonspark.errors import CudaError

    raise CudaError("caffeonspark was built without CUDA: GPU mode is unavailable")


def set_device(device_id: int) -> None:
    set_mode_gpu()


def set_random_seed(seed: int) -> None:
    """Seed the engine's RNG (fillers, dropout masks, random crops)."""
    _engine.set_random_seed(int(seed))


def set_num_threads(threads: int) -> None:
    """Threads for BLAS and the engine's parallel loops."""
    _engine.set_num_threads(int(threads))


class Blob:
    """A named tensor: `.data` and `.diff` are writable NumPy views of engine memory."""

    def __init__(self, tensor: Any) -> None:
        self._tensor = tensor

    @property
    def data(self) -> np.ndarray:
        return self._tensor.data

    @data.setter
    def data(self, value: Any) -> None:
        self._tensor.data[...] = value

    @property
    def diff(self) -> np.ndarray:
        return self._tensor.diff

    @diff.setter
    def diff(self, value: Any) -> None:
        self._tensor.diff[...] = value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._tensor.shape)

    @property
    def count(self) -> int:
        return int(self._tensor.count)

    @property
    def num(self) -> int:
        return self.shape[0]

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def height(self) -> int:
        return self.shape[2]

    @property
    def width(self) -> int:
        return self.shape[3]

    def reshape(self, *shape: int) -> None:
        self._tensor.reshape([int(d) for d in shape])

    def __repr__(self) -> str:
        return f"Blob{self.shape}"


def layer_lines(path: str | os.PathLike[str] | None) -> dict[str, int]:
    """First line of each `name: "..."` in a prototxt, to say where a layer is written."""
    if path is None:
        return {}
    lines: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                for match in _NAME_FIELD.finditer(line):
                    lines.setdefault(match.group(1), number)
    except OSError:
        return {}
    return lines


def _param_spec(spec: caffe_pb2.ParamSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "permissive": spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE,
        "lr_mult": spec.lr_mult,
        "decay_mult": spec.decay_mult,
        "has_lr_mult": spec.HasField("lr_mult"),
        "has_decay_mult": spec.HasField("decay_mult"),
    }


# Fields that have a proto default yet whose presence changes Caffe's behaviour; the engine
# receives "<field>_set" (a bool) beside each: deprecated `normalize` applies only without
# `normalization`; legacy concat_dim / slice_dim win over `axis` and both set is an error;
# PReLU's slopes default to constant 0.25, Scale's learned scale to constant 1, only when
# no filler is written.
_PRESENCE_FLAGS: dict[str, tuple[str, ...]] = {
    "loss_param": ("normalization",),
    "concat_param": ("axis", "concat_dim"),
    "slice_param": ("axis", "slice_dim"),
    "prelu_param": ("filler",),
    "scale_param": ("filler",),
}


def _load_infogain_source(
    layer: caffe_pb2.LayerParameter, params: dict[str, Any], where: str
) -> None:
    """InfogainLoss with two bottoms reads H from infogain_loss_param.source (a .binaryproto);
    the engine gets its values as `source_data` {"count", "data": float32 bytes}."""
    if layer.type != "InfogainLoss" or len(layer.bottom) > 2:
        return
    source = layer.infogain_loss_param.source
    if not source:
        return  # the engine names the missing matrix
    try:
        matrix = model_io.read_binaryproto(source)
    except (IoError, FormatError) as err:
        owner = f"layer '{layer.name}' (InfogainLoss)" + (f" at {where}" if where else "")
        raise type(err)(f"{owner}: infogain_loss_param.source: {err}") from None
    params["infogain_loss_param"]["source_data"] = {
        "count": int(matrix.size),
        "data": np.ascontiguousarray(matrix, dtype="<f4").tobytes(),
    }


def native_layer_spec(
    layer: caffe_pb2.LayerParameter, where: str, module_dir: str = ""
) -> dict[str, Any]:
    """The dict the engine's Net constructor takes for one (filtered, split) layer;
    `module_dir` is where a Python layer's module is looked for after sys.path."""
    params = netspec.layer_params(layer)
    for message, fields in _PRESENCE_FLAGS.items():
        if message in params:
            for field in fields:
                params[message][f"{field}_set"] = getattr(layer, message).HasField(field)
    if layer.type == "Python":  # python_layer.create_layer builds it with its LayerParameter
        params["python_param"]["layer_proto"] = layer.SerializeToString()
        params["python_param"]["module_dir"] = module_dir
    params = data_feeders.prepare_data_params(layer, params, where)  # datum_shape, mean_file
    _load_infogain_source(layer, params, where)
    return {
        "name": layer.name,
        "type": layer.type,
        "bottoms": list(layer.bottom),
        "tops": list(layer.top),
        "phase": int(layer.phase),
        "loss_weights": list(layer.loss_weight),
        "propagate_down": list(layer.propagate_down),
        "param_specs": [_param_spec(p) for p in layer.param],
        "params": params,
        "where": where,
    }


def _as_net_parameter(source: Any) -> tuple[caffe_pb2.NetParameter, str | None]:
    if isinstance(source, caffe_pb2.NetParameter):
        return source, None
    path = os.fspath(source)
    return model_io.read_net_prototxt(path), path


class Net:
    """A Caffe net on the native engine.

    Net(prototxt, phase) / Net(prototxt, weights, phase) as in pycaffe, or keywords:
    Net(prototxt, weights=None, phase=TEST, stages=(), level=None, feed=None). `prototxt` may
    also be a NetParameter. Python layers' modules are imported from sys.path, then from the
    prototxt's folder (caffeonspark/python_layer.py). `feed` (data/feed_options.py; None: FeedOptions()) is how the
    queue-fed data layers read: shard, shuffle, resize, decode threads. Blobs, params,
    forward and backward behave like pycaffe's.
    """

    def __init__(
        self,
        network: Any,
        *args: Any,
        weights: str | os.PathLike[str] | None = None,
        phase: int | str | None = None,
        stages: Iterable[str] = (),
        level: int | None = None,
        state: caffe_pb2.NetState | None = None,
        feed: FeedOptions | None = None,
    ) -> None:
        weights, phase = _positional_weights_phase(args, weights, phase)
        net_param, path = _as_net_parameter(network)
        if state is None:
            state = netspec.net_state_for(
                net_param, TEST if phase is None else phase, stages, level
            )
        self._source_path = path
        self._param = netspec.insert_splits(netspec.filter_net(net_param, state))
        lines = layer_lines(path)

        def where_of(name):
            return f"{path}:{lines[name]}" if name in lines else path or ""

        module_dir = os.path.dirname(os.path.abspath(path)) if path else ""
        specs = [
            native_layer_spec(layer, where_of(layer.name), module_dir)
            for layer in self._param.layer
        ]
        self._native = _engine.Net(self._param.name, specs, bool(self._param.force_backward))
        self._start_data_feeders(specs, feed or FeedOptions())
        self._copy_blobs_from_param()
        self._build_views()
        if weights is not None:
            self.copy_from(weights)

    # -- views -------------------------------------------------------------------------

    def _build_views(self) -> None:
        native = self._native
        self.blobs: OrderedDict[str, Blob] = OrderedDict(
            (name, Blob(native.blob(name))) for name in native.blob_names
        )
        self.params: OrderedDict[str, list[Blob]] = OrderedDict()
        self.layer_dict: OrderedDict[str, int] = OrderedDict()
        for index, name in enumerate(native.layer_names):
            self.layer_dict[name] = index
            tensors = native.layer_blobs(index)
            if tensors:
                self.params[name] = [Blob(t) for t in tensors]
        names = native.blob_names
        self.inputs = [names[i] for i in native.input_blob_indices]
        self.outputs = [names[i] for i in native.output_blob_indices]

    @property
    def native(self) -> Any:
        """The engine's Net (for the solver and tools)."""
        return self._native

    @property
    def name(self) -> str:
        return self._param.name

    @property
    def layer_names(self) -> list[str]:
        return list(self._native.layer_names)

    @property
    def layer_types(self) -> list[str]:
        return [self._native.layer_type(i) for i in range(len(self._native.layer_names))]

    @property
    def net_param(self) -> caffe_pb2.NetParameter:
        """The filtered, split-inserted NetParameter this net was built from."""
        return self._param

    # -- data feeding (python/caffeonspark/data/feeders.py) ------------------------------

    def _start_data_feeders(self, specs: list[dict[str, Any]], feed: FeedOptions) -> None:
        """Start the feeder threads of the data layers; stopped by close() or at collection."""
        self._data_feeds = data_feeders.NetFeeds(
            self._native, specs, list(self._param.layer), feed
        )
        self._feeds_finalizer = weakref.finalize(self, self._data_feeds.close)

    @property
    def data_feeds(self) -> data_feeders.NetFeeds:
        """Feeder threads, MemoryData feeders, timeouts and data-wait statistics."""
        return self._data_feeds

    def memory_data_feeder(self, layer_name: str) -> Any:
        """push(data, labels) / close(error=None) into the MemoryData layer `layer_name`."""
        return self._data_feeds.memory_data_feeder(layer_name)

    def close(self) -> None:
        """Stop and join this net's data feeder threads (also done at garbage collection)."""
        self._feeds_finalizer()

    # -- running -----------------------------------------------------------------------

    def forward(
        self,
        blobs: Iterable[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        **inputs: Any,
    ) -> dict[str, np.ndarray]:
        """Set `inputs` (blob name -> array), run forward, return the outputs (copies)."""
        self._set_inputs(inputs)
        first = self.layer_dict[start] if start else 0
        last = self.layer_dict[end] if end else len(self.layer_dict) - 1
        self._native.forward_from_to(first, last)
        wanted = list(self.outputs if end is None else [self._top_names(last)[0]])
        wanted += [b for b in (blobs or []) if b not in wanted]
        return {name: self.blobs[name].data.copy() for name in wanted}

    def backward(
        self,
        diffs: Iterable[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        **top_diffs: Any,
    ) -> dict[str, np.ndarray]:
        """Set `top_diffs`, run backward, return the diffs of the inputs (copies)."""
        for name, value in top_diffs.items():
            self.blobs[name].diff[...] = value
        first = self.layer_dict[start] if start else len(self.layer_dict) - 1
        last = self.layer_dict[end] if end else 0
        self._native.backward_from_to(first, last)
        wanted = list(self.inputs) + [d for d in (diffs or []) if d not in self.inputs]
        return {name: self.blobs[name].diff.copy() for name in wanted}

    def reshape(self) -> None:
        self._native.reshape()

    def _set_inputs(self, inputs: dict[str, Any]) -> None:
        """Every input blob takes its new shape before the net is reshaped once: inputs that
        meet in one layer (data and label at a loss) change batch size together."""
        arrays = {}
        for name, value in inputs.items():
            if name not in self.blobs:
                raise ConfigError(f"net '{self.name}' has no blob '{name}' to set")
            arrays[name] = np.asarray(value, dtype=np.float32)
        resized = [name for name, a in arrays.items() if a.shape != self.blobs[name].shape]
        for name in resized:
            self.blobs[name].reshape(*arrays[name].shape)
        if resized:
            self._native.reshape()
        for name, array in arrays.items():
            self.blobs[name].data[...] = array

    def _top_names(self, layer_index: int) -> list[str]:
        names = self._native.blob_names
        return [names[i] for i in self._native.top_ids(layer_index)]

    # -- weights -----------------------------------------------------------------------

    def _copy_blobs_from_param(self) -> None:
        """Blobs written inside the prototxt itself (rare) replace the filled values."""
        for index, layer in enumerate(self._param.layer):
            if layer.blobs:
                self._assign_layer_blobs(index, layer, self._source_path or "<net>")

    def copy_from(self, weights: str | os.PathLike[str] | caffe_pb2.NetParameter) -> None:
        """Caffe's CopyTrainedLayersFrom: match layers by name, check blob counts/shapes."""
        if isinstance(weights, caffe_pb2.NetParameter):
            source, origin = weights, "<NetParameter>"
        else:
            origin = os.fspath(weights)
            if hdf5_io.is_hdf5_path(origin):
                # The net's shapes go in so that no dataset is read before its shape matches.
                shapes = {
                    name: [tuple(blob.shape) for blob in self._native.layer_blobs(i)]
                    for i, name in enumerate(self._native.layer_names)
                }
                source = hdf5_io.read_caffemodel_h5(origin, shapes)
            else:
                source = model_io.read_caffemodel(origin)
        index_of = {name: i for i, name in enumerate(self._native.layer_names)}
        for layer in source.layer:
            if layer.name in index_of:
                self._assign_layer_blobs(index_of[layer.name], layer, origin)

    def _assign_layer_blobs(self, index: int, layer: caffe_pb2.LayerParameter, origin: str) -> None:
        targets = self._native.layer_blobs(index)
        if len(targets) != len(layer.blobs):
            raise ShapeError(
                f"{origin}: layer '{layer.name}' has {len(layer.blobs)} parameter blobs but the "
                f"net's layer has {len(targets)} (rename the layer to train it from scratch)"
            )
        for i, (target, proto) in enumerate(zip(targets, layer.blobs, strict=False)):
            array = model_io.blob_to_array(proto)
            if not _shapes_compatible(tuple(target.shape), array.shape, _is_legacy(proto)):
                raise ShapeError(
                    f"{origin}: cannot copy parameter {i} of layer '{layer.name}': the model has "
                    f"shape {array.shape} but the net wants {tuple(target.shape)} (rename the "
                    "layer to train it from scratch)"
                )
            target.data[...] = array.reshape(tuple(target.shape))

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """Caffe's Net::ToProto: each built layer's parameters with its current weights."""
        out = caffe_pb2.NetParameter()
        out.name = self._param.name
        for index, layer in enumerate(self._param.layer):
            written = out.layer.add()
            written.CopyFrom(layer)
            written.ClearField("blobs")
            _fill_loss_weights(written, self._native, index)
            for tensor in self._native.layer_blobs(index):
                written.blobs.append(model_io.array_to_blob(tensor.data))
                if write_diff:
                    written.blobs[-1].diff.extend(tensor.diff.ravel().tolist())
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the weights as a binary .caffemodel (temporary name, then rename)."""
        model_io.write_caffemodel(path, self.to_proto())


def _fill_loss_weights(layer: caffe_pb2.LayerParameter, native: Any, index: int) -> None:
    if layer.loss_weight:
        return
    weights = [native.layer_loss(index, t) for t in range(len(native.top_ids(index)))]
    if any(weights):
        layer.loss_weight.extend(weights)


def _is_legacy(blob: caffe_pb2.BlobProto) -> bool:
    return any(blob.HasField(f) for f in ("num", "channels", "height", "width"))


def _shapes_compatible(want: tuple[int, ...], have: tuple[int, ...], legacy: bool) -> bool:
    if want == have:
        return True
    if not legacy:
        return False
    # Legacy 4-D blobs match when right-aligned with leading ones (old IP weights 1x1xNxK).
    width = max(len(want), len(have), 4)

    def pad(s):
        return (1,) * (width - len(s)) + tuple(s)

    return pad(want) == pad(have)


def _positional_weights_phase(args: tuple[Any, ...], weights: Any, phase: Any) -> tuple[Any, Any]:
    """pycaffe accepts Net(file, phase) and Net(file, weights, phase)."""
    if len(args) == 1:
        if isinstance(args[0], (int, np.integer)) or (
            isinstance(args[0], str) and args[0].upper() in ("TRAIN", "TEST")
        ):
            phase = args[0]
        else:
            weights = args[0]
    elif len(args) == 2:
        weights, phase = args
    elif args:
        raise TypeError("Net(prototxt, [weights], [phase]) takes at most two positional arguments")
    return weights, phase


def blobs_as_arrays(blobs: Mapping[str, Blob]) -> dict[str, np.ndarray]:
    """Copies of every blob's data, by name (handy for comparisons and checkpoints)."""
    return {name: blob.data.copy() for name, blob in blobs.items()}
