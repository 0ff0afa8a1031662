"""Upgrades of legacy Caffe nets and solvers to the current schema (docs/CAFFE.md §8, §4.5).

Applied by caffeonspark.model_io to every net it reads, text or binary, in Caffe's order:

1. V0 nets (a `layer` nested in a `layers` entry) are rejected with a clear error: upgrade
   them with Caffe's upgrade_net_proto_text first.
2. V1 data transforms: scale / mean_file / crop_size / mirror inside data_param,
   image_data_param or window_data_param move into the layer's transform_param.
3. V1 layers (`layers`, field 2) become `layer` (field 100): the type enum becomes the type
   string, blobs_lr / weight_decay / param names / blob_share_mode become ParamSpecs, and
   everything else is copied.
4. Net inputs (`input` with `input_shape` or 4 `input_dim` each) become an Input layer named
   "input" at the front; bare input names without dimensions are dropped.
5. BatchNorm layers with exactly 3 `param` entries get lr_mult and decay_mult 0.

Solvers: the deprecated `solver_type` enum becomes the `type` string, and nets written
inline in the solver are upgraded too. `fill_snapshot_prefix` applies the snapshot_prefix
default that Caffe derives from the solver file's path.

Tests: tests/test_upgrade.py.
"""

from __future__ import annotations

import logging
import os

from caffeonspark.errors import ConfigError, FormatError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "V1_TYPE_NAMES",
    "SOLVER_TYPE_NAMES",
    "net_needs_upgrade",
    "upgrade_net",
    "upgrade_solver",
    "fill_snapshot_prefix",
]

_log = logging.getLogger(__name__)

_V1 = caffe_pb2.V1LayerParameter

# V1LayerParameter.LayerType value -> the type string of the current format.
V1_TYPE_NAMES: dict[int, str] = {
    _V1.NONE: "",
    _V1.ABSVAL: "AbsVal",
    _V1.ACCURACY: "Accuracy",
    _V1.ARGMAX: "ArgMax",
    _V1.BNLL: "BNLL",
    _V1.CONCAT: "Concat",
    _V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    _V1.CONVOLUTION: "Convolution",
    _V1.DECONVOLUTION: "Deconvolution",
    _V1.DATA: "Data",
    _V1.DROPOUT: "Dropout",
    _V1.DUMMY_DATA: "DummyData",
    _V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    _V1.ELTWISE: "Eltwise",
    _V1.EXP: "Exp",
    _V1.FLATTEN: "Flatten",
    _V1.HDF5_DATA: "HDF5Data",
    _V1.HDF5_OUTPUT: "HDF5Output",
    _V1.HINGE_LOSS: "HingeLoss",
    _V1.IM2COL: "Im2col",
    _V1.IMAGE_DATA: "ImageData",
    _V1.INFOGAIN_LOSS: "InfogainLoss",
    _V1.INNER_PRODUCT: "InnerProduct",
    _V1.LRN: "LRN",
    _V1.MEMORY_DATA: "MemoryData",
    _V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    _V1.MVN: "MVN",
    _V1.POOLING: "Pooling",
    _V1.POWER: "Power",
    _V1.RELU: "ReLU",
    _V1.SIGMOID: "Sigmoid",
    _V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    _V1.SILENCE: "Silence",
    _V1.SOFTMAX: "Softmax",
    _V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    _V1.SPLIT: "Split",
    _V1.SLICE: "Slice",
    _V1.TANH: "TanH",
    _V1.WINDOW_DATA: "WindowData",
    _V1.THRESHOLD: "Threshold",
}

_SP = caffe_pb2.SolverParameter

# SolverParameter.SolverType value -> the `type` string.
SOLVER_TYPE_NAMES: dict[int, str] = {
    _SP.SGD: "SGD",
    _SP.NESTEROV: "Nesterov",
    _SP.ADAGRAD: "AdaGrad",
    _SP.RMSPROP: "RMSProp",
    _SP.ADADELTA: "AdaDelta",
    _SP.ADAM: "Adam",
}

