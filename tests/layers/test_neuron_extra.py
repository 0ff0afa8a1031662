"""Power, Exp, Log and PReLU (cpp/layers/neuron_extra.cc): forward against float64 NumPy,
gradients by finite differences (step 1e-2, threshold 1e-3; PReLU with kink 0 +- 0.01 and
its slope gradient), in-place runs, PReLU's default slope 0.25 and accumulation into the
slope gradient, configuration errors, and Caffe's power and prelu probes."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import GradientSettings, build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError

KINK = GradientSettings(step=1e-2, threshold=1e-3, kink=0.0, kink_range=0.01)


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _positive(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, size=shape).astype(np.float32)


POWER_CASES = [
    # (power, scale, shift, input maker)
    (2.0, 0.5, 3.0, _normal),
    (1.0, -2.0, 0.5, _normal),
    (3.0, 1.0, 0.0, _normal),
    (0.5, 1.5, 0.2, _positive),
    (-1.5, 1.0, 1.0, _positive),
    (0.0, 2.0, 1.0, _normal),
    (2.5, 0.0, 2.0, _normal),
]


@pytest.mark.parametrize("shape", [(2, 3, 4), (5,)])
@pytest.mark.parametrize(("power", "scale", "shift", "make"), POWER_CASES)
def test_power(power, scale, shift, make, shape):
    x = make(shape, seed=1)
    check_layer(
        f'type: "Power" power_param {{ power: {power} scale: {scale} shift: {shift} }}',
        {"x": x},
        lambda inp, p: [(shift + scale * inp["x"]) ** power],
    )


@pytest.mark.parametrize(
    ("base", "scale", "shift"), [(-1, 1, 0), (2, 0.5, 1), (-1, -0.7, 0.3), (0.5, 1, -1)]
)
def test_exp(base, scale, shift):
    x = _normal((2, 3, 4), seed=2)
    ln_base = 1.0 if base == -1 else np.log(base)
    check_layer(
        f'type: "Exp" exp_param {{ base: {base} scale: {scale} shift: {shift} }}',
        {"x": x},
        lambda inp, p: [np.exp(ln_base * (shift + scale * inp["x"]))],
    )


@pytest.mark.parametrize(
    ("base", "scale", "shift"), [(-1, 1, 0), (10, 2, 0.5), (2, 0.5, 1), (-1, 3, 0.1)]
)
def test_log(base, scale, shift):
    x = _positive((2, 3, 4), seed=3)
    ln_base = 1.0 if base == -1 else np.log(base)
    check_layer(
        f'type: "Log" log_param {{ base: {base} scale: {scale} shift: {shift} }}',
        {"x": x},
        lambda inp, p: [np.log(shift + scale * inp["x"]) / ln_base],
    )


@pytest.mark.parametrize(
    "text",
    [
        'type: "Exp" exp_param { base: -2 }',
        'type: "Exp" exp_param { base: 0 }',
        'type: "Log" log_param { base: 1 }',
        'type: "Log" log_param { base: -3 }',
    ],
)
def test_bad_base_is_a_config_error(text):
    with pytest.raises(ConfigError, match="probe.*base"):
        build_probe(text, {"x": np.ones((2, 2), np.float32)})


@pytest.mark.parametrize(
    "text",
    [
        'type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }',
        'type: "Power" power_param { power: 0.5 }',
        'type: "Exp" exp_param { base: 3 scale: 0.5 }',
        'type: "Log" log_param { shift: 0.5 }',
    ],
)
def test_in_place_matches_out_of_place(text):
    x = _positive((3, 4), seed=4)
    dy = _normal((3, 4), seed=5)
    apart = build_probe(text, {"x": x})
    apart.native.forward_from_to(1, 1)
    apart.blobs["top0"].diff[...] = dy
    apart.native.backward_from_to(1, 1)
    inplace = build_probe(text, {"x": x}, tops=["x"])
    inplace.native.forward_from_to(1, 1)
    np.testing.assert_allclose(inplace.blobs["x"].data, apart.blobs["top0"].data, rtol=1e-6)
    inplace.blobs["x"].diff[...] = dy
    inplace.native.backward_from_to(1, 1)
    np.testing.assert_allclose(inplace.blobs["x"].diff, apart.blobs["x"].diff, rtol=1e-6)


# ---- PReLU ---------------------------------------------------------------------------------


def _prelu(x, slopes):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    a = np.reshape(slopes, shape) if slopes.size > 1 else slopes.reshape(())
    return np.maximum(x, 0) + a * np.minimum(x, 0)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4), (2, 5, 3)])
@pytest.mark.parametrize("shared", [False, True])
def test_prelu(shape, shared):
    x = _normal(shape, seed=6)
    net = check_layer(
        f'type: "PReLU" prelu_param {{ channel_shared: {str(shared).lower()} '
        'filler { type: "uniform" min: 0.1 max: 0.6 } }',
        {"x": x},
        lambda inp, p: [_prelu(inp["x"], p[0])],
        gradient=KINK,
    )
    assert net.params["probe"][0].shape == ((1,) if shared else (shape[1],))


def test_prelu_default_slope_is_a_quarter_and_filler_zero_is_honoured():
    x = _normal((2, 3, 4), seed=7)
    net = build_probe('type: "PReLU"', {"x": x})
    np.testing.assert_array_equal(net.params["probe"][0].data, [0.25, 0.25, 0.25])
    zero = build_probe(
        'type: "PReLU" prelu_param { filler { type: "constant" value: 0 } }', {"x": x}
    )
    np.testing.assert_array_equal(zero.params["probe"][0].data, [0, 0, 0])


def test_prelu_slope_gradient_accumulates_and_in_place_matches():
    x = _normal((2, 3, 4), seed=8)
    dy = _normal((2, 3, 4), seed=9)
    apart = build_probe('type: "PReLU"', {"x": x})
    apart.native.forward_from_to(1, 1)
    apart.blobs["top0"].diff[...] = dy
    apart.native.backward_from_to(1, 1)
    once = apart.params["probe"][0].diff.copy()
    want = np.sum(np.where(x <= 0, dy.astype(np.float64) * x, 0), axis=(0, 2))
    np.testing.assert_allclose(once, want, rtol=1e-5)
    apart.native.backward_from_to(1, 1)
    np.testing.assert_allclose(apart.params["probe"][0].diff, 2 * once, rtol=1e-6)
    inplace = build_probe('type: "PReLU"', {"x": x}, tops=["x"])
    inplace.native.forward_from_to(1, 1)
    inplace.blobs["x"].diff[...] = dy
    inplace.native.backward_from_to(1, 1)
    np.testing.assert_allclose(inplace.blobs["x"].diff, apart.blobs["x"].diff, rtol=1e-6)
    np.testing.assert_allclose(inplace.params["probe"][0].diff, once, rtol=1e-6)


def test_prelu_needs_two_axes_and_fixed_channels():
    with pytest.raises(ShapeError, match="probe"):
        build_probe('type: "PReLU"', {"x": np.ones((4,), np.float32)})
    net = build_probe('type: "PReLU"', {"x": np.ones((2, 3), np.float32)})
    net.blobs["x"].reshape(2, 4)
    with pytest.raises(ShapeError, match="probe.*channels"):
        net.reshape()


# ---- Caffe probes --------------------------------------------------------------------------


def test_power_matches_caffe():
    check_probe("power")


def test_prelu_matches_caffe():
    check_probe("prelu")
