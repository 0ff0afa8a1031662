"""Flatten, Reshape, Split, Silence (cpp/layers/shape_layers.cc): top shapes against NumPy
reshapes (Flatten's axis/end_axis, Reshape's 0 / -1 dims with axis and num_axes), shared data
and diff that survive a growing reshape of the bottom, Split's summed diffs, Silence's zeroed
diffs, gradients by finite differences, and the errors (in place, bad dims) naming the layer."""

import numpy as np
import pytest
from google.protobuf import text_format
from layer_check import build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError, ShapeError
from caffeonspark.proto import caffe_pb2


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---- Flatten -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "text", "want"),
    [
        ((2, 3, 4, 5), "", (2, 60)),
        ((2, 3, 4, 5), "axis: 2", (2, 3, 20)),
        ((2, 3, 4, 5), "axis: 0 end_axis: 1", (6, 4, 5)),
        ((2, 3, 4, 5), "axis: 1 end_axis: -2", (2, 12, 5)),
        ((2, 3, 4, 5), "axis: -3 end_axis: 2", (2, 12, 5)),
        ((2, 3, 4, 5), "axis: 3", (2, 3, 4, 5)),
        ((7, 3), "", (7, 3)),
    ],
)
def test_flatten(shape, text, want):
    net = check_layer(
        f'type: "Flatten" flatten_param {{ {text} }}',
        {"x": _normal(shape)},
        lambda inp, p: [inp["x"].reshape(want)],
    )
    assert net.blobs["top0"].shape == want


def test_flatten_refuses_in_place_and_reversed_axes():
    with pytest.raises(ConfigError, match="probe.*in place"):
        build_probe('type: "Flatten"', {"x": _normal((2, 3))}, tops=["x"])
    with pytest.raises(ConfigError, match="probe.*end_axis"):
        build_probe(
            'type: "Flatten" flatten_param { axis: 2 end_axis: 1 }', {"x": _normal((2, 3, 4))}
        )


# ---- Reshape -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "text", "want"),
    [
        ((2, 3, 4), "shape { dim: 0 dim: -1 }", (2, 12)),
        ((2, 3, 4), "shape { dim: -1 dim: 2 dim: 0 }", (3, 2, 4)),
        ((2, 3, 4), "shape { dim: 4 dim: 6 }", (4, 6)),
        ((2, 6, 4), "axis: 1 num_axes: 1 shape { dim: 2 dim: 3 }", (2, 2, 3, 4)),
        ((2, 6, 4), "axis: 1 num_axes: 1 shape { dim: -1 dim: 3 }", (2, 2, 3, 4)),
        ((2, 6, 4), "axis: -1 num_axes: 0 shape { dim: 1 }", (2, 6, 4, 1)),
        ((2, 6, 4), "axis: 0 num_axes: 0 shape { dim: 1 }", (1, 2, 6, 4)),
        ((2, 6, 4), "axis: 1 shape { dim: -1 }", (2, 24)),
        ((2, 6, 4), "axis: -2 shape { dim: 0 dim: -1 }", (2, 6, 4, 1)),  # -2 = start at axis 2
        ((2, 6, 4), "axis: 1 num_axes: 2 shape { dim: 0 dim: 2 dim: 2 }", (2, 6, 2, 2)),
        ((1, 1), "", ()),
    ],
)
def test_reshape(shape, text, want):
    net = check_layer(
        f'type: "Reshape" reshape_param {{ {text} }}',
        {"x": _normal(shape, 1)},
        lambda inp, p: [inp["x"].reshape(want)],
    )
    assert net.blobs["top0"].shape == want


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("shape { dim: -1 dim: -1 }", ConfigError, "more than one -1"),
        ("shape { dim: 5 dim: -1 }", ShapeError, "cannot be reshaped"),
        ("shape { dim: 5 dim: 5 }", ShapeError, "elements"),
        ("shape { dim: 0 dim: 0 dim: 0 dim: 0 }", ShapeError, "no axis 3"),
        ("shape { dim: -2 }", ConfigError, "dim 0 is -2"),
        ("axis: 4 shape { dim: 1 }", ShapeError, "axis 4"),
        ("axis: 1 num_axes: 3 shape { dim: 1 }", ShapeError, "past the last axis"),
    ],
)
def test_reshape_errors_name_the_layer(text, error, match):
    with pytest.raises(error, match=f"probe.*{match}"):
        build_probe(f'type: "Reshape" reshape_param {{ {text} }}', {"x": _normal((2, 3, 4))})


