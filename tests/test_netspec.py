"""Tests of python/caffeonspark/netspec.py: phase/level/stage filtering (docs/CAFFE.md §2.5),
Split insertion (docs/CAFFE.md §2.4) on the anchors and on small nets, NetState helpers, fill_defaults
and the type -> parameter-field table.
"""

from __future__ import annotations

import pytest

from caffeonspark import model_io, netspec
from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST

# Every type string of docs/CAFFE.md §1 (61) plus CaffeOnSpark's CoSData.
CATALOG = """
Data ImageData HDF5Data HDF5Output MemoryData DummyData Input WindowData Python Parameter
Convolution Deconvolution Pooling SPP Im2col Crop LRN
ReLU Sigmoid TanH AbsVal BNLL ELU PReLU Power Exp Log Threshold Clip Swish Dropout
BatchNorm Scale Bias MVN
SoftmaxWithLoss SigmoidCrossEntropyLoss EuclideanLoss ContrastiveLoss MultinomialLogisticLoss
InfogainLoss HingeLoss Accuracy
InnerProduct Softmax Concat Slice Split Flatten Reshape Eltwise Silence ArgMax Reduction Tile
Filter BatchReindex Embed
RNN LSTM LSTMUnit
""".split()


def _net(text: str) -> caffe_pb2.NetParameter:
    return model_io.parse_net_text(text, "<test>")


def _layers(net: caffe_pb2.NetParameter) -> list[tuple[str, str, list[str], list[str]]]:
    return [(lay.name, lay.type, list(lay.bottom), list(lay.top)) for lay in net.layer]


# ---------------------------------------------------------------------------------------
# Filtering
# ---------------------------------------------------------------------------------------


def test_filter_lenet_by_phase(anchors):
    net = model_io.read_net_prototxt(anchors / "caffe" / "mnist_lenet_train_test.prototxt")
    train = netspec.filter_net(net, caffe_pb2.NetState(phase=TRAIN))
    test = netspec.filter_net(net, caffe_pb2.NetState(phase=TEST))
    assert len(net.layer) == 11
    assert [lay.name for lay in train.layer if lay.type == "Accuracy"] == []
    assert "accuracy" in [lay.name for lay in test.layer]
    assert train.layer[0].data_param.source.endswith("mnist_train_lmdb")
    assert test.layer[0].data_param.source.endswith("mnist_test_lmdb")
    assert all(lay.phase == TRAIN for lay in train.layer)
    assert all(lay.phase == TEST for lay in test.layer)
    assert train.state.phase == TRAIN
    assert len(net.layer) == 11  # the input is not modified


def test_filter_autoencoder_by_stage(anchors):
    net = model_io.read_net_prototxt(anchors / "caffe" / "mnist_autoencoder.prototxt")
    solver = model_io.read_solver_prototxt(anchors / "caffe" / "mnist_autoencoder_solver.prototxt")
    sources = {}
    for index, stage in enumerate(["test-on-train", "test-on-test"]):
        state = netspec.net_state_for(solver, TEST, net=net, test_index=index)
        assert (state.phase, list(state.stage)) == (TEST, [stage])
        filtered = netspec.filter_net(net, state)
        data = [lay for lay in filtered.layer if lay.type == "Data"]
        assert len(data) == 1
        sources[stage] = data[0].data_param.source
        assert len(filtered.layer) == len(net.layer) - 2
    assert sources == {
        "test-on-train": "examples/mnist/mnist_train_lmdb",
        "test-on-test": "examples/mnist/mnist_test_lmdb",
    }
    train = netspec.filter_net(net, netspec.net_state_for(solver, TRAIN, net=net))
    assert [lay.data_param.source for lay in train.layer if lay.type == "Data"] == [
        "examples/mnist/mnist_train_lmdb"
    ]
    # TEST without a stage keeps no data layer: split insertion then names the orphan.
    bare = netspec.filter_net(net, caffe_pb2.NetState(phase=TEST))
    assert not [lay for lay in bare.layer if lay.type == "Data"]
    with pytest.raises(ConfigError, match="layer 'flatdata' .* blob 'data'"):
        netspec.insert_splits(bare)


