"""Bias and Scale (cpp/layers/scale_bias.cc): forward against float64 NumPy and gradients
by finite differences through layer_check, for learned operands (axis/num_axes variants,
scalar num_axes 0, num_axes -1), operands from a second bottom (gradient to that bottom),
Scale's bias_term, in-place runs (Scale keeps x for its s gradient), default fillers,
accumulation into the param diffs, and shape errors."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import build_probe, check_layer

from caffeonspark.errors import ShapeError


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _expand(operand, x_ndim, axis):
    """operand broadcast against x: its axes start at `axis`, ones elsewhere."""
    operand = np.asarray(operand)
    if operand.ndim == 0:
        return operand
    return operand.reshape((1,) * axis + operand.shape + (1,) * (x_ndim - axis - operand.ndim))


UNIFORM = 'filler { type: "uniform" min: -1 max: 1 }'
BIAS_UNIFORM = 'bias_filler { type: "uniform" min: -1 max: 1 }'


# ---- Bias --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axis", "num_axes", "param_shape"),
    [
        ((2, 3, 4, 5), 1, 1, (3,)),
        ((2, 3, 4), 1, 1, (3,)),
        ((2, 3, 4, 5), 2, 2, (4, 5)),
        ((2, 3, 4, 5), 1, -1, (3, 4, 5)),
        ((2, 3, 4), 1, 0, ()),
        ((2, 3, 4), -1, 1, (4,)),
        ((2, 3, 4), 0, 2, (2, 3)),
    ],
)
def test_bias_learned(shape, axis, num_axes, param_shape):
    x = _normal(shape, seed=1)
    start = 0 if num_axes == 0 else axis % len(shape)
    net = check_layer(
        f'type: "Bias" bias_param {{ axis: {axis} num_axes: {num_axes} {UNIFORM} }}',
        {"x": x},
        lambda inp, p: [inp["x"] + _expand(p[0], len(shape), start)],
    )
    assert net.params["probe"][0].shape == param_shape


@pytest.mark.parametrize(
    ("shape", "b_shape", "axis"),
    [((2, 3, 4, 5), (3,), 1), ((2, 3, 4, 5), (3, 4), 1), ((2, 3, 4), (), 1), ((2, 3, 4), (2,), 0)],
)
def test_bias_two_bottoms(shape, b_shape, axis):
    x = _normal(shape, seed=2)
    b = _normal(b_shape, seed=3)
    start = 0 if len(b_shape) == 0 else axis
    net = check_layer(
        f'type: "Bias" bias_param {{ axis: {axis} }}',
        {"x": x, "b": b},
        lambda inp, p: [inp["x"] + _expand(inp["b"], len(shape), start)],
    )
    assert net.params.get("probe", []) == []


def test_bias_default_filler_is_zero_and_gradient_accumulates():
    x = _normal((2, 3, 4), seed=4)
    dy = _normal((2, 3, 4), seed=5)
    net = build_probe('type: "Bias"', {"x": x})
    np.testing.assert_array_equal(net.params["probe"][0].data, [0, 0, 0])
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["top0"].data, x)
    net.blobs["top0"].diff[...] = dy
    net.native.backward_from_to(1, 1)
    once = net.params["probe"][0].diff.copy()
    np.testing.assert_allclose(once, dy.astype(np.float64).sum(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_array_equal(net.blobs["x"].diff, dy)
    net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(net.params["probe"][0].diff, 2 * once, rtol=1e-6)


def test_bias_in_place():
    x = _normal((2, 3, 4), seed=6)
    dy = _normal((2, 3, 4), seed=7)
    text = f'type: "Bias" bias_param {{ {UNIFORM} }}'
    apart = build_probe(text, {"x": x})
    inplace = build_probe(text, {"x": x}, tops=["x"])
    inplace.params["probe"][0].data[...] = apart.params["probe"][0].data
    for net, top in ((apart, "top0"), (inplace, "x")):
        net.params["probe"][0].diff[...] = 0
        net.native.forward_from_to(1, 1)
        net.blobs[top].diff[...] = dy
        net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(inplace.blobs["x"].data, apart.blobs["top0"].data, rtol=1e-6)
    np.testing.assert_allclose(inplace.blobs["x"].diff, apart.blobs["x"].diff, rtol=1e-6)
    np.testing.assert_allclose(
        inplace.params["probe"][0].diff, apart.params["probe"][0].diff, rtol=1e-6
    )


# ---- Scale -------------------------------------------------------------------------------


@pytest.mark.parametrize("bias_term", [False, True])
@pytest.mark.parametrize(
    ("shape", "axis", "num_axes", "param_shape"),
    [
        ((2, 3, 4, 5), 1, 1, (3,)),
        ((2, 3, 4), 0, 2, (2, 3)),
        ((2, 3, 4, 5), 1, -1, (3, 4, 5)),
        ((2, 3, 4), 1, 0, ()),
    ],
)
def test_scale_learned(shape, axis, num_axes, param_shape, bias_term):
    x = _normal(shape, seed=8)
    start = 0 if num_axes == 0 else axis
    extra = f"bias_term: true {BIAS_UNIFORM}" if bias_term else ""

    def reference(inp, p):
        y = inp["x"] * _expand(p[0], len(shape), start)
        if bias_term:
            y = y + _expand(p[1], len(shape), start)
        return [y]

    net = check_layer(
        f'type: "Scale" scale_param {{ axis: {axis} num_axes: {num_axes} {UNIFORM} {extra} }}',
        {"x": x},
        reference,
    )
    params = net.params["probe"]
    assert [p.shape for p in params] == [param_shape] * (2 if bias_term else 1)


@pytest.mark.parametrize("bias_term", [False, True])
@pytest.mark.parametrize(
    ("shape", "s_shape", "axis"),
    [((2, 3, 4, 5), (3,), 1), ((2, 3, 4), (2, 3), 0), ((2, 3, 4), (), 1), ((2, 3, 4), (4,), -1)],
)
def test_scale_two_bottoms(shape, s_shape, axis, bias_term):
    x = _normal(shape, seed=9)
    s = _normal(s_shape, seed=10)
    start = 0 if len(s_shape) == 0 else axis % len(shape)
    extra = f"bias_term: true {BIAS_UNIFORM}" if bias_term else ""

    def reference(inp, p):
        y = inp["x"] * _expand(inp["s"], len(shape), start)
        if bias_term:
            y = y + _expand(p[0], len(shape), start)
        return [y]

    net = check_layer(
        f'type: "Scale" scale_param {{ axis: {axis} {extra} }}', {"x": x, "s": s}, reference
    )
    assert len(net.params.get("probe", [])) == (1 if bias_term else 0)


def test_scale_second_bottom_gradient_is_exact():
    x = _normal((2, 3, 4), seed=11)
    s = _normal((3,), seed=12)
    dy = _normal((2, 3, 4), seed=13)
    net = build_probe('type: "Scale"', {"x": x, "s": s})
    net.native.forward_from_to(1, 1)
    net.blobs["top0"].diff[...] = dy
    net.native.backward_from_to(1, 1)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    np.testing.assert_allclose(net.blobs["s"].diff, (dy64 * x64).sum(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(net.blobs["x"].diff, dy64 * s[None, :, None], rtol=1e-6)


def test_scale_default_filler_is_one_and_explicit_filler_is_honoured():
    x = _normal((2, 3, 4), seed=14)
    net = build_probe('type: "Scale" scale_param { bias_term: true }', {"x": x})
    np.testing.assert_array_equal(net.params["probe"][0].data, [1, 1, 1])
    np.testing.assert_array_equal(net.params["probe"][1].data, [0, 0, 0])
    zero = build_probe(
        'type: "Scale" scale_param { filler { type: "constant" value: 0 } }', {"x": x}
    )
    np.testing.assert_array_equal(zero.params["probe"][0].data, [0, 0, 0])


@pytest.mark.parametrize("bias_term", [False, True])
def test_scale_in_place_backward(bias_term):
    x = _normal((2, 3, 4, 5), seed=15)
    dy = _normal((2, 3, 4, 5), seed=16)
    extra = f"bias_term: true {BIAS_UNIFORM}" if bias_term else ""
    text = f'type: "Scale" scale_param {{ {UNIFORM} {extra} }}'
    apart = build_probe(text, {"x": x})
    inplace = build_probe(text, {"x": x}, tops=["x"])
    for mine, theirs in zip(inplace.params["probe"], apart.params["probe"], strict=True):
        mine.data[...] = theirs.data
    for net, top in ((apart, "top0"), (inplace, "x")):
        for p in net.params["probe"]:
            p.diff[...] = 0
        net.native.forward_from_to(1, 1)
        net.blobs[top].diff[...] = dy
        net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(inplace.blobs["x"].data, apart.blobs["top0"].data, rtol=1e-6)
    np.testing.assert_allclose(inplace.blobs["x"].diff, apart.blobs["x"].diff, rtol=1e-6)
    s = apart.params["probe"][0].data.astype(np.float64)
    want_s = (dy.astype(np.float64) * x).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(inplace.params["probe"][0].diff, want_s, rtol=1e-5)
    np.testing.assert_allclose(apart.params["probe"][0].diff, want_s, rtol=1e-5)
    np.testing.assert_allclose(inplace.blobs["x"].diff, dy * s[None, :, None, None], rtol=1e-5)
    if bias_term:
        np.testing.assert_allclose(
            inplace.params["probe"][1].diff, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5
        )


def test_scale_in_place_finite_differences():
    # The probe runs in place (top "x"); the gradient check perturbs the learned scale and
    # compares it with the analytic gradient that used the saved copy of x.
    x = _normal((2, 3, 4), seed=17)
    net = build_probe(f'type: "Scale" scale_param {{ {UNIFORM} }}', {"x": x}, tops=["x"])
    s = net.params["probe"][0].data.astype(np.float64)
    net.params["probe"][0].diff[...] = 0
    net.native.forward_from_to(1, 1)
    y = net.blobs["x"].data.astype(np.float64)
    np.testing.assert_allclose(y, x * s[None, :, None], rtol=1e-6)
    net.blobs["x"].diff[...] = y  # objective 1/2 sum(y^2)
    net.native.backward_from_to(1, 1)
    analytic = net.params["probe"][0].diff.astype(np.float64)
    h = 1e-2
    x64 = x.astype(np.float64)
    for c in range(3):
        plus, minus = s.copy(), s.copy()
        plus[c] += h
        minus[c] -= h
        f = [0.5 * np.sum((x64 * v[None, :, None]) ** 2) for v in (plus, minus)]
        numeric = (f[0] - f[1]) / (2 * h)
        assert abs(analytic[c] - numeric) <= 1e-3 * max(abs(analytic[c]), abs(numeric), 1)


@pytest.mark.parametrize(
    ("text", "inputs"),
    [
        ('type: "Scale"', {"x": (2, 3, 4), "s": (4,)}),
        ('type: "Bias"', {"x": (2, 3, 4), "b": (3, 5)}),
        ('type: "Scale" scale_param { axis: 2 num_axes: 2 }', {"x": (2, 3, 4)}),
        ('type: "Bias" bias_param { axis: 1 }', {"x": (2, 3), "b": (3, 4)}),
    ],
)
def test_shape_errors(text, inputs):
    arrays = {k: np.zeros(v, np.float32) for k, v in inputs.items()}
    with pytest.raises(ShapeError, match="probe"):
        build_probe(text, arrays)


@pytest.mark.parametrize("name", ['scale_bias'])
def test_matches_real_caffe_probe(name):
    """Tops, bottom diffs and parameter diffs equal real Caffe's (shared/anchors/caffe-ref)."""
    check_probe(name)