# V1 layer types whose per-type parameter message carries legacy transform fields.
_V1_TRANSFORM_HOLDERS = {
    _V1.DATA: "data_param",
    _V1.IMAGE_DATA: "image_data_param",
    _V1.WINDOW_DATA: "window_data_param",
}
_LEGACY_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")

# Fields of V1LayerParameter that are copied as-is onto the LayerParameter field of the same
# name (every per-type parameter message, plus transform_param and loss_param).
_V1_COPIED_MESSAGES = tuple(
    f.name
    for f in _V1.DESCRIPTOR.fields
    if f.message_type is not None and f.name.endswith("_param")
)


# ---------------------------------------------------------------------------------------
# Nets
# ---------------------------------------------------------------------------------------


def net_needs_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """True if `net` uses any legacy construct that upgrade_net rewrites."""
    return (
        len(net.layers) > 0
        or len(net.input) > 0
        or len(net.input_shape) > 0
        or len(net.input_dim) > 0
        or any(_batch_norm_needs_upgrade(layer) for layer in net.layer)
    )


def upgrade_net(net: caffe_pb2.NetParameter, source: str = "<net>") -> caffe_pb2.NetParameter:
    """Upgrade `net` in place to the current format and return it.

    `source` (a file name) prefixes error messages. Raises FormatError for V0 nets and
    ConfigError for nets that mix `layer` and `layers` or give inconsistent input shapes.
    """
    if net.layers:
        _reject_v0(net, source)
        _upgrade_v1_data_transforms(net)
        _upgrade_v1_layers(net, source)
    if net.input or net.input_shape or net.input_dim:
        _upgrade_net_inputs(net, source)
    for layer in net.layer:
        if _batch_norm_needs_upgrade(layer):
            _upgrade_batch_norm(layer)
    return net


def _reject_v0(net: caffe_pb2.NetParameter, source: str) -> None:
    for index, v1 in enumerate(net.layers):
        if v1.HasField("layer"):
            raise FormatError(
                f"{source}: layers[{index}] holds a V0 `layer` entry; the V0 net format "
                "(2014 and earlier) is not supported, convert the net with Caffe's "
                "upgrade_net_proto_text first"
            )


def _upgrade_v1_data_transforms(net: caffe_pb2.NetParameter) -> None:
    for v1 in net.layers:
        holder = _V1_TRANSFORM_HOLDERS.get(v1.type)
        if holder is None or not v1.HasField(holder):
            continue
        params = getattr(v1, holder)
        for field in _LEGACY_TRANSFORM_FIELDS:
            if params.HasField(field):
                setattr(v1.transform_param, field, getattr(params, field))
                params.ClearField(field)


def _upgrade_v1_layers(net: caffe_pb2.NetParameter, source: str) -> None:
    if net.layer:
        raise ConfigError(
            f"{source}: the net has both `layer` and legacy V1 `layers` entries; use one format"
        )
    _log.info("%s: upgrading %d V1 layers to the current format", source, len(net.layers))
    for v1 in net.layers:
        _v1_to_layer(v1, net.layer.add())
    net.ClearField("layers")


def _v1_to_layer(v1: caffe_pb2.V1LayerParameter, layer: caffe_pb2.LayerParameter) -> None:
    if v1.HasField("name"):
        layer.name = v1.name
    if v1.HasField("type"):
        layer.type = V1_TYPE_NAMES[v1.type]
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    layer.blobs.extend(v1.blobs)
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    layer.loss_weight.extend(v1.loss_weight)
    _v1_param_specs(v1, layer)
    for name in _V1_COPIED_MESSAGES:
        if v1.HasField(name):
            getattr(layer, name).CopyFrom(getattr(v1, name))


def _v1_param_specs(v1: caffe_pb2.V1LayerParameter, layer: caffe_pb2.LayerParameter) -> None:
    count = max(len(v1.blobs_lr), len(v1.weight_decay), len(v1.param), len(v1.blob_share_mode))
    specs = [layer.param.add() for _ in range(count)]
    for spec, name in zip(specs, v1.param, strict=False):
        spec.name = name
    for spec, mode in zip(specs, v1.blob_share_mode, strict=False):
        spec.share_mode = mode  # V1 and ParamSpec DimCheckMode share their numbers
    for spec, lr in zip(specs, v1.blobs_lr, strict=False):
        spec.lr_mult = lr
    for spec, decay in zip(specs, v1.weight_decay, strict=False):
        spec.decay_mult = decay