def test_filter_lrcn_stages(anchors):
    net = model_io.read_net_prototxt(anchors / "caffeonspark" / "lrcn_cos.prototxt")
    solver = model_io.read_solver_prototxt(anchors / "caffeonspark" / "lrcn_solver.prototxt")
    train_state = netspec.net_state_for(solver, TRAIN, net=net)
    assert set(train_state.stage) == {"freeze-convnet", "factored", "2-layer"}
    train = netspec.filter_net(net, train_state)
    test = netspec.filter_net(net, netspec.net_state_for(solver, TEST, net=net))
    assert len(train.layer) < len(net.layer)
    netspec.insert_splits(train)  # every bottom is produced
    netspec.insert_splits(test)


def test_include_and_exclude_together():
    net = _net(
        'layer { name: "odd" type: "ReLU" include { phase: TRAIN } exclude { phase: TEST } }'
    )
    with pytest.raises(ConfigError, match="layer 'odd' has both include and exclude"):
        netspec.filter_net(net, caffe_pb2.NetState(phase=TRAIN))


def test_explicit_layer_phase_is_kept():
    net = _net('layer { name: "d" type: "Dropout" phase: TRAIN }')
    out = netspec.filter_net(net, caffe_pb2.NetState(phase=TEST))
    assert out.layer[0].phase == TRAIN


@pytest.mark.parametrize(
    ("rule", "state", "expected"),
    [
        ("phase: TRAIN", "phase: TRAIN", True),
        ("phase: TRAIN", "phase: TEST", False),
        ("min_level: 2", "level: 2", True),
        ("min_level: 2", "level: 1", False),
        ("max_level: 2", "level: 3", False),
        ("max_level: 2", "level: -4", True),
        ('stage: "a" stage: "b"', 'stage: "a" stage: "b" stage: "c"', True),
        ('stage: "a" stage: "b"', 'stage: "a"', False),
        ('not_stage: "a"', 'stage: "b"', True),
        ('not_stage: "a"', 'stage: "a"', False),
        ("", "phase: TEST", True),
    ],
)
def test_rule_matches(rule, state, expected):
    from google.protobuf import text_format

    parsed_rule = text_format.Parse(rule, caffe_pb2.NetStateRule())
    parsed_state = text_format.Parse(state, caffe_pb2.NetState())
    assert netspec.rule_matches(parsed_rule, parsed_state) is expected


def test_any_include_rule_or_any_exclude_rule():
    state = caffe_pb2.NetState(phase=TEST, stage=["s"])
    include = _net('layer { include { phase: TRAIN } include { stage: "s" } }').layer[0]
    exclude = _net('layer { exclude { phase: TRAIN } exclude { stage: "s" } }').layer[0]
    assert netspec.layer_included(include, state)
    assert not netspec.layer_included(exclude, state)


def test_net_state_for_net():
    net = _net('state { phase: TEST level: 2 stage: "" } layer { name: "a" type: "ReLU" }')
    state = netspec.net_state_for(net, "train", stages=["x"], level=5)
    assert (state.phase, state.level, list(state.stage)) == (TRAIN, 5, ["", "x"])
    kept = netspec.net_state_for(net, TEST)
    assert (kept.phase, kept.level) == (TEST, 2)


def test_net_state_for_solver_merges_like_caffe():
    solver = model_io.parse_solver_text(
        'train_state { level: 3 stage: "t" } test_state { stage: "v" }'
    )
    net = _net('state { phase: TEST stage: "n" } layer { name: "a" type: "ReLU" }')
    train = netspec.net_state_for(solver, TRAIN, net=net)
    # The net's explicit phase overrides the solver's TRAIN, as in Caffe's MergeFrom.
    assert (train.phase, train.level, list(train.stage)) == (TEST, 3, ["n", "t"])
    test = netspec.net_state_for(solver, TEST, test_index=0)
    assert (test.phase, list(test.stage)) == (TEST, ["v"])
    assert list(netspec.net_state_for(solver, TEST, test_index=4).stage) == []


