"""Tests of python/caffeonspark/upgrade.py (docs/CAFFE.md §8): V1 layers to `layer`, data
transforms, net inputs to an Input layer, BatchNorm params, solver_type to type, the
snapshot_prefix default; on the legacy anchors and on small hand-built nets.
"""

from __future__ import annotations

import os

import pytest

from caffeonspark import model_io, upgrade
from caffeonspark.errors import ConfigError, FormatError
from caffeonspark.netspec import TYPE_PARAM_FIELDS
from caffeonspark.proto import caffe_pb2

V1 = caffe_pb2.V1LayerParameter


def _by_name(net: caffe_pb2.NetParameter) -> dict[str, caffe_pb2.LayerParameter]:
    return {layer.name: layer for layer in net.layer}


# ---------------------------------------------------------------------------------------
# Anchors
# ---------------------------------------------------------------------------------------


def test_legacy_v1_lenet(anchors):
    net = model_io.read_net_prototxt(
        anchors / "caffe" / "legacy_v1_mnist_lenet_train_test.prototxt"
    )
    assert not net.layers
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("mnist", "Data"),
        ("mnist", "Data"),
        ("conv1", "Convolution"),
        ("pool1", "Pooling"),
        ("conv2", "Convolution"),
        ("pool2", "Pooling"),
        ("ip1", "InnerProduct"),
        ("relu1", "ReLU"),
        ("ip2", "InnerProduct"),
        ("accuracy", "Accuracy"),
        ("loss", "SoftmaxWithLoss"),
    ]
    layers = _by_name(net)
    for name in ("conv1", "conv2", "ip1", "ip2"):
        assert [p.lr_mult for p in layers[name].param] == [1, 2]
        assert all(not p.HasField("decay_mult") for p in layers[name].param)
    assert not layers["relu1"].param
    assert layers["conv1"].convolution_param.num_output == 20
    assert layers["conv1"].convolution_param.weight_filler.type == "xavier"
    assert layers["pool1"].pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    train, test = net.layer[0], net.layer[1]
    assert [r.phase for r in train.include] == [caffe_pb2.TRAIN]
    assert [r.phase for r in test.include] == [caffe_pb2.TEST]
    assert train.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert train.transform_param.scale == pytest.approx(0.00390625)
    assert [r.phase for r in layers["accuracy"].include] == [caffe_pb2.TEST]


def test_legacy_v1_caffenet_train_val(anchors):
    net = model_io.read_net_prototxt(
        anchors / "caffe" / "legacy_v1_bvlc_reference_caffenet_train_val.prototxt"
    )
    layers = _by_name(net)
    conv1 = layers["conv1"]
    assert conv1.type == "Convolution"
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1, 1), (2, 0)]
    assert {layer.type for layer in net.layer} == {
        "Data", "Convolution", "ReLU", "Pooling", "LRN", "InnerProduct", "Dropout",
        "Accuracy", "SoftmaxWithLoss",
    }  # fmt: skip
    data = net.layer[0]
    assert data.transform_param.crop_size == 227
    assert data.transform_param.mirror is True
    assert data.transform_param.mean_file.endswith("imagenet_mean.binaryproto")


def test_legacy_v1_caffenet_deploy_input(anchors):
    net = model_io.read_net_prototxt(
        anchors / "caffe" / "legacy_v1_bvlc_reference_caffenet_deploy.prototxt"
    )
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["data"])
    assert [list(s.dim) for s in first.input_param.shape] == [[10, 3, 227, 227]]
    assert net.layer[1].name == "conv1"


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_kaiminghe_resnet_input_layer(anchors, depth):
    net = model_io.read_net_prototxt(
        anchors / "caffe" / f"kaiminghe_resnet_{depth}_deploy.prototxt"
    )
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["data"])
    assert [tuple(s.dim) for s in first.input_param.shape] == [(1, 3, 224, 224)]
    assert not net.input and not net.input_dim
    assert sum(layer.type == "Input" for layer in net.layer) == 1
    assert any(layer.type == "BatchNorm" for layer in net.layer)


def test_lrcn_word_to_preds_input_shapes(anchors):
    net = model_io.read_net_prototxt(
        anchors / "caffeonspark" / "lrcn_word_to_preds.deploy.prototxt"
    )
    first = net.layer[0]
    assert first.type == "Input"
    assert list(first.top) == ["cont_sentence", "input_sentence", "image_features"]
    assert [tuple(s.dim) for s in first.input_param.shape] == [(1, 1000), (1, 1000), (1000, 1000)]


def test_legacy_enum_solver(anchors):
    solver = model_io.read_solver_prototxt(
        anchors / "caffe" / "legacy_enum_mnist_lenet_solver_adam.prototxt"
    )
    assert solver.type == "Adam"
    assert not solver.HasField("solver_type")
    assert solver.momentum2 == pytest.approx(0.999)


def test_consolidated_solver_inline_v1_net(anchors):
    solver = model_io.read_solver_prototxt(
        anchors / "caffe" / "mnist_lenet_consolidated_solver.prototxt"
    )
    net = solver.net_param
    assert net.layer and not net.layers
    assert "SoftmaxWithLoss" in {layer.type for layer in net.layer}
    assert len(solver.test_state) >= 1


