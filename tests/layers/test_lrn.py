"""LRN (cpp/layers/lrn.*): docs/CAFFE.md §2.3 — ACROSS_CHANNELS and WITHIN_CHANNEL against
float64 NumPy references written here with explicit windows, gradients by finite
differences (Caffe's LRN settings: step 1e-2, threshold 1e-2), Caffe's outputs for the two
LRN probes, k ignored within channels, and the odd local_size rule."""

from __future__ import annotations

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import GradientSettings, build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError

LRN_GRADIENT = GradientSettings(step=1e-2, threshold=1e-2)


def across_reference(x, size, alpha, beta, k):
    n, c, h, w = x.shape
    half = (size - 1) // 2
    y = np.zeros_like(x)
    for ch in range(c):
        window = x[:, max(ch - half, 0) : min(ch + half, c - 1) + 1]
        scale = k + alpha / size * np.sum(window**2, axis=1)
        y[:, ch] = x[:, ch] * scale ** (-beta)
    return y


def within_reference(x, size, alpha, beta):
    n, c, h, w = x.shape
    half = (size - 1) // 2
    padded = np.pad(x**2, [(0, 0), (0, 0), (half, half), (half, half)])
    box = np.zeros_like(x)
    for i in range(size):
        for j in range(size):
            box += padded[:, :, i : i + h, j : j + w]
    return x * (1 + alpha / size**2 * box) ** (-beta)


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    "shape, size, alpha, beta, k",
    [
        ((2, 7, 3, 3), 5, 1.0, 0.75, 1.0),  # Caffe's defaults
        ((2, 3, 4, 5), 5, 0.5, 0.6, 2.0),  # window wider than the channel count
        ((1, 6, 2, 3), 3, 2.0, 1.5, 0.5),
        ((2, 4, 3, 2), 1, 1.0, 0.75, 1.0),
    ],
)
def test_lrn_across_channels(shape, size, alpha, beta, k):
    check_layer(
        f'type: "LRN" lrn_param {{ local_size: {size} alpha: {alpha} beta: {beta} k: {k} }}',
        {"x": _x(shape, seed=size)},
        lambda inp, p: [across_reference(inp["x"], size, alpha, beta, k)],
        gradient=LRN_GRADIENT,
    )


@pytest.mark.parametrize(
    "shape, size, alpha, beta",
    [
        ((2, 2, 5, 5), 3, 1.0, 0.75),
        ((1, 3, 4, 7), 5, 2.0, 0.6),  # window wider than the image height
        ((2, 1, 3, 2), 1, 0.5, 0.75),
    ],
)
def test_lrn_within_channel(shape, size, alpha, beta):
    check_layer(
        f'type: "LRN" lrn_param {{ local_size: {size} alpha: {alpha} beta: {beta} norm_region: WITHIN_CHANNEL }}',
        {"x": _x(shape, seed=size + 10)},
        lambda inp, p: [within_reference(inp["x"], size, alpha, beta)],
        gradient=LRN_GRADIENT,
    )


def test_lrn_within_channel_ignores_k():
    x = _x((1, 2, 4, 4), seed=3)
    outputs = []
    for k in (1.0, 7.0):
        net = build_probe(
            f'type: "LRN" lrn_param {{ local_size: 3 alpha: 1 k: {k} norm_region: WITHIN_CHANNEL }}',
            {"x": x},
        )
        net.forward()
        outputs.append(net.blobs["top0"].data.copy())
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("name", ["lrn_across", "lrn_within"])
def test_lrn_caffe_probe(name):
    check_probe(name)


@pytest.mark.parametrize("size", [0, 2, 4])
def test_lrn_local_size_must_be_odd(size):
    with pytest.raises(ConfigError, match="probe.*odd"):
        build_probe(f'type: "LRN" lrn_param {{ local_size: {size} }}', {"x": _x((1, 3, 2, 2))})


def test_lrn_needs_4d_input():
    with pytest.raises(ShapeError, match="probe.*4 axes"):
        build_probe('type: "LRN"', {"x": _x((2, 3, 4))})