def test_phase_value():
    assert netspec.phase_value("TRAIN") == TRAIN
    assert netspec.phase_value("test") == TEST
    assert netspec.phase_value(TEST) == TEST
    with pytest.raises(ConfigError):
        netspec.phase_value("VALIDATE")
    with pytest.raises(ConfigError):
        netspec.phase_value(7)


# ---------------------------------------------------------------------------------------
# Split insertion
# ---------------------------------------------------------------------------------------


def test_split_lenet_test_label(anchors):
    net = model_io.read_net_prototxt(anchors / "caffe" / "mnist_lenet_train_test.prototxt")
    test = netspec.insert_splits(netspec.filter_net(net, caffe_pb2.NetState(phase=TEST)))
    layers = {lay.name: lay for lay in test.layer}
    split = layers["label_mnist_1_split"]
    assert split.type == "Split"
    assert list(split.bottom) == ["label"]
    assert list(split.top) == ["label_mnist_1_split_0", "label_mnist_1_split_1"]
    assert split.phase == TEST
    assert not split.loss_weight
    names = [lay.name for lay in test.layer]
    assert names.index("label_mnist_1_split") == names.index("mnist") + 1
    assert list(layers["accuracy"].bottom) == ["ip2_ip2_0_split_0", "label_mnist_1_split_0"]
    assert list(layers["loss"].bottom) == ["ip2_ip2_0_split_1", "label_mnist_1_split_1"]
    assert list(layers["ip2_ip2_0_split"].top) == ["ip2_ip2_0_split_0", "ip2_ip2_0_split_1"]
    assert len(test.layer) == 10 + 2

    train = netspec.insert_splits(netspec.filter_net(net, caffe_pb2.NetState(phase=TRAIN)))
    assert not [lay for lay in train.layer if lay.type == "Split"]


def test_split_googlenet_fan_out(anchors):
    net = model_io.read_net_prototxt(anchors / "caffe" / "bvlc_googlenet_train_val.prototxt")
    train = netspec.insert_splits(netspec.filter_net(net, caffe_pb2.NetState(phase=TRAIN)))
    layers = {lay.name: lay for lay in train.layer}
    split = layers["pool2/3x3_s2_pool2/3x3_s2_0_split"]
    assert list(split.bottom) == ["pool2/3x3_s2"]
    assert list(split.top) == [f"pool2/3x3_s2_pool2/3x3_s2_0_split_{k}" for k in range(4)]
    consumers = [
        lay.name
        for lay in train.layer
        if any(b.startswith("pool2/3x3_s2_pool2") for b in lay.bottom)
    ]
    assert consumers == [
        "inception_3a/1x1",
        "inception_3a/3x3_reduce",
        "inception_3a/5x5_reduce",
        "inception_3a/pool",
    ]
    # label feeds three losses and, in TRAIN, the three top-1/top-5 accuracies are excluded.
    label_split = layers["label_data_1_split"]
    assert len(label_split.top) == 3
    # After splitting no top feeds more than one bottom, so a second pass changes nothing.
    assert _layers(netspec.insert_splits(train)) == _layers(train)


def test_split_generic_fan_out_with_in_place_chain():
    net = _net(
        """
        layer { name: "in" type: "Input" top: "x" }
        layer { name: "conv" type: "Convolution" bottom: "x" top: "y" }
        layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }
        layer { name: "a" type: "Pooling" bottom: "y" top: "a" }
        layer { name: "b" type: "Pooling" bottom: "y" top: "b" }
        layer { name: "c" type: "Concat" bottom: "a" bottom: "b" bottom: "y" top: "c" }
        """
    )
    out = netspec.insert_splits(net)
    assert _layers(out) == [
        ("in", "Input", [], ["x"]),
        ("conv", "Convolution", ["x"], ["y"]),
        ("relu", "ReLU", ["y"], ["y"]),
        ("y_relu_0_split", "Split", ["y"], ["y_relu_0_split_0", "y_relu_0_split_1", "y_relu_0_split_2"]),
        ("a", "Pooling", ["y_relu_0_split_0"], ["a"]),
        ("b", "Pooling", ["y_relu_0_split_1"], ["b"]),
        ("c", "Concat", ["a", "b", "y_relu_0_split_2"], ["c"]),
    ]  # fmt: skip


