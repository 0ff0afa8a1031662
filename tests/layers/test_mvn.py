"""MVN (cpp/layers/mvn.cc): forward against float64 NumPy for every combination of
normalize_variance and across_channels and for 2-D to 4-D inputs, eps added to the standard
deviation (not the variance), backward against Caffe's closed form and finite differences
of a weighted objective (1/2 sum y^2 is flat under variance normalisation), real Caffe's
across-channels probe, and in-place runs."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import build_probe, check_layer


def _normal(shape, seed=0, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (shift + scale * rng.normal(size=shape)).astype(np.float32)


def _rows(x, across):
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0] if across else x.shape[0] * (x.shape[1] if x.ndim > 1 else 1)
    return x.reshape(n, -1)


def _forward(x, variance=True, across=False, eps=1e-9):
    rows = _rows(x, across)
    centred = rows - rows.mean(axis=1, keepdims=True)
    if variance:
        centred = centred / (np.sqrt((centred**2).mean(axis=1, keepdims=True)) + eps)
    return centred.reshape(np.shape(x))


def _backward(x, dy, variance=True, across=False, eps=1e-9):
    rows_dy = _rows(dy, across)
    if not variance:
        return (rows_dy - rows_dy.mean(axis=1, keepdims=True)).reshape(np.shape(x))
    y = _rows(_forward(x, True, across, eps), across)
    rows = _rows(x, across)
    std = np.sqrt(((rows - rows.mean(axis=1, keepdims=True)) ** 2).mean(axis=1, keepdims=True))
    mean_dy = rows_dy.mean(axis=1, keepdims=True)
    mean_dy_y = (rows_dy * y).mean(axis=1, keepdims=True)
    return ((rows_dy - mean_dy - y * mean_dy_y) / (std + eps)).reshape(np.shape(x))


def _weighted_fd(net, weights, step=1e-2):
    data = net.blobs["x"].data.reshape(-1)
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
    return grad.reshape(net.blobs["x"].data.shape)


@pytest.mark.parametrize("variance", [True, False])
@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4, 6), (4, 6)])
def test_forward_and_backward(shape, across, variance):
    x = _normal(shape, seed=1, scale=2.0, shift=0.7)
    dy = _normal(shape, seed=2)
    text = (
        f'type: "MVN" mvn_param {{ normalize_variance: {str(variance).lower()} '
        f"across_channels: {str(across).lower()} }}"
    )
    net = check_layer(
        text, {"x": x}, lambda inp, p: [_forward(inp["x"], variance, across)], gradient=None
    )
    net.blobs["top0"].diff[...] = dy
    net.native.backward_from_to(1, 1)
    analytic = net.blobs["x"].diff.astype(np.float64)
    np.testing.assert_allclose(analytic, _backward(x, dy, variance, across), rtol=1e-4, atol=1e-5)
    numeric = _weighted_fd(net, dy.astype(np.float64))
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1.0)
    assert np.max(np.abs(analytic - numeric) / scale) < 2e-3


def test_mean_only_gradient_by_plain_finite_differences():
    check_layer(
        'type: "MVN" mvn_param { normalize_variance: false }',
        {"x": _normal((2, 3, 4), seed=3)},
        lambda inp, p: [_forward(inp["x"], variance=False)],
    )


def test_eps_is_added_to_the_standard_deviation():
    """With a large eps the two placements differ: y = (x - mean) / (std + eps)."""
    x = _normal((2, 2, 8), seed=4, scale=0.3)
    eps = 0.5
    dy = _normal((2, 2, 8), seed=5)
    net = check_layer(
        f'type: "MVN" mvn_param {{ eps: {eps} }}',
        {"x": x},
        lambda inp, p: [_forward(inp["x"], eps=eps)],
        gradient=None,
    )
    rows = _rows(x, False)
    centred = rows - rows.mean(axis=1, keepdims=True)
    wrong = centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + eps)
    assert np.max(np.abs(net.blobs["top0"].data - wrong.reshape(x.shape))) > 1e-2
    net.blobs["top0"].diff[...] = dy
    net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(net.blobs["x"].diff, _backward(x, dy, eps=eps), rtol=1e-4, atol=1e-5)


def test_matches_caffe_probe():
    check_probe("mvn")


@pytest.mark.parametrize("variance", [True, False])
def test_in_place_matches_separate_top(variance):
    x = _normal((2, 3, 5), seed=6, shift=1.0)
    dy = _normal((2, 3, 5), seed=7)
    text = f'type: "MVN" mvn_param {{ normalize_variance: {str(variance).lower()} }}'
    apart = build_probe(text, {"x": x})
    inplace = build_probe(text, {"x": x}, tops=["x"])
    for net, top in ((apart, "top0"), (inplace, "x")):
        net.native.forward_from_to(1, 1)
        net.blobs[top].diff[...] = dy
        net.native.backward_from_to(1, 1)
    np.testing.assert_allclose(inplace.blobs["x"].data, apart.blobs["top0"].data, rtol=1e-6)
    np.testing.assert_allclose(inplace.blobs["x"].diff, apart.blobs["x"].diff, rtol=1e-5, atol=1e-6)