@pytest.mark.parametrize(
    "text", ['type: "Reshape" reshape_param { shape { dim: -1 } }', 'type: "Flatten"']
)
def test_views_share_memory_and_follow_a_growing_bottom(text):
    net = build_probe(text, {"x": _normal((2, 3, 4))})
    with pytest.raises(ConfigError, match="in place"):
        build_probe(text, {"x": _normal((2, 3, 4))}, tops=["x"])
    net.blobs["x"].data[...] = 3.0
    assert np.all(net.blobs["top0"].data == 3.0)
    net.blobs["top0"].diff[...] = 2.0
    assert np.all(net.blobs["x"].diff == 2.0)
    net.blobs["x"].reshape(20, 30, 40)  # grows past capacity: the bottom reallocates
    net.reshape()
    x = _normal((20, 30, 40), 2)
    net.blobs["x"].data[...] = x
    np.testing.assert_array_equal(net.blobs["top0"].data.reshape(-1), x.reshape(-1))
    net.blobs["top0"].diff[...] = 1.0
    assert np.all(net.blobs["x"].diff == 1.0)


# ---- Split ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tops", [1, 2, 3])
def test_split(tops):
    x = _normal((2, 3, 4), 3)
    net = check_layer('type: "Split"', {"x": x}, lambda inp, p: [inp["x"]] * tops, num_tops=tops)
    for t in range(tops):
        net.blobs[f"top{t}"].diff[...] = t + 1.0
    net.native.backward_from_to(1, 1)
    assert np.all(net.blobs["x"].diff == sum(range(1, tops + 1)))
    net.blobs["x"].data[...] = 6.0
    assert all(np.all(net.blobs[f"top{t}"].data == 6.0) for t in range(tops))


def test_split_refuses_in_place():
    with pytest.raises(ConfigError, match="probe.*in place"):
        build_probe('type: "Split"', {"x": _normal((2, 3))}, tops=["x", "y"])


def test_split_inserted_by_the_net_sums_gradients():
    net_param = caffe_pb2.NetParameter(force_backward=True)
    text_format.Parse(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }'
        'layer { name: "a" type: "Power" bottom: "x" top: "ya" power_param { scale: 2 } loss_weight: 1 }'
        'layer { name: "b" type: "Power" bottom: "x" top: "yb" power_param { scale: -5 } loss_weight: 1 }',
        net_param,
    )
    net = engine.Net(net_param, phase=engine.TRAIN)
    assert "Split" in net.layer_types
    net.blobs["x"].data[...] = _normal((2, 3), 4)
    net.native.forward_from_to(0, len(net.layer_names) - 1)
    net.native.backward_from_to(len(net.layer_names) - 1, 0)
    np.testing.assert_allclose(net.blobs["x"].diff, -3.0)


# ---- Silence -------------------------------------------------------------------------------


def test_silence_zeroes_the_diffs_it_is_asked_for():
    inputs = {"a": _normal((2, 3), 5), "b": _normal((4,), 6)}
    net = build_probe('type: "Silence"', inputs, tops=[])
    assert net.native.top_ids(1) == []
    for name in inputs:
        net.blobs[name].diff[...] = 8.0
    net.native.forward_from_to(1, 1)
    net.native.backward_from_to(1, 1)  # force_backward: both bottoms want a gradient
    assert all(np.all(net.blobs[name].diff == 0.0) for name in inputs)


def test_silence_needs_a_bottom_and_no_tops():
    with pytest.raises(ConfigError, match="probe.*top"):
        build_probe('type: "Silence"', {"a": _normal((2,))}, num_tops=1)
