"""Weight fillers (cpp/core/filler.h), reached the way nets reach them: a layer's
weight_filler / bias_filler when the net is built. Each is checked against Caffe's
definition: exact values where the filler is deterministic, and sample statistics with
tolerances of 6 standard errors (or exact bounds) where it is random.

Fan-in = count / shape(0), fan-out = count / shape(1): for InnerProduct weights (N, K)
these are K and N; for Convolution weights (O, I, kh, kw) I*kh*kw and O*kh*kw."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine
from caffeonspark._native import _engine
from caffeonspark.errors import ConfigError, ShapeError
from caffeonspark.proto import caffe_pb2

Z = 6.0  # standard errors of slack for sample statistics


def filled(layer_text: str, in_shape=(1, 8), seed: int = 1701) -> list[np.ndarray]:
    """Build Input -> the layer (seeded) and return float64 copies of its parameters."""
    net = caffe_pb2.NetParameter(name="fill")
    feeder = net.layer.add(name="in", type="Input", top=["x"])
    feeder.input_param.shape.add().dim.extend(in_shape)
    layer = net.layer.add()
    text_format.Parse(layer_text, layer)
    layer.name = "probe"
    layer.bottom.append("x")
    layer.top.append("y")
    _engine.set_random_seed(seed)
    built = engine.Net(net, phase=engine.TRAIN)
    return [p.data.astype(np.float64) for p in built.params["probe"]]


def ip(num_output: int, weight: str, bias: str = 'type: "constant"', k: int = 8):
    return filled(
        f'type: "InnerProduct" inner_product_param {{ num_output: {num_output} '
        f"weight_filler {{ {weight} }} bias_filler {{ {bias} }} }}",
        in_shape=(1, k),
    )


def check_mean_std(x: np.ndarray, mean: float, std: float) -> None:
    n = x.size
    assert abs(x.mean() - mean) < Z * std / np.sqrt(n), (x.mean(), mean)
    # std of the sample std of a gaussian-like variable ~ std / sqrt(2n)
    assert abs(x.std() - std) < Z * std / np.sqrt(2 * n), (x.std(), std)


def test_constant_weights_and_default_bias():
    w, b = ip(7, 'type: "constant" value: 2.5', 'type: "constant" value: -0.75')
    np.testing.assert_array_equal(w, np.full((7, 8), 2.5))
    np.testing.assert_array_equal(b, np.full(7, -0.75))
    # FillerParameter defaults: type constant, value 0
    w, b = ip(3, "", "")
    assert not w.any() and not b.any()


def test_uniform_bounds_mean_and_variance():
    lo, hi = -2.0, 5.0
    w, _ = ip(400, f'type: "uniform" min: {lo} max: {hi}', k=500)
    assert w.min() >= lo and w.max() <= hi
    width = hi - lo
    assert w.min() < lo + 1e-3 * width and w.max() > hi - 1e-3 * width  # 2e5 draws reach the ends
    std = width / np.sqrt(12)
    assert abs(w.mean() - (lo + hi) / 2) < Z * std / np.sqrt(w.size)
    # variance of U(a,b) is width^2/12; var of the sample variance is (m4 - s^4)/n, m4 = 9/5 s^4
    var_se = std**2 * np.sqrt(0.8 / w.size)
    assert abs(w.var() - std**2) < Z * var_se


def test_gaussian_mean_and_std():
    w, b = ip(400, 'type: "gaussian" mean: 1.0 std: 3.0', 'type: "gaussian" std: 0.5', k=500)
    check_mean_std(w, 1.0, 3.0)
    # fraction within one std of a normal: 0.6827
    inside = np.mean(np.abs(w - 1.0) < 3.0)
    assert abs(inside - 0.682689) < Z * np.sqrt(0.682689 * 0.317311 / w.size)
    assert abs(b.mean()) < Z * 0.5 / np.sqrt(b.size)


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    # Caffe: each weight is kept with probability sparse / shape(0)
    w, _ = ip(100, 'type: "gaussian" std: 1.0 sparse: 25', k=2000)
    p = 25 / 100
    kept = np.mean(w != 0)
    assert abs(kept - p) < Z * np.sqrt(p * (1 - p) / w.size)
    check_mean_std(w[w != 0], 0.0, 1.0)


@pytest.mark.parametrize(
    ("norm", "n"),
    [("", 500), ("variance_norm: FAN_IN", 500), ("variance_norm: FAN_OUT", 200),
     ("variance_norm: AVERAGE", 350)],
)
def test_xavier_inner_product(norm, n):
    w, _ = ip(200, f'type: "xavier" {norm}', k=500)
    limit = np.sqrt(3.0 / n)
    assert np.abs(w).max() <= limit * (1 + 1e-6)
    assert np.abs(w).max() > 0.999 * limit
    # U(-a, a) has variance a^2/3 = 1/n
    var_se = (1.0 / n) * np.sqrt(0.8 / w.size)
    assert abs(w.var() - 1.0 / n) < Z * var_se
    assert abs(w.mean()) < Z * np.sqrt(1.0 / n / w.size)


def test_xavier_convolution_fans():
    # weights (32, 16, 3, 3): fan_in 16*9 = 144, fan_out 32*9 = 288
    for norm, n in (("FAN_IN", 144), ("FAN_OUT", 288)):
        (w,) = filled(
            f'type: "Convolution" convolution_param {{ num_output: 32 kernel_size: 3 '
            f'bias_term: false weight_filler {{ type: "xavier" variance_norm: {norm} }} }}',
            in_shape=(1, 16, 5, 5),
        )
        limit = np.sqrt(3.0 / n)
        assert w.shape == (32, 16, 3, 3)
        assert limit * 0.99 < np.abs(w).max() <= limit * (1 + 1e-6)


@pytest.mark.parametrize(("norm", "n"), [("", 144), ("variance_norm: FAN_OUT", 288),
                                         ("variance_norm: AVERAGE", 216)])
def test_msra_convolution(norm, n):
    # weights (32, 16, 3, 3), eight seeds pooled: 36864 draws
    layer = ('type: "Convolution" convolution_param { num_output: 32 kernel_size: 3 '
             f'bias_term: false weight_filler {{ type: "msra" {norm} }} }}')
    w = np.concatenate([filled(layer, in_shape=(1, 16, 5, 5), seed=s)[0].ravel()
                        for s in range(8)])
    check_mean_std(w, 0.0, np.sqrt(2.0 / n))


def test_positive_unitball_rows_sum_to_one():
    w, _ = ip(50, 'type: "positive_unitball"', k=40)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(axis=1), np.ones(50), rtol=1e-5)
    # before normalising each entry is U(0, 1): rows are not all equal
    assert w.std() > 0.1 / 40


def bilinear_kernel(k: int) -> np.ndarray:
    """Caffe's bilinear upsampling kernel, from its definition: 1-D weights fall off
    linearly by 1/f from the kernel centre (k-1)/2, with f = ceil(k/2)."""
    f = np.ceil(k / 2.0)
    one_d = 1.0 - np.abs(np.arange(k) - (k - 1) / 2.0) / f
    return np.outer(one_d, one_d)


def test_bilinear_closed_form():
    np.testing.assert_allclose(bilinear_kernel(4)[0], [0.0625, 0.1875, 0.1875, 0.0625])
    for k in (2, 3, 4, 5, 6, 8):
        (w,) = filled(
            f'type: "Deconvolution" convolution_param {{ num_output: 3 group: 3 kernel_size: {k} '
            'stride: 2 bias_term: false weight_filler { type: "bilinear" } }',
            in_shape=(1, 3, 4, 4),
        )
        assert w.shape == (3, 1, k, k)
        for c in range(3):
            np.testing.assert_allclose(w[c, 0], bilinear_kernel(k), rtol=1e-6, atol=1e-7)


def test_bilinear_deconvolution_upsamples_a_ramp_exactly():
    # Factor-2 upsampling (kernel 4, stride 2, pad 1) of a linear ramp is a linear ramp at
    # half the slope away from the border: the property the filler exists for.
    (w,) = filled(
        'type: "Deconvolution" convolution_param { num_output: 1 kernel_size: 4 stride: 2 '
        'pad: 1 bias_term: false weight_filler { type: "bilinear" } }',
        in_shape=(1, 1, 6, 6),
    )
    net = caffe_pb2.NetParameter(name="up")
    net.layer.add(name="in", type="Input", top=["x"]).input_param.shape.add().dim.extend(
        [1, 1, 6, 6])
    text_format.Parse(
        'name: "up" type: "Deconvolution" bottom: "x" top: "y" convolution_param { '
        "num_output: 1 kernel_size: 4 stride: 2 pad: 1 bias_term: false "
        'weight_filler { type: "bilinear" } }',
        net.layer.add(),
    )
    built = engine.Net(net, phase=engine.TEST)
    np.testing.assert_allclose(built.params["up"][0].data, w)
    ramp = np.tile(np.arange(6, dtype=np.float32), (6, 1))  # value = column index
    y = built.forward(x=ramp[None, None])["y"][0, 0].astype(np.float64)
    assert y.shape == (12, 12)
    inner = y[1:-1, 1:-1]
    # output column j sits at input coordinate (j - 0.5) / 2
    expected = np.tile((np.arange(1, 11) - 0.5) / 2.0, (10, 1))
    np.testing.assert_allclose(inner, expected, atol=1e-5)


def test_seed_makes_fills_repeatable():
    a, _ = ip(20, 'type: "gaussian" std: 1.0')
    b, _ = ip(20, 'type: "gaussian" std: 1.0')
    np.testing.assert_array_equal(a, b)
    c = filled('type: "InnerProduct" inner_product_param { num_output: 20 '
               'weight_filler { type: "gaussian" std: 1.0 } }', seed=99)[0]
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("filler", "error", "message"),
    [
        ('type: "foo"', ConfigError, "unknown filler type 'foo'"),
        ('type: "uniform" sparse: 1', ConfigError, "only the gaussian filler accepts 'sparse'"),
        ('type: "bilinear"', ShapeError, "bilinear filler needs a 4-D tensor with square kernels"),
        ('type: "xavier"', None, None),  # fine: the bad one is the bias filler below
    ],
)
def test_bad_fillers_name_the_layer_and_the_field(filler, error, message):
    if error is None:
        with pytest.raises(ConfigError, match=r"layer 'probe' \(InnerProduct\).*bias_filler: "
                           "unknown filler type 'bar'"):
            ip(2, filler, bias='type: "bar"')
        return
    with pytest.raises(error, match=r"layer 'probe' \(InnerProduct\).*weight_filler: " + message):
        ip(2, filler)
