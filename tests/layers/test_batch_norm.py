"""BatchNorm (cpp/layers/batch_norm.cc): batch-statistics forward against float64 NumPy,
backward against the closed form and against finite differences of a weighted objective
(1/2 sum y^2 is constant under batch normalisation, so the plain check would be empty), the
running sums over two forward passes (NumPy, and one pass against real Caffe), TEST-phase
global statistics (including a zero scale factor), the use_global_stats override, in-place
runs, the statistics' lr_mult 0 (the solver leaves them alone), .caffemodel round trip and
errors."""

import numpy as np
import pytest
from caffe_ref import caffe_ref_dir, check_probe
from google.protobuf import text_format
from layer_check import build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError, ShapeError
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver

EPS = 1e-5


def _normal(shape, seed=0, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (shift + scale * rng.normal(size=shape)).astype(np.float32)


def _axes(x):
    """The axes statistics run over: N and everything after the channel axis."""
    return (0,) if x.ndim == 1 else (0,) + tuple(range(2, x.ndim))


def _channel_view(v, x):
    v = np.asarray(v, dtype=np.float64)
    return v.reshape((-1,) if x.ndim == 1 else (1, -1) + (1,) * (x.ndim - 2))


def _batch_stats(x):
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=_axes(x))
    var = ((x - _channel_view(mean, x)) ** 2).mean(axis=_axes(x))
    return mean, var


def _normalise(x, mean, var, eps=EPS):
    x = np.asarray(x, dtype=np.float64)
    return (x - _channel_view(mean, x)) / np.sqrt(_channel_view(var, x) + eps)


def _batch_forward(x, eps=EPS):
    mean, var = _batch_stats(x)
    return _normalise(x, mean, var, eps)


def _batch_backward(x, dy, eps=EPS):
    """dx = (dy - mean(dy) - mean(dy y) y) / sqrt(var + eps), means per channel."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    _, var = _batch_stats(x)
    y = _batch_forward(x, eps)
    mean_dy = _channel_view(dy.mean(axis=_axes(x)), x)
    mean_dy_y = _channel_view((dy * y).mean(axis=_axes(x)), x)
    return (dy - mean_dy - mean_dy_y * y) / np.sqrt(_channel_view(var, x) + eps)


def _run(net, dy=None, top="top0"):
    net.native.forward_from_to(1, 1)
    if dy is not None:
        net.blobs[top].diff[...] = dy
        net.native.backward_from_to(1, 1)


def _weighted_fd(net, name, weights, step=1e-2):
    """Central differences of sum(weights * y) with respect to input `name` (float64)."""
    data = net.blobs[name].data.reshape(-1)
    grad = np.zeros(data.size)
    for i in range(data.size):
        x = float(data[i])
        values = []
        for h in (step, -step):
            data[i] = x + h
            net.native.forward_from_to(1, 1)
            values.append(float(np.sum(weights * net.blobs["top0"].data.astype(np.float64))))
        data[i] = x
        grad[i] = (values[0] - values[1]) / (2 * step)
    return grad.reshape(net.blobs[name].data.shape)


def _stats(net, layer="probe"):
    return [p.data.astype(np.float64).copy() for p in net.params[layer]]


# ---- TRAIN: batch statistics -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (2, 3, 4), (6, 2), (7,)])
def test_train_forward_and_backward(shape):
    x = _normal(shape, seed=1, scale=2.0, shift=0.5)
    dy = _normal(shape, seed=2)
    net = check_layer(
        'type: "BatchNorm"', {"x": x}, lambda inp, p: [_batch_forward(inp["x"])], gradient=None
    )
    channels = 1 if len(shape) == 1 else shape[1]
    assert [p.shape for p in net.params["probe"]] == [(channels,), (channels,), (1,)]
    net.blobs["top0"].diff[...] = dy
    net.native.backward_from_to(1, 1)
    analytic = net.blobs["x"].diff.astype(np.float64)
    np.testing.assert_allclose(analytic, _batch_backward(x, dy), rtol=1e-4, atol=1e-5)
    numeric = _weighted_fd(net, "x", dy.astype(np.float64))
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1.0)
    assert np.max(np.abs(analytic - numeric) / scale) < 2e-3


def test_running_sums_over_two_forward_passes():
    maf = 0.9
    x1 = _normal((3, 2, 4), seed=3, scale=1.5, shift=1.0)
    x2 = _normal((3, 2, 4), seed=4, scale=0.5, shift=-2.0)
    net = build_probe(
        f'type: "BatchNorm" batch_norm_param {{ moving_average_fraction: {maf} }}', {"x": x1}
    )
    for blob in net.params["probe"]:
        np.testing.assert_array_equal(blob.data, 0)
    m = 3 * 4
    correction = m / (m - 1)
    mean1, var1 = _batch_stats(x1)
    _run(net)
    s, b0, b1 = _stats(net)[2], _stats(net)[0], _stats(net)[1]
    np.testing.assert_allclose(s, [1.0])
    np.testing.assert_allclose(b0, mean1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b1, correction * var1, rtol=1e-5)
    net.blobs["x"].data[...] = x2
    mean2, var2 = _batch_stats(x2)
    _run(net)
    b0, b1, s = _stats(net)
    np.testing.assert_allclose(s, [maf * 1 + 1], rtol=1e-6)
    np.testing.assert_allclose(b0, maf * mean1 + mean2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b1, maf * correction * var1 + correction * var2, rtol=1e-5)
    # The output always uses the batch's own statistics in TRAIN.
    np.testing.assert_allclose(net.blobs["top0"].data, _batch_forward(x2), rtol=1e-4, atol=1e-5)


def test_matches_caffe_probe():
    check_probe("batchnorm_train")


def test_running_sums_after_one_pass_match_caffe():
    """Caffe's probe stores the three blobs after its one forward from zero."""
    root = caffe_ref_dir()
    ref = np.load(root / "probe_batchnorm_train.npz")
    net = engine.Net(str(root / "probe_batchnorm_train.prototxt"), phase=engine.TRAIN)
    net.blobs["x"].data[...] = ref["blob/x"]
    net.forward()
    for i, blob in enumerate(net.params["l"]):
        want = ref[f"param/l/{i}"].astype(np.float64)
        np.testing.assert_allclose(blob.data, want, rtol=1e-5, atol=1e-6 * np.max(np.abs(want)))