def _upgrade_net_inputs(net: caffe_pb2.NetParameter, source: str) -> None:
    names = list(net.input)
    shapes = _input_shapes(net, names, source)
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")
    if shapes is None:
        _log.info("%s: dropping legacy net inputs %s that have no dimensions", source, names)
        return
    layer = caffe_pb2.LayerParameter(name="input", type="Input", top=names)
    for dims in shapes:
        layer.input_param.shape.add().dim.extend(dims)
    existing = list(net.layer)
    net.ClearField("layer")
    net.layer.append(layer)
    net.layer.extend(existing)


def _input_shapes(
    net: caffe_pb2.NetParameter, names: list[str], source: str
) -> list[list[int]] | None:
    """The dims of each legacy input, or None when the net gives names only."""
    if net.input_shape:
        if len(net.input_shape) != len(names):
            raise ConfigError(
                f"{source}: {len(names)} net inputs but {len(net.input_shape)} input_shape "
                "entries; give one input_shape per input"
            )
        return [list(shape.dim) for shape in net.input_shape]
    if net.input_dim:
        dims = list(net.input_dim)
        if len(dims) != 4 * len(names):
            raise ConfigError(
                f"{source}: {len(names)} net inputs need {4 * len(names)} input_dim values "
                f"(4 each), found {len(dims)}"
            )
        return [dims[4 * i : 4 * i + 4] for i in range(len(names))]
    return None


def _batch_norm_needs_upgrade(layer: caffe_pb2.LayerParameter) -> bool:
    if layer.type != "BatchNorm" or len(layer.param) != 3:
        return False
    return any(spec.lr_mult != 0 or spec.decay_mult != 0 for spec in layer.param)


def _upgrade_batch_norm(layer: caffe_pb2.LayerParameter) -> None:
    _log.info("BatchNorm layer '%s': setting lr_mult and decay_mult of its params to 0", layer.name)
    for spec in layer.param:
        spec.lr_mult = 0
        spec.decay_mult = 0


# ---------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------


def upgrade_solver(
    solver: caffe_pb2.SolverParameter, source: str = "<solver>"
) -> caffe_pb2.SolverParameter:
    """Upgrade `solver` in place (solver_type -> type, inline nets) and return it.

    Raises ConfigError when both `solver_type` and `type` are given.
    """
    if solver.HasField("solver_type"):
        if solver.HasField("type"):
            raise ConfigError(
                f"{source}: both the deprecated `solver_type` and `type` are given; "
                "keep only `type`"
            )
        solver.type = SOLVER_TYPE_NAMES[solver.solver_type]
        solver.ClearField("solver_type")
    if solver.HasField("net_param"):
        upgrade_net(solver.net_param, f"{source} (net_param)")
    if solver.HasField("train_net_param"):
        upgrade_net(solver.train_net_param, f"{source} (train_net_param)")
    for index, net in enumerate(solver.test_net_param):
        upgrade_net(net, f"{source} (test_net_param[{index}])")
    return solver


def fill_snapshot_prefix(
    solver: caffe_pb2.SolverParameter, solver_path: str | os.PathLike[str]
) -> caffe_pb2.SolverParameter:
    """Apply Caffe's snapshot_prefix default for a solver read from `solver_path`.

    Absent prefix: the solver path without its extension. A prefix naming an existing
    directory (relative to the working directory, as in Caffe): that directory joined with
    the solver file's stem. Any other prefix is kept. Returns `solver`, changed in place.
    """
    path = os.fspath(solver_path)
    stem = os.path.splitext(os.path.basename(path))[0]
    if not solver.HasField("snapshot_prefix"):
        solver.snapshot_prefix = os.path.splitext(path)[0]
    elif os.path.isdir(solver.snapshot_prefix):
        solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, stem)
    return solver
