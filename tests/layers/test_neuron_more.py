"""Threshold, Clip, Swish (cpp/layers/neuron_more.cc): forward against float64 NumPy,
finite-difference gradients (Clip skips its kinks), Clip's inclusive boundary rule, the
strict Threshold comparison, Threshold's refusal to backpropagate (and its silence when
nothing asks), in-place runs, defaults and missing required fields."""

import numpy as np
import pytest
from google.protobuf import text_format
from layer_check import build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2


def _normal(shape, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


# ---- Threshold -----------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.5, -1.25])
def test_threshold_forward(threshold):
    x = _normal((2, 3, 4), seed=1)
    x[0, 0, :2] = threshold  # equal to t: strict comparison gives 0
    net = check_layer(
        f'type: "Threshold" threshold_param {{ threshold: {threshold} }}',
        {"x": x},
        lambda inp, p: [(inp["x"] > threshold).astype(np.float64)],
        gradient=None,
    )
    assert np.all(net.blobs["top0"].data[0, 0, :2] == 0)


def test_threshold_default_is_zero_and_in_place_works():
    x = np.array([-1.0, 0.0, 1e-7, 3.0], np.float32)
    net = build_probe('type: "Threshold"', {"x": x}, tops=["x"])
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["x"].data, [0, 0, 1, 1])


THRESHOLD_NET = """
layer { name: "in" type: "Input" top: "x" top: "t"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "th" type: "Threshold" bottom: "h" top: "y" %s }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


@pytest.mark.parametrize("layer", ["probe", "net"])
def test_threshold_backward_is_refused_when_asked(layer):
    if layer == "probe":
        net = build_probe('type: "Threshold"', {"x": _normal((2, 3))})  # force_backward
        net.native.forward_from_to(1, 1)
        with pytest.raises(ConfigError, match="probe.*Threshold has no gradient.*propagate_down"):
            net.native.backward_from_to(1, 1)
        return
    param = caffe_pb2.NetParameter()
    text_format.Parse(THRESHOLD_NET % "", param)
    net = engine.Net(param, phase=engine.TRAIN)
    net.forward()
    with pytest.raises(ConfigError, match="'th'.*Threshold has no gradient"):
        net.backward()


def test_threshold_with_propagate_down_false_stays_quiet():
    param = caffe_pb2.NetParameter()
    text_format.Parse(THRESHOLD_NET % "propagate_down: false", param)
    net = engine.Net(param, phase=engine.TRAIN)
    net.forward()
    net.backward()
    np.testing.assert_array_equal(net.params["ip"][0].diff, 0)


# ---- Clip ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lo", "hi"), [(-0.5, 0.5), (0.0, 2.0), (-1.0, -1.0)])
def test_clip(lo, hi):
    x = _normal((2, 3, 5), seed=2, scale=1.5)
    # Finite differences are wrong next to min and max: keep inputs away from them.
    x = x[(np.abs(x - lo) > 0.02) & (np.abs(x - hi) > 0.02)][:24].reshape(2, 12)
    check_layer(
        f'type: "Clip" clip_param {{ min: {lo} max: {hi} }}',
        {"x": x},
        lambda inp, p: [np.clip(inp["x"], lo, hi)],
    )


def test_clip_gradient_passes_on_both_boundaries():
    x = np.array([-2.0, -1.0, 0.25, 1.0, 2.0], np.float32)
    dy = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    for tops in (None, ["x"]):
        net = build_probe('type: "Clip" clip_param { min: -1 max: 1 }', {"x": x}, tops=tops)
        top = "x" if tops else "top0"
        net.native.forward_from_to(1, 1)
        np.testing.assert_array_equal(net.blobs[top].data, [-1, -1, 0.25, 1, 1])
        net.blobs[top].diff[...] = dy
        net.native.backward_from_to(1, 1)
        # min <= x <= max passes dy, including x == min and x == max; in place reads the
        # saved x, not the clipped y (which always lies inside).
        np.testing.assert_array_equal(net.blobs["x"].diff, [0, 2, 3, 4, 0])


def test_clip_needs_min_and_max():
    with pytest.raises(ConfigError, match="probe.*clip_param.min and clip_param.max"):
        build_probe('type: "Clip"', {"x": _normal((2,))})


# ---- Swish -----------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, -0.75])
def test_swish(beta):
    x = _normal((2, 3, 4), seed=3, scale=2.0)
    check_layer(
        f'type: "Swish" swish_param {{ beta: {beta} }}',
        {"x": x},
        lambda inp, p: [inp["x"] * _sigmoid(beta * inp["x"])],
    )


def test_swish_default_beta_and_in_place():
    x = _normal((3, 4), seed=4, scale=2.0)
    dy = _normal((3, 4), seed=5)
    apart = build_probe('type: "Swish"', {"x": x})
    inplace = build_probe('type: "Swish"', {"x": x}, tops=["x"])
    for net, top in ((apart, "top0"), (inplace, "x")):
        net.native.forward_from_to(1, 1)
        net.blobs[top].diff[...] = dy
        net.native.backward_from_to(1, 1)
    x64 = x.astype(np.float64)
    s = _sigmoid(x64)
    np.testing.assert_allclose(apart.blobs["top0"].data, x64 * s, rtol=1e-5, atol=1e-7)
    want_dx = dy * (x64 * s + s * (1 - x64 * s))
    np.testing.assert_allclose(apart.blobs["x"].diff, want_dx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inplace.blobs["x"].data, apart.blobs["top0"].data, rtol=1e-6)
    np.testing.assert_allclose(inplace.blobs["x"].diff, want_dx, rtol=1e-5, atol=1e-6)