def test_every_anchor_type_is_known(anchors):
    types = set()
    for path in sorted(anchors.glob("*/*.prototxt")):
        if "solver" in path.name or "base_lr" in path.read_text():
            continue
        types.update(layer.type for layer in model_io.read_net_prototxt(path).layer)
    assert types <= set(TYPE_PARAM_FIELDS), types - set(TYPE_PARAM_FIELDS)


# ---------------------------------------------------------------------------------------
# V1 conversion details
# ---------------------------------------------------------------------------------------


def test_v1_type_names_cover_the_enum():
    assert set(upgrade.V1_TYPE_NAMES) == set(V1.LayerType.values())
    named = set(upgrade.V1_TYPE_NAMES.values()) - {""}
    assert named <= set(TYPE_PARAM_FIELDS)
    assert upgrade.V1_TYPE_NAMES[V1.SOFTMAX_LOSS] == "SoftmaxWithLoss"
    assert upgrade.V1_TYPE_NAMES[V1.HDF5_DATA] == "HDF5Data"
    assert upgrade.V1_TYPE_NAMES[V1.IM2COL] == "Im2col"
    assert upgrade.V1_TYPE_NAMES[V1.TANH] == "TanH"


def test_v1_everything_is_copied():
    net = caffe_pb2.NetParameter(name="v1")
    v1 = net.layers.add(name="ip", type=V1.INNER_PRODUCT, bottom=["x"], top=["y"])
    v1.blobs_lr.extend([1, 2])
    v1.weight_decay.extend([1, 0])
    v1.param.extend(["w_shared", "b_shared"])
    v1.blob_share_mode.extend([V1.STRICT, V1.PERMISSIVE])
    v1.loss_weight.append(0.5)
    v1.exclude.add(phase=caffe_pb2.TEST, stage=["deploy"])
    v1.inner_product_param.num_output = 7
    v1.loss_param.ignore_label = 3
    v1.blobs.add().data.extend([1.0, 2.0])
    upgrade.upgrade_net(net)
    (layer,) = net.layer
    assert (layer.name, layer.type, list(layer.bottom), list(layer.top)) == (
        "ip",
        "InnerProduct",
        ["x"],
        ["y"],
    )
    assert [(p.name, p.share_mode, p.lr_mult, p.decay_mult) for p in layer.param] == [
        ("w_shared", caffe_pb2.ParamSpec.STRICT, 1, 1),
        ("b_shared", caffe_pb2.ParamSpec.PERMISSIVE, 2, 0),
    ]
    assert list(layer.loss_weight) == [0.5]
    assert layer.exclude[0].phase == caffe_pb2.TEST
    assert list(layer.exclude[0].stage) == ["deploy"]
    assert layer.inner_product_param.num_output == 7
    assert layer.loss_param.ignore_label == 3
    assert list(layer.blobs[0].data) == [1.0, 2.0]


def test_v1_param_specs_cover_the_longest_list():
    net = caffe_pb2.NetParameter()
    v1 = net.layers.add(name="c", type=V1.CONVOLUTION)
    v1.blobs_lr.append(0)
    v1.weight_decay.extend([1, 0])
    upgrade.upgrade_net(net)
    params = net.layer[0].param
    assert [(p.lr_mult, p.decay_mult) for p in params] == [(0, 1), (1, 0)]
    assert not params[1].HasField("lr_mult")


@pytest.mark.parametrize(
    ("v1_type", "holder"),
    [
        (V1.DATA, "data_param"),
        (V1.IMAGE_DATA, "image_data_param"),
        (V1.WINDOW_DATA, "window_data_param"),
    ],
)
def test_v1_data_transform_moves(v1_type, holder):
    net = caffe_pb2.NetParameter()
    v1 = net.layers.add(name="d", type=v1_type, top=["data", "label"])
    params = getattr(v1, holder)
    params.source = "db"
    params.scale = 0.5
    params.mean_file = "mean.binaryproto"
    params.crop_size = 3
    params.mirror = True
    upgrade.upgrade_net(net)
    layer = net.layer[0]
    transform = layer.transform_param
    assert (transform.scale, transform.mean_file, transform.crop_size, transform.mirror) == (
        0.5,
        "mean.binaryproto",
        3,
        True,
    )
    moved = getattr(layer, holder)
    assert moved.source == "db"
    for field in ("scale", "mean_file", "crop_size", "mirror"):
        assert not moved.HasField(field)


def test_v2_data_params_are_left_alone():
    net = caffe_pb2.NetParameter()
    net.layer.add(name="d", type="Data").data_param.scale = 0.5
    upgrade.upgrade_net(net)
    assert net.layer[0].data_param.scale == 0.5
    assert not net.layer[0].HasField("transform_param")


def test_layer_and_layers_together_fail():
    net = caffe_pb2.NetParameter()
    net.layer.add(name="a", type="ReLU")
    net.layers.add(name="b", type=V1.RELU)
    with pytest.raises(ConfigError, match="both `layer` and legacy V1 `layers`"):
        upgrade.upgrade_net(net, "mixed.prototxt")