# ---- global statistics --------------------------------------------------------------------


def _set_stats(net, mean_sum, var_sum, scale, layer="probe"):
    b0, b1, s = net.params[layer]
    b0.data[...] = mean_sum
    b1.data[...] = var_sum
    s.data[...] = scale


def test_test_phase_uses_global_stats_and_leaves_them_alone():
    x = _normal((2, 3, 4, 2), seed=5)
    mean_sum = np.array([0.5, -1.0, 2.0], np.float32)
    var_sum = np.array([2.0, 0.5, 7.5], np.float32)
    scale = 2.5
    text = 'type: "BatchNorm"'
    net = build_probe(text, {"x": x}, phase=caffe_pb2.TEST)
    _set_stats(net, mean_sum, var_sum, scale)

    def reference(inp, p):
        return [_normalise(inp["x"], mean_sum / scale, var_sum / scale)]

    dy = _normal(x.shape, seed=6)
    _run(net, dy)
    np.testing.assert_allclose(
        net.blobs["top0"].data, reference({"x": x}, [])[0], rtol=1e-5, atol=1e-6
    )
    inv_std = 1 / np.sqrt(var_sum.astype(np.float64) / scale + EPS)
    np.testing.assert_allclose(net.blobs["x"].diff, dy * _channel_view(inv_std, x), rtol=1e-5)
    np.testing.assert_array_equal(net.params["probe"][0].data, mean_sum)
    np.testing.assert_array_equal(net.params["probe"][1].data, var_sum)
    np.testing.assert_array_equal(net.params["probe"][2].data, [scale])


def test_global_stats_gradient_by_finite_differences():
    x = _normal((2, 3, 3), seed=7)
    net = check_layer(
        'type: "BatchNorm" batch_norm_param { use_global_stats: true }',
        {"x": x},
        lambda inp, p: [_normalise(inp["x"], np.zeros(3), np.zeros(3))],
        check_params=False,
    )
    assert net.params["probe"][2].data[0] == 0  # zero scale factor: mean 0, variance 0


def test_zero_scale_factor_reads_as_zero_statistics():
    x = _normal((2, 2, 3), seed=8)
    net = build_probe('type: "BatchNorm"', {"x": x}, phase=caffe_pb2.TEST)
    _set_stats(net, [5.0, 5.0], [9.0, 9.0], 0.0)
    _run(net)
    np.testing.assert_allclose(net.blobs["top0"].data, x / np.sqrt(EPS), rtol=1e-5)