def test_split_in_place_consumer_counts_once():
    # conv's y is read by relu (in place) only; a and b read relu's y.
    net = _net(
        """
        layer { name: "in" type: "Input" top: "x" }
        layer { name: "conv" type: "Convolution" bottom: "x" top: "y" }
        layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }
        layer { name: "a" type: "Pooling" bottom: "y" top: "a" }
        """
    )
    assert _layers(netspec.insert_splits(net)) == _layers(net)


def test_split_moves_loss_weight():
    net = _net(
        """
        layer { name: "in" type: "Input" top: "x" top: "t" }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" loss_weight: 0.25 }
        layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "l" }
        """
    )
    out = netspec.insert_splits(net)
    layers = {lay.name: lay for lay in out.layer}
    split = layers["y_ip_0_split"]
    assert list(split.top) == ["y_ip_0_split_0", "y_ip_0_split_1"]
    assert list(split.loss_weight) == [0.25, 0.0]
    assert not layers["ip"].loss_weight
    assert list(layers["loss"].bottom) == ["y_ip_0_split_1", "t"]


def test_loss_weight_without_consumer_needs_no_split():
    net = _net(
        """
        layer { name: "in" type: "Input" top: "x" }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" loss_weight: 1 }
        """
    )
    assert _layers(netspec.insert_splits(net)) == _layers(net)


def test_zero_loss_weight_does_not_count():
    net = _net(
        """
        layer { name: "in" type: "Input" top: "x" }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" loss_weight: 0 }
        layer { name: "r" type: "ReLU" bottom: "y" top: "z" }
        """
    )
    assert _layers(netspec.insert_splits(net)) == _layers(net)


def test_split_of_legacy_net_inputs():
    raw = model_io.parse_net_text(
        """
        input: "data"
        layer { name: "a" type: "ReLU" bottom: "data" top: "a" }
        layer { name: "b" type: "ReLU" bottom: "data" top: "b" }
        """,
        upgrade_legacy=False,
    )
    out = netspec.insert_splits(raw)
    assert _layers(out)[0] == (
        "data_input_0_split",
        "Split",
        ["data"],
        ["data_input_0_split_0", "data_input_0_split_1"],
    )
    # The upgraded net (Input layer named "input") gives the same names.
    upgraded = netspec.insert_splits(
        model_io.parse_net_text(
            'input: "data" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1\n'
            + "\n".join(
                text
                for text in [
                    'layer { name: "a" type: "ReLU" bottom: "data" top: "a" }',
                    'layer { name: "b" type: "ReLU" bottom: "data" top: "b" }',
                ]
            )
        )
    )
    assert _layers(upgraded)[1][0] == "data_input_0_split"


def test_unknown_bottom_names_layer_and_blob():
    net = _net('layer { name: "relu" type: "ReLU" bottom: "ghost" top: "r" }')
    with pytest.raises(ConfigError, match="layer 'relu' .* blob 'ghost'"):
        netspec.insert_splits(net)


def test_split_names():
    assert netspec.split_layer_name("label", "mnist", 1) == "label_mnist_1_split"
    assert netspec.split_blob_name("label", "mnist", 1, 0) == "label_mnist_1_split_0"


# ---------------------------------------------------------------------------------------
# fill_defaults and the type table
# ---------------------------------------------------------------------------------------


