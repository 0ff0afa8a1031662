"""Eltwise (cpp/layers/eltwise.cc): SUM with and without coeffs, PROD with both gradient
forms, MAX with Caffe's tie rule (bottom 1 wins a tie with bottom 0, later bottoms need to be
strictly greater) and gradient to the winner only; forward against NumPy, gradients by finite
differences (step 1e-2, threshold 1e-3), configuration and shape errors."""

import numpy as np
import pytest
from layer_check import build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError

SHAPES = [(2, 3, 4), (5,), (2, 3, 2, 2)]


def _inputs(shape, count, seed=0):
    rng = np.random.default_rng(seed)
    return {f"x{i}": rng.normal(size=shape).astype(np.float32) for i in range(count)}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("coeffs", [None, (1.0, -2.0), (0.5, 2.0, -1.5)])
def test_sum(shape, coeffs):
    count = 2 if coeffs is None else len(coeffs)
    weights = coeffs or (1.0,) * count
    text = " ".join(f"coeff: {c}" for c in coeffs or ())
    check_layer(
        f'type: "Eltwise" eltwise_param {{ operation: SUM {text} }}',
        _inputs(shape, count, seed=len(shape)),
        lambda inp, p: [sum(w * x for w, x in zip(weights, inp.values(), strict=True))],
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("stable", [True, False])
def test_prod(shape, count, stable):
    inputs = _inputs(shape, count, seed=count)
    if not stable:  # y / x_i needs inputs away from zero
        inputs = {
            k: np.where(v >= 0, v + 0.5, v - 0.5).astype(np.float32) for k, v in inputs.items()
        }
    check_layer(
        f'type: "Eltwise" eltwise_param {{ operation: PROD stable_prod_grad: {str(stable).lower()} }}',
        inputs,
        lambda inp, p: [np.prod(np.stack(list(inp.values())), axis=0)],
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("count", [2, 3, 4])
def test_max(shape, count):
    # Distinct values 0.1 apart, so the finite-difference step never changes the winner.
    rng = np.random.default_rng(count)
    n = int(np.prod(shape))
    values = (rng.permutation(n * count) * 0.1 - 0.05 * n * count).astype(np.float32)
    inputs = {f"x{i}": values[i * n : (i + 1) * n].reshape(shape) for i in range(count)}
    check_layer(
        'type: "Eltwise" eltwise_param { operation: MAX }',
        inputs,
        lambda inp, p: [np.max(np.stack(list(inp.values())), axis=0)],
    )


def test_max_ties_follow_caffe():
    # Element 0: x0 == x1 -> bottom 1 wins. Element 1: x0 == x1 == x2 -> bottom 1 (bottom 2
    # is not strictly greater). Element 2: x2 ties the running max -> stays with bottom 0.
    # Element 3: x2 strictly greater -> bottom 2.
    x0 = np.array([1.0, 2.0, 5.0, 0.0], np.float32)
    x1 = np.array([1.0, 2.0, 4.0, 0.0], np.float32)
    x2 = np.array([0.0, 2.0, 5.0, 3.0], np.float32)
    net = build_probe(
        'type: "Eltwise" eltwise_param { operation: MAX }', {"x0": x0, "x1": x1, "x2": x2}
    )
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["top0"].data, [1, 2, 5, 3])
    net.blobs["top0"].diff[...] = [10, 20, 30, 40]
    net.native.backward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["x0"].diff, [0, 0, 30, 0])
    np.testing.assert_array_equal(net.blobs["x1"].diff, [10, 20, 0, 0])
    np.testing.assert_array_equal(net.blobs["x2"].diff, [0, 0, 0, 40])


def test_prod_stable_gradient_at_zero():
    x0 = np.array([0.0, 2.0], np.float32)
    x1 = np.array([3.0, 0.0], np.float32)
    net = build_probe('type: "Eltwise" eltwise_param { operation: PROD }', {"x0": x0, "x1": x1})
    net.native.forward_from_to(1, 1)
    net.blobs["top0"].diff[...] = 1.0
    net.native.backward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["x0"].diff, [3, 0])
    np.testing.assert_array_equal(net.blobs["x1"].diff, [0, 2])


@pytest.mark.parametrize(
    ("text", "count", "match"),
    [
        ("operation: SUM coeff: 1", 2, "one value per bottom"),
        ("operation: SUM coeff: 1 coeff: 2 coeff: 3", 2, "one value per bottom"),
        ("operation: PROD coeff: 1 coeff: 2", 2, "SUM only"),
        ("operation: MAX coeff: 1 coeff: 2", 2, "SUM only"),
    ],
)
def test_coeff_errors(text, count, match):
    with pytest.raises(ConfigError, match=f"probe.*{match}"):
        build_probe(f'type: "Eltwise" eltwise_param {{ {text} }}', _inputs((2, 3), count))


def test_shape_mismatch_names_layer_and_both_shapes():
    inputs = {"a": np.zeros((2, 3), np.float32), "b": np.zeros((3, 2), np.float32)}
    with pytest.raises(ShapeError, match=r"probe.*\(3, 2\).*\(2, 3\)"):
        build_probe('type: "Eltwise"', inputs)


def test_one_bottom_and_in_place_are_refused():
    with pytest.raises(ConfigError, match="probe.*at least 2"):
        build_probe('type: "Eltwise"', _inputs((2, 3), 1))
    with pytest.raises(ConfigError, match="probe.*in place"):
        build_probe('type: "Eltwise"', _inputs((2, 3), 2), tops=["x0"])
