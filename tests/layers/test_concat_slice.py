"""Concat and Slice (cpp/layers/concat_slice.cc): forward against NumPy concatenate/split,
gradients by finite differences, negative axes, the legacy concat_dim / slice_dim, one-blob
sharing, a Slice -> Concat round trip, and errors that name the layer and both shapes."""

import numpy as np
import pytest
from google.protobuf import text_format
from layer_check import build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError, ShapeError
from caffeonspark.proto import caffe_pb2


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    ("shapes", "axis"),
    [
        ([(2, 3, 4), (2, 5, 4)], 1),
        ([(2, 3, 4), (2, 3, 1), (2, 3, 2)], -1),
        ([(1, 3, 2), (4, 3, 2)], 0),
        ([(2, 3, 2, 2), (2, 3, 1, 2)], -2),
        ([(3, 2), (3, 4)], 1),
    ],
)
def test_concat(shapes, axis):
    inputs = {f"x{i}": _normal(s, seed=i) for i, s in enumerate(shapes)}
    check_layer(
        f'type: "Concat" concat_param {{ axis: {axis} }}',
        inputs,
        lambda inp, p: [np.concatenate(list(inp.values()), axis=axis)],
    )


def test_concat_legacy_concat_dim():
    inputs = {"a": _normal((2, 3, 2), 1), "b": _normal((2, 3, 4), 2)}
    check_layer(
        'type: "Concat" concat_param { concat_dim: 2 }',
        inputs,
        lambda inp, p: [np.concatenate([inp["a"], inp["b"]], axis=2)],
    )
    # concat_dim: 1 written explicitly is the same as the default axis.
    inputs = {"a": _normal((2, 3), 1), "b": _normal((2, 1), 2)}
    check_layer(
        'type: "Concat" concat_param { concat_dim: 1 }',
        inputs,
        lambda inp, p: [np.concatenate([inp["a"], inp["b"]], axis=1)],
    )


def test_concat_axis_and_concat_dim_together_is_an_error():
    with pytest.raises(ConfigError, match="probe.*concat_dim"):
        build_probe(
            'type: "Concat" concat_param { axis: 0 concat_dim: 1 }',
            {"a": _normal((2, 3)), "b": _normal((2, 3))},
        )


def test_concat_mismatch_names_layer_and_both_shapes():
    with pytest.raises(ShapeError, match=r"probe.*\(2, 4, 5\).*\(2, 3, 4\)"):
        build_probe('type: "Concat"', {"a": _normal((2, 3, 4)), "b": _normal((2, 4, 5))})
    with pytest.raises(ShapeError, match="probe"):
        build_probe('type: "Concat"', {"a": _normal((2, 3, 4)), "b": _normal((2, 3))})


def test_concat_one_bottom_shares_data_and_diff():
    net = check_layer('type: "Concat"', {"x": _normal((2, 3))}, lambda inp, p: [inp["x"]])
    net.blobs["x"].data[...] = 5.0
    assert np.all(net.blobs["top0"].data == 5.0)
    net.blobs["top0"].diff[...] = 2.0
    assert np.all(net.blobs["x"].diff == 2.0)
    # A reshape that grows the bottom reallocates it; the top must follow.
    net.blobs["x"].reshape(20, 30)
    net.reshape()
    net.blobs["x"].data[...] = 1.5
    assert net.blobs["top0"].shape == (20, 30) and np.all(net.blobs["top0"].data == 1.5)


def test_concat_propagate_down_per_bottom():
    net_param = caffe_pb2.NetParameter()
    text_format.Parse(
        'layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }'
        'layer { name: "ipa" type: "InnerProduct" bottom: "a" top: "ha" inner_product_param {'
        '  num_output: 2 weight_filler { type: "gaussian" } } }'
        'layer { name: "ipb" type: "InnerProduct" bottom: "b" top: "hb" inner_product_param {'
        '  num_output: 3 weight_filler { type: "gaussian" } } }'
        'layer { name: "cat" type: "Concat" bottom: "ha" bottom: "hb" top: "y"'
        "  propagate_down: false propagate_down: true loss_weight: 1 }",
        net_param,
    )
    net = engine.Net(net_param, phase=engine.TRAIN)
    net.blobs["a"].data[...] = _normal((2, 3), 1)
    net.blobs["b"].data[...] = _normal((2, 3), 2)
    net.native.forward_from_to(0, 3)
    net.blobs["ha"].diff[...] = 7.0
    net.native.backward_from_to(3, 3)
    assert np.all(net.blobs["ha"].diff == 7.0)
    assert np.all(net.blobs["hb"].diff == 1.0)


# ---- Slice ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "text", "axis", "cuts"),
    [
        ((2, 6, 3), "slice_point: 1 slice_point: 4", 1, [1, 4]),
        ((2, 6, 3), "", 1, 3),
        ((2, 3, 8), "axis: -1 slice_point: 3", -1, [3]),
        ((6, 2), "axis: 0", 0, 2),
        ((2, 3, 4), "slice_dim: 2 slice_point: 1 slice_point: 2 slice_point: 3", 2, [1, 2, 3]),
    ],
)
def test_slice(shape, text, axis, cuts):
    tops = cuts if isinstance(cuts, int) else len(cuts) + 1
    check_layer(
        f'type: "Slice" slice_param {{ {text} }}',
        {"x": _normal(shape, seed=3)},
        lambda inp, p: np.split(inp["x"], cuts, axis=axis),
        num_tops=tops,
    )


@pytest.mark.parametrize(
    ("text", "tops", "error", "match"),
    [
        ("slice_point: 3 slice_point: 2", 3, ConfigError, "increase"),
        ("slice_point: 2 slice_point: 2", 3, ConfigError, "increase"),
        ("slice_point: 6", 2, ConfigError, "increase"),
        ("slice_point: 0", 2, ConfigError, "increase"),
        ("slice_point: 2", 3, ConfigError, "slice_point"),
        ("", 4, ShapeError, "evenly"),
        ("axis: 1 slice_dim: 0", 2, ConfigError, "slice_dim"),
    ],
)
def test_slice_errors_name_the_layer(text, tops, error, match):
    with pytest.raises(error, match=f"probe.*{match}"):
        build_probe(
            f'type: "Slice" slice_param {{ {text} }}', {"x": _normal((2, 6))}, num_tops=tops
        )


def test_slice_one_top_shares():
    net = build_probe('type: "Slice"', {"x": _normal((2, 3))})
    net.blobs["x"].data[...] = 4.0
    assert np.all(net.blobs["top0"].data == 4.0)


def test_slice_then_concat_round_trip():
    net_param = caffe_pb2.NetParameter(force_backward=True)
    text_format.Parse(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 3 dim: 7 dim: 2 } } }'
        'layer { name: "cut" type: "Slice" bottom: "x" top: "a" top: "b" top: "c"'
        "  slice_param { axis: -2 slice_point: 2 slice_point: 3 } }"
        'layer { name: "join" type: "Concat" bottom: "a" bottom: "b" bottom: "c" top: "y"'
        "  concat_param { axis: 1 } }",
        net_param,
    )
    net = engine.Net(net_param, phase=engine.TEST)
    x = _normal((3, 7, 2), 4)
    out = net.forward(x=x)
    np.testing.assert_array_equal(out["y"], x)
    assert [net.blobs[b].shape[1] for b in "abc"] == [2, 1, 4]
    dy = _normal((3, 7, 2), 5)
    diffs = net.backward(y=dy)
    np.testing.assert_array_equal(diffs["x"], dy)