def test_fill_defaults_convolution():
    layer = _net(
        """layer { name: "c" type: "Convolution" convolution_param {
             num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }"""
    ).layer[0]
    params = netspec.fill_defaults(layer.convolution_param)
    assert params["num_output"] == 8
    assert params["kernel_size"] == [3]
    assert params["pad"] == [] and params["stride"] == [] and params["dilation"] == []
    assert params["bias_term"] is True
    assert params["group"] == 1
    assert params["axis"] == 1
    assert params["engine"] == "DEFAULT"
    assert params["weight_filler"]["type"] == "xavier"
    assert params["weight_filler"]["std"] == 1.0
    assert params["weight_filler"]["variance_norm"] == "FAN_IN"
    assert "bias_filler" not in params
    with_defaults = {
        f.name
        for f in caffe_pb2.ConvolutionParameter.DESCRIPTOR.fields
        if f.message_type is None and (f.has_default_value or f.enum_type)
    }
    assert with_defaults <= set(params)
    # Unset fields without a proto default stay absent: the engine tests their presence.
    assert "kernel_h" not in params and "stride_h" not in params

    with_bias = netspec.fill_defaults(layer.convolution_param, always={"bias_filler"})
    assert with_bias["bias_filler"]["type"] == "constant"
    assert with_bias["bias_filler"]["value"] == 0.0


def test_fill_defaults_nested_and_repeated_messages():
    layer = _net(
        """layer { name: "d" type: "CoSData" cos_data_param {
             top { name: "data" type: RAW_IMAGE } top { name: "label" } } }"""
    ).layer[0]
    params = netspec.fill_defaults(layer.cos_data_param, always={"transform_param"})
    assert params["dataframe_format"] == "parquet"
    assert [t["type"] for t in params["top"]] == ["RAW_IMAGE", "STRING"]
    assert params["top"][0]["sample_num_axes"] == 3
    assert params["top"][0]["transform_param"]["scale"] == 1.0
    assert params["top"][0]["transform_param"]["mean_value"] == []
    empty = netspec.fill_defaults(caffe_pb2.InputParameter())
    assert empty == {"shape": []}


def test_fill_defaults_enum_and_solver():
    solver = caffe_pb2.SolverParameter()
    filled = netspec.fill_defaults(solver)
    assert filled["solver_mode"] == "GPU"
    assert filled["snapshot_format"] == "BINARYPROTO"
    assert filled["type"] == "SGD"
    assert filled["rms_decay"] == pytest.approx(0.99)
    assert filled["test_iter"] == []
    assert "net_param" not in filled


def test_type_table_covers_the_catalog():
    assert len(CATALOG) == 61
    assert set(TYPE_PARAM := netspec.TYPE_PARAM_FIELDS) == set(CATALOG) | {"CoSData"}
    layer_fields = set(caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name)
    for type_name, fields in TYPE_PARAM.items():
        assert set(fields) <= layer_fields, type_name
    assert TYPE_PARAM["Convolution"] == ("convolution_param",)
    assert TYPE_PARAM["Deconvolution"] == ("convolution_param",)
    assert TYPE_PARAM["Data"] == ("data_param", "transform_param")
    assert TYPE_PARAM["SoftmaxWithLoss"] == ("loss_param", "softmax_param")
    assert TYPE_PARAM["Accuracy"] == ("accuracy_param",)
    assert TYPE_PARAM["MemoryData"] == ("memory_data_param", "transform_param")


def test_layer_params_and_spec(anchors):
    net = model_io.read_net_prototxt(anchors / "caffe" / "mnist_lenet_train_test.prototxt")
    test = netspec.insert_splits(netspec.filter_net(net, caffe_pb2.NetState(phase=TEST)))
    for layer in test.layer:
        assert set(netspec.layer_params(layer)) == set(netspec.TYPE_PARAM_FIELDS[layer.type])
        assert layer.phase == TEST
    conv = next(lay for lay in test.layer if lay.name == "conv1")
    assert netspec.layer_params(conv)["convolution_param"]["bias_filler"]["type"] == "constant"
    data = netspec.layer_params(test.layer[0])
    assert data["data_param"]["backend"] == "LMDB"
    assert data["transform_param"]["scale"] == pytest.approx(0.00390625)
    loss = netspec.layer_params(next(lay for lay in test.layer if lay.type == "SoftmaxWithLoss"))
    assert loss["loss_param"]["normalization"] == "VALID"
    assert loss["softmax_param"]["axis"] == 1


def test_layer_params_unknown_type():
    # Unknown types get no parameters here; the engine rejects them with the known types.
    layer = caffe_pb2.LayerParameter(name="mystery", type="Frobnicate")
    assert netspec.layer_params(layer) == {}