def test_explicit_use_global_stats_overrides_the_phase():
    x = _normal((4, 2, 3), seed=9, shift=3.0)
    train_global = build_probe(
        'type: "BatchNorm" batch_norm_param { use_global_stats: true }', {"x": x}
    )
    _set_stats(train_global, [1.0, 2.0], [4.0, 9.0], 1.0)
    _run(train_global)
    np.testing.assert_allclose(
        train_global.blobs["top0"].data, _normalise(x, [1.0, 2.0], [4.0, 9.0]), rtol=1e-5
    )
    np.testing.assert_array_equal(train_global.params["probe"][2].data, [1.0])
    test_batch = build_probe(
        'type: "BatchNorm" batch_norm_param { use_global_stats: false }',
        {"x": x},
        phase=caffe_pb2.TEST,
    )
    _run(test_batch)
    np.testing.assert_allclose(
        test_batch.blobs["top0"].data, _batch_forward(x), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_array_equal(test_batch.params["probe"][2].data, [1.0])


@pytest.mark.parametrize("phase", [caffe_pb2.TRAIN, caffe_pb2.TEST])
def test_in_place_matches_separate_top(phase):
    x = _normal((3, 2, 4), seed=10, shift=1.0)
    dy = _normal((3, 2, 4), seed=11)
    apart = build_probe('type: "BatchNorm"', {"x": x}, phase=phase)
    inplace = build_probe('type: "BatchNorm"', {"x": x}, phase=phase, tops=["x"])
    for net in (apart, inplace):
        _set_stats(net, [0.5, -0.5], [2.0, 3.0], 2.0)
    _run(apart, dy)
    _run(inplace, dy, top="x")
    np.testing.assert_allclose(inplace.blobs["x"].data, apart.blobs["top0"].data, rtol=1e-6)
    np.testing.assert_allclose(inplace.blobs["x"].diff, apart.blobs["x"].diff, rtol=1e-5, atol=1e-6)


# ---- the statistics are not learned ----------------------------------------------------------

BN_NET = """
name: "bn"
layer { name: "in" type: "Input" top: "x" top: "t"
  input_param { shape { dim: 4 dim: 2 dim: 3 } shape { dim: 4 dim: 2 dim: 3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" %s }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def _bn_net(extra=""):
    net = caffe_pb2.NetParameter()
    text_format.Parse(BN_NET % extra, net)
    return net


def test_statistics_get_lr_mult_zero_and_sgd_leaves_them_alone():
    maf = 0.999
    param = caffe_pb2.SolverParameter()
    text_format.Parse(
        'type: "SGD" base_lr: 0.5 momentum: 0.9 weight_decay: 0.1 lr_policy: "fixed" '
        "max_iter: 3 random_seed: 1701",
        param,
    )
    param.net_param.CopyFrom(_bn_net())
    solver = Solver(param)
    net = solver.net
    ids = [net.native.learnable_param_id(net.layer_names.index("bn"), i) for i in range(3)]
    assert [net.native.params_lr[i] for i in ids] == [0.0, 0.0, 0.0]
    x = _normal((4, 2, 3), seed=12, shift=2.0)
    net.blobs["x"].data[...] = x
    net.blobs["t"].data[...] = _normal((4, 2, 3), seed=13)
    solver.step(2)
    mean, var = _batch_stats(x)
    m = 4 * 3
    b0, b1, s = _stats(net, "bn")
    np.testing.assert_allclose(s, [maf + 1], rtol=1e-6)
    np.testing.assert_allclose(b0, (maf + 1) * mean, rtol=1e-5)
    np.testing.assert_allclose(b1, (maf + 1) * m / (m - 1) * var, rtol=1e-5)


def test_upgraded_three_param_specs_are_accepted():
    three = "param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 }"
    net = engine.Net(_bn_net(three), phase=engine.TRAIN)
    ids = [net.native.learnable_param_id(1, i) for i in range(3)]
    assert [net.native.params_lr[i] for i in ids] == [0.0, 0.0, 0.0]


def test_learned_statistics_are_a_config_error():
    with pytest.raises(ConfigError, match=r"'bn'.*param 1 has lr_mult 1"):
        engine.Net(_bn_net("param { lr_mult: 0 } param { lr_mult: 1 }"), phase=engine.TRAIN)


def test_statistics_round_trip_through_a_caffemodel(tmp_path):
    net = engine.Net(_bn_net(), phase=engine.TRAIN)
    net.blobs["x"].data[...] = _normal((4, 2, 3), seed=14, shift=1.0)
    net.forward()
    net.forward()
    saved = _stats(net, "bn")
    assert saved[2][0] > 1
    path = tmp_path / "bn.caffemodel"
    net.save(path)
    loaded = engine.Net(_bn_net(), phase=engine.TEST)
    loaded.copy_from(path)
    for got, want in zip(_stats(loaded, "bn"), saved, strict=True):
        np.testing.assert_array_equal(got, want)


def test_channel_count_change_is_a_shape_error():
    net = build_probe('type: "BatchNorm"', {"x": _normal((2, 3, 4))})
    net.blobs["x"].reshape(2, 4, 4)
    with pytest.raises(ShapeError, match="probe.*4 channels.*3"):
        net.reshape()
