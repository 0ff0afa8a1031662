"""Net preparation before the engine builds it: phase/stage filtering (docs/CAFFE.md §2.5),
automatic Split insertion (docs/CAFFE.md §2.4), NetState helpers, and per-layer parameter dicts with
every proto default filled in (what the C++ engine receives instead of protobuf).

Order, as in Caffe's Net::Init: filter_net(net, state) then insert_splits(net); then each
layer becomes an engine spec (engine.native_layer_spec).

Tests: tests/test_netspec.py.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "TYPE_PARAM_FIELDS",
    "DEFAULT_ALWAYS",
    "phase_value",
    "net_state_for",
    "rule_matches",
    "layer_included",
    "filter_net",
    "insert_splits",
    "split_layer_name",
    "split_blob_name",
    "fill_defaults",
    "layer_params",
]

# Caffe type string -> the LayerParameter fields carrying that type's parameters (docs/CAFFE.md §1).
# Loss layers list loss_param first; data layers with a DataTransformer add transform_param.
TYPE_PARAM_FIELDS: dict[str, tuple[str, ...]] = {
    # data / input
    "Data": ("data_param", "transform_param"),
    "ImageData": ("image_data_param", "transform_param"),
    "HDF5Data": ("hdf5_data_param",),
    "HDF5Output": ("hdf5_output_param",),
    "MemoryData": ("memory_data_param", "transform_param"),
    "DummyData": ("dummy_data_param",),
    "Input": ("input_param",),
    "WindowData": ("window_data_param", "transform_param"),
    "Python": ("python_param",),
    "Parameter": ("parameter_param",),
    "CoSData": ("cos_data_param",),
    # vision
    "Convolution": ("convolution_param",),
    "Deconvolution": ("convolution_param",),
    "Im2col": ("convolution_param",),
    "Pooling": ("pooling_param",),
    "SPP": ("spp_param",),
    "Crop": ("crop_param",),
    "LRN": ("lrn_param",),
    # neuron / activation
    "ReLU": ("relu_param",),
    "Sigmoid": ("sigmoid_param",),
    "TanH": ("tanh_param",),
    "AbsVal": (),
    "BNLL": (),
    "ELU": ("elu_param",),
    "PReLU": ("prelu_param",),
    "Power": ("power_param",),
    "Exp": ("exp_param",),
    "Log": ("log_param",),
    "Threshold": ("threshold_param",),
    "Clip": ("clip_param",),
    "Swish": ("swish_param",),
    "Dropout": ("dropout_param",),
    # normalization
    "BatchNorm": ("batch_norm_param",),
    "Scale": ("scale_param",),
    "Bias": ("bias_param",),
    "MVN": ("mvn_param",),
    # loss and metrics
    "SoftmaxWithLoss": ("loss_param", "softmax_param"),
    "SigmoidCrossEntropyLoss": ("loss_param",),
    "EuclideanLoss": ("loss_param",),
    "ContrastiveLoss": ("loss_param", "contrastive_loss_param"),
    "MultinomialLogisticLoss": ("loss_param",),
    "InfogainLoss": ("loss_param", "infogain_loss_param"),
    "HingeLoss": ("loss_param", "hinge_loss_param"),
    "Accuracy": ("accuracy_param",),
    # utility
    "InnerProduct": ("inner_product_param",),
    "Softmax": ("softmax_param",),
    "Concat": ("concat_param",),
    "Slice": ("slice_param",),
    "Split": (),
    "Flatten": ("flatten_param",),
    "Reshape": ("reshape_param",),
    "Eltwise": ("eltwise_param",),
    "Silence": (),
    "ArgMax": ("argmax_param",),
    "Reduction": ("reduction_param",),
    "Tile": ("tile_param",),
    "Filter": (),
    "BatchReindex": (),
    "Embed": ("embed_param",),
    # recurrent
    "RNN": ("recurrent_param",),
    "LSTM": ("recurrent_param",),
    "LSTMUnit": (),
}

# Sub-message fields that layer_params fills with defaults even when the prototxt omits
# them: a missing filler means Caffe's default filler (constant 0 / the layer's own rule).
DEFAULT_ALWAYS: frozenset[str] = frozenset(
    {"weight_filler", "bias_filler", "filler", "transform_param"}
)


# ---------------------------------------------------------------------------------------
# NetState and filtering (docs/CAFFE.md §2.5)
# ---------------------------------------------------------------------------------------


def phase_value(phase: int | str) -> int:
    """caffe_pb2.TRAIN / TEST from an enum value or its name ("TRAIN", "test")."""
    if isinstance(phase, str):
        try:
            return caffe_pb2.Phase.Value(phase.upper())
        except ValueError:
            raise ConfigError(f"unknown phase {phase!r}; expected TRAIN or TEST") from None
    if phase not in (caffe_pb2.TRAIN, caffe_pb2.TEST):
        raise ConfigError(f"unknown phase {phase!r}; expected TRAIN (0) or TEST (1)")
    return int(phase)


def net_state_for(
    source: caffe_pb2.NetParameter | caffe_pb2.SolverParameter,
    phase: int | str,
    stages: Iterable[str] = (),
    level: int | None = None,
    *,
    net: caffe_pb2.NetParameter | None = None,
    test_index: int = 0,
) -> caffe_pb2.NetState:
    """The NetState a net is filtered with.

    From a NetParameter (pycaffe's Net(file, phase, level, stages)): the net's own `state`
    with `phase` replaced, `level` replaced when given and `stages` appended.

    From a SolverParameter (Caffe's solver): NetState(phase) merged with the net's state
    (`net`, or the solver's inline net when `net` is None), then with train_state for TRAIN
    or test_state[test_index] for TEST (proto merge: set scalars win, stages append); then
    `stages` / `level` as above.
    """
    value = phase_value(phase)
    if isinstance(source, caffe_pb2.SolverParameter):
        state = caffe_pb2.NetState(phase=value)
        state.MergeFrom(_solver_net(source, value, test_index, net).state)
        state.MergeFrom(_solver_state(source, value, test_index))
    else:
        state = caffe_pb2.NetState()
        state.CopyFrom(source.state)
        state.phase = value
    state.stage.extend(stages)
    if level is not None:
        state.level = level
    return state


def _solver_net(
    solver: caffe_pb2.SolverParameter,
    phase: int,
    test_index: int,
    net: caffe_pb2.NetParameter | None,
) -> caffe_pb2.NetParameter:
    if net is not None:
        return net
    if phase == caffe_pb2.TRAIN and solver.HasField("train_net_param"):
        return solver.train_net_param
    if phase == caffe_pb2.TEST and test_index < len(solver.test_net_param):
        return solver.test_net_param[test_index]
    return solver.net_param


def _solver_state(
    solver: caffe_pb2.SolverParameter, phase: int, test_index: int
) -> caffe_pb2.NetState:
    if phase == caffe_pb2.TRAIN:
        return solver.train_state
    if test_index < len(solver.test_state):
        return solver.test_state[test_index]
    return caffe_pb2.NetState()


def rule_matches(rule: caffe_pb2.NetStateRule, state: caffe_pb2.NetState) -> bool:
    """True when every condition the rule sets holds for `state`."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState) -> bool:
    """Caffe's include/exclude decision; ConfigError when a layer has both kinds of rule."""
    if layer.include and layer.exclude:
        raise ConfigError(
            f"layer '{layer.name}' has both include and exclude rules; give only one kind"
        )
    if layer.include:
        return any(rule_matches(rule, state) for rule in layer.include)
    return not any(rule_matches(rule, state) for rule in layer.exclude)


def filter_net(net: caffe_pb2.NetParameter, state: caffe_pb2.NetState) -> caffe_pb2.NetParameter:
    """A copy of `net` keeping only the layers included in `state`.

    Each kept layer without a `phase` gets state.phase; the copy's `state` is `state`.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layer")
    out.state.CopyFrom(state)
    for layer in net.layer:
        if layer_included(layer, state):
            kept = out.layer.add()
            kept.CopyFrom(layer)
            if not kept.HasField("phase"):
                kept.phase = state.phase
    return out


# ---------------------------------------------------------------------------------------
# Split insertion (docs/CAFFE.md §2.4)
# ---------------------------------------------------------------------------------------

_TopId = tuple[int, int]  # (layer index, top index); layer -1 = legacy net `input`s
_INPUT = -1
_INPUT_PRODUCER = "input"


def split_layer_name(blob: str, producer: str, top_index: int) -> str:
    """`<blob>_<producer>_<top_index>_split`."""
    return f"{blob}_{producer}_{top_index}_split"


def split_blob_name(blob: str, producer: str, top_index: int, k: int) -> str:
    """`<blob>_<producer>_<top_index>_split_<k>`."""
    return f"{split_layer_name(blob, producer, top_index)}_{k}"


def insert_splits(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of `net` with a Split layer after every top used more than once.

    A top's uses are the later bottoms reading it (through the blob name's latest producer,
    so in-place layers count as producers) plus one if its layer gives it a non-zero
    loss_weight. With more than one use, a Split layer named
    `<blob>_<producer>_<topidx>_split` follows the producer; its tops `..._split_<k>` feed
    the consumers in order. A loss weight moves to split top 0 and consumers start at top
    1; as in Caffe, the producer's loss_weight list is then cleared entirely. Legacy net
    `input` names (not upgraded) count as tops of a producer named "input" whose splits go
    first. Split layers copy the producer's phase when it has one. ConfigError when a
    bottom was never produced.
    """
    sources, uses, weights = _count_uses(net)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layer")
    for j, blob in enumerate(net.input):
        count = uses.get((_INPUT, j), 0)
        if count > 1:
            out.layer.append(_split_layer(_INPUT_PRODUCER, blob, j, count, 0.0))
    next_split: dict[_TopId, int] = {}
    for i, layer in enumerate(net.layer):
        copy = out.layer.add()
        copy.CopyFrom(layer)
        for j, blob in enumerate(layer.bottom):
            source = sources[(i, j)]
            if uses.get(source, 0) > 1:
                k = next_split.get(source, 0)
                next_split[source] = k + 1
                copy.bottom[j] = split_blob_name(blob, _producer_name(net, source), source[1], k)
        for j, blob in enumerate(layer.top):
            count = uses.get((i, j), 0)
            if count > 1:
                weight = weights.get((i, j), 0.0)
                split = _split_layer(layer.name, blob, j, count, weight)
                if layer.HasField("phase"):
                    split.phase = layer.phase
                out.layer.append(split)
                if weight:
                    copy.ClearField("loss_weight")
                    next_split[(i, j)] = next_split.get((i, j), 0) + 1
    return out


def _count_uses(
    net: caffe_pb2.NetParameter,
) -> tuple[dict[_TopId, _TopId], dict[_TopId, int], dict[_TopId, float]]:
    """(bottom id -> the top id it reads, top id -> number of uses, top id -> loss weight)."""
    latest: dict[str, _TopId] = {blob: (_INPUT, j) for j, blob in enumerate(net.input)}
    sources: dict[_TopId, _TopId] = {}
    uses: dict[_TopId, int] = {}
    weights: dict[_TopId, float] = {}
    for i, layer in enumerate(net.layer):
        for j, blob in enumerate(layer.bottom):
            if blob not in latest:
                raise ConfigError(
                    f"layer '{layer.name}' (bottom {j}) reads blob '{blob}', which no "
                    "earlier layer produces"
                )
            source = latest[blob]
            sources[(i, j)] = source
            uses[source] = uses.get(source, 0) + 1
        for j, blob in enumerate(layer.top):
            latest[blob] = (i, j)
        for j, weight in enumerate(layer.loss_weight[: len(layer.top)]):
            source = latest[layer.top[j]]
            weights[source] = weight
            if weight:
                uses[source] = uses.get(source, 0) + 1
    return sources, uses, weights


def _producer_name(net: caffe_pb2.NetParameter, top: _TopId) -> str:
    return _INPUT_PRODUCER if top[0] == _INPUT else net.layer[top[0]].name


def _split_layer(
    producer: str, blob: str, top_index: int, count: int, weight: float
) -> caffe_pb2.LayerParameter:
    split = caffe_pb2.LayerParameter(
        name=split_layer_name(blob, producer, top_index),
        type="Split",
        bottom=[blob],
        top=[split_blob_name(blob, producer, top_index, k) for k in range(count)],
    )
    if weight:
        split.loss_weight.extend([weight] + [0.0] * (count - 1))
    return split


# ---------------------------------------------------------------------------------------
# Parameters with defaults, for the engine
# ---------------------------------------------------------------------------------------


def fill_defaults(message: Message, always: Collection[str] = ()) -> dict[str, Any]:
    """`message` as a plain dict with every field present.

    Scalars: their value or proto default, absent when unset without one (enums always
    have one: the first value);
    enums: the value's NAME; repeated fields: a list
    (possibly empty); sub-messages: a nested dict when set, or when their field name is in
    `always` (at any depth); unset sub-messages not in `always` are omitted.
    """
    result: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if _is_repeated(field):
            result[field.name] = [_plain(field, item, always) for item in value]
        elif field.message_type is not None:
            if message.HasField(field.name) or field.name in always:
                result[field.name] = fill_defaults(value, always)
        elif message.HasField(field.name) or field.has_default_value or field.enum_type:
            result[field.name] = _plain(field, value, always)
        # An unset number/string/bool without a proto default stays absent: its presence is
        # meaningful (ignore_label, use_global_stats, kernel_h ...) and the engine tests it.
        # Enums always have one (their first value).
    return result


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED


def _plain(field: FieldDescriptor, value: Any, always: Collection[str]) -> Any:
    if field.message_type is not None:
        return fill_defaults(value, always)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return value


def layer_params(
    layer: caffe_pb2.LayerParameter, always: Collection[str] = DEFAULT_ALWAYS
) -> dict[str, dict[str, Any]]:
    """{field: fill_defaults(that param message)} for each field TYPE_PARAM_FIELDS lists for
    the layer's type (every listed field is present, filled with defaults when unset).

    A type this table does not know gets no parameters: the engine then rejects it, naming
    the layer, its prototxt line and the types it can build."""
    fields = TYPE_PARAM_FIELDS.get(layer.type, ())
    return {name: fill_defaults(getattr(layer, name), always) for name in fields}
