"""Reduction (cpp/layers/reduction.cc): SUM, ASUM, SUMSQ and MEAN over every axis from
`axis` on (negative axes too), times coeff, against float64 NumPy, with finite-difference
gradients (ASUM skips the kink at 0), the scalar top of axis 0, real Caffe's SUMSQ probe,
and errors."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import GradientSettings, build_probe, check_layer

from caffeonspark.errors import ShapeError

OPS = {
    "SUM": lambda r: r.sum(axis=1),
    "ASUM": lambda r: np.abs(r).sum(axis=1),
    "SUMSQ": lambda r: (r**2).sum(axis=1),
    "MEAN": lambda r: r.mean(axis=1),
}


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _reference(x, op, axis, coeff):
    axis = axis % x.ndim
    rows = x.reshape(int(np.prod(x.shape[:axis])), -1)
    return (coeff * OPS[op](rows)).reshape(x.shape[:axis])


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(
    ("shape", "axis", "coeff"),
    [((2, 3, 4), 0, 1.0), ((2, 3, 4), 1, -0.5), ((2, 3, 4), 2, 2.0), ((3, 2, 2, 2), -2, 1.5)],
)
def test_reduction(op, shape, axis, coeff):
    x = _normal(shape, seed=1)
    gradient = GradientSettings(kink=0.0, kink_range=0.02) if op == "ASUM" else GradientSettings()
    net = check_layer(
        f'type: "Reduction" reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}',
        {"x": x},
        lambda inp, p: [_reference(inp["x"], op, axis, coeff)],
        gradient=gradient,
    )
    assert net.blobs["top0"].shape == shape[: axis % len(shape)]


def test_defaults_are_sum_over_everything():
    x = _normal((2, 3), seed=2)
    net = check_layer('type: "Reduction"', {"x": x}, lambda inp, p: [np.sum(inp["x"])])
    assert net.blobs["top0"].shape == ()


def test_asum_gradient_at_zero_is_zero():
    x = np.array([[0.0, 1.5, -2.0]], np.float32)
    net = build_probe('type: "Reduction" reduction_param { operation: ASUM axis: 1 }', {"x": x})
    net.native.forward_from_to(1, 1)
    net.blobs["top0"].diff[...] = 3.0
    net.native.backward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["x"].diff, [[0.0, 3.0, -3.0]])


def test_matches_caffe_probe():
    check_probe("reduction_sumsq")


def test_axis_out_of_range_names_the_layer():
    with pytest.raises(ShapeError, match="probe.*reduction_param.axis 3"):
        build_probe('type: "Reduction" reduction_param { axis: 3 }', {"x": _normal((2, 3, 4))})