def test_v0_binary_net_is_rejected(tmp_path):
    net = caffe_pb2.NetParameter()
    net.layers.add().layer.SetInParent()
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(net.SerializeToString())
    with pytest.raises(FormatError, match="V0 net format"):
        model_io.read_caffemodel(path)


def test_v1_binary_caffemodel_is_upgraded(tmp_path):
    net = caffe_pb2.NetParameter(name="old")
    v1 = net.layers.add(name="ip", type=V1.INNER_PRODUCT, bottom=["data"], top=["ip"])
    blob = v1.blobs.add(num=1, channels=1, height=2, width=3)
    blob.data.extend(range(6))
    path = tmp_path / "old.caffemodel"
    path.write_bytes(net.SerializeToString())
    read = model_io.read_caffemodel(path)
    assert read.layer[0].type == "InnerProduct"
    assert model_io.blob_to_array(read.layer[0].blobs[0]).shape == (1, 1, 2, 3)
    assert len(model_io.read_caffemodel(path, upgrade_legacy=False).layers) == 1


# ---------------------------------------------------------------------------------------
# Inputs and BatchNorm
# ---------------------------------------------------------------------------------------


def test_input_dim_count_mismatch():
    net = caffe_pb2.NetParameter(input=["data"], input_dim=[1, 3, 224])
    with pytest.raises(ConfigError, match="need 4 input_dim values"):
        upgrade.upgrade_net(net, "deploy.prototxt")


def test_input_shape_count_mismatch():
    net = caffe_pb2.NetParameter(input=["a", "b"])
    net.input_shape.add(dim=[1])
    with pytest.raises(ConfigError, match="2 net inputs but 1 input_shape"):
        upgrade.upgrade_net(net)


def test_bare_inputs_are_dropped():
    net = caffe_pb2.NetParameter(input=["data"])
    net.layer.add(name="relu", type="ReLU", bottom=["data"], top=["data"])
    upgrade.upgrade_net(net)
    assert not net.input
    assert [layer.name for layer in net.layer] == ["relu"]


def test_input_layer_goes_first_with_all_tops():
    net = caffe_pb2.NetParameter(input=["a", "b"], input_dim=[1, 2, 3, 4, 5, 6, 7, 8])
    net.layer.add(name="first", type="Eltwise", bottom=["a", "b"], top=["c"])
    upgrade.upgrade_net(net)
    assert [layer.name for layer in net.layer] == ["input", "first"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert not upgrade.net_needs_upgrade(net)


def test_batch_norm_with_three_params_is_frozen():
    net = caffe_pb2.NetParameter()
    bn = net.layer.add(name="bn", type="BatchNorm")
    for _ in range(3):
        bn.param.add(lr_mult=1)
    two = net.layer.add(name="bn2", type="BatchNorm")
    two.param.add(lr_mult=1)
    two.param.add(lr_mult=1)
    assert upgrade.net_needs_upgrade(net)
    upgrade.upgrade_net(net)
    assert [(p.lr_mult, p.decay_mult) for p in bn.param] == [(0, 0)] * 3
    assert [p.lr_mult for p in two.param] == [1, 1]  # only exactly 3 params are touched


# ---------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enum_name", "type_name"),
    [
        ("SGD", "SGD"),
        ("NESTEROV", "Nesterov"),
        ("ADAGRAD", "AdaGrad"),
        ("RMSPROP", "RMSProp"),
        ("ADADELTA", "AdaDelta"),
        ("ADAM", "Adam"),
    ],
)
def test_solver_type_enum(enum_name, type_name):
    solver = model_io.parse_solver_text(f"solver_type: {enum_name}\n")
    assert solver.type == type_name
    assert not solver.HasField("solver_type")


def test_solver_type_and_type_conflict():
    with pytest.raises(ConfigError, match="both the deprecated `solver_type` and `type`"):
        model_io.parse_solver_text('solver_type: ADAM\ntype: "Adam"\n', "s.prototxt")


def test_solver_inline_nets_are_upgraded():
    solver = caffe_pb2.SolverParameter()
    solver.train_net_param.layers.add(name="a", type=V1.RELU)
    solver.test_net_param.add().input.append("x")
    upgrade.upgrade_solver(solver)
    assert solver.train_net_param.layer[0].type == "ReLU"
    assert not solver.test_net_param[0].input


def test_fill_snapshot_prefix_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snapshots").mkdir()
    absent = caffe_pb2.SolverParameter()
    upgrade.fill_snapshot_prefix(absent, "models/lenet_solver.prototxt")
    assert absent.snapshot_prefix == "models/lenet_solver"
    directory = caffe_pb2.SolverParameter(snapshot_prefix="snapshots")
    upgrade.fill_snapshot_prefix(directory, "models/lenet_solver.prototxt")
    assert directory.snapshot_prefix == os.path.join("snapshots", "lenet_solver")
    plain = caffe_pb2.SolverParameter(snapshot_prefix="snapshots/lenet")
    upgrade.fill_snapshot_prefix(plain, "models/lenet_solver.prototxt")
    assert plain.snapshot_prefix == "snapshots/lenet"
