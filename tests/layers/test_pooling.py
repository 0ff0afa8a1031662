"""Pooling (cpp/layers/pooling.*): docs/CAFFE.md §2.2 — the ceil-then-clip shape rule, MAX
(first maximum wins, argmax top), AVE (divisor counts padding but not the overhang past the
padded edge), global pooling; a float64 NumPy reference written here with plain loops;
gradients by finite differences (step 1e-4, threshold 1e-2; MAX inputs without ties);
Caffe's outputs for the pooling probes; configuration errors. STOCHASTIC (CPU here, GPU-only
in Caffe): TEST's Σx²/Σx against NumPy; TRAIN outputs one element of each window, drawn
with frequencies x / Σx (a chi-square bound over many seeded draws), repeatable per seed,
with backward routing dy to the drawn element; no backward in TEST."""

from __future__ import annotations

import math

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import GradientSettings, build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError, ShapeError

POOL_GRADIENT = GradientSettings(step=1e-4, threshold=1e-2)


def pooled_extent(size, kernel, pad, stride, ceil=True, any_pad=None):
    steps = (size + 2 * pad - kernel) / stride
    out = (math.ceil(steps) if ceil else math.floor(steps)) + 1
    if (pad if any_pad is None else any_pad) and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pool_reference(x, method, kernel, stride=(1, 1), pad=(0, 0), ceil=True):
    """Returns (y, argmax) in float64; argmax is h*W + w of the first maximum (MAX only)."""
    n, c, h, w = x.shape
    any_pad = pad[0] or pad[1]
    ph = pooled_extent(h, kernel[0], pad[0], stride[0], ceil, any_pad)
    pw = pooled_extent(w, kernel[1], pad[1], stride[1], ceil, any_pad)
    y = np.zeros((n, c, ph, pw))
    arg = np.full((n, c, ph, pw), -1.0)
    for i in range(ph):
        h0 = i * stride[0] - pad[0]
        h1 = min(h0 + kernel[0], h + pad[0])
        for j in range(pw):
            w0 = j * stride[1] - pad[1]
            w1 = min(w0 + kernel[1], w + pad[1])
            rows = range(max(h0, 0), min(h1, h))
            cols = range(max(w0, 0), min(w1, w))
            block = x[:, :, rows.start : rows.stop, cols.start : cols.stop]
            if method == "MAX":
                flat = block.reshape(n, c, -1)
                first = np.argmax(flat, axis=2)  # the first occurrence of the maximum
                y[:, :, i, j] = np.max(flat, axis=2)
                arg[:, :, i, j] = (
                    (rows.start + first // len(cols)) * w + cols.start + first % len(cols)
                )
            else:
                y[:, :, i, j] = block.sum(axis=(2, 3)) / ((h1 - h0) * (w1 - w0))
    return y, arg


def distinct(shape, seed=0):
    """Inputs without ties (values at least 1e-2 apart), so MAX gradients are well defined."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))).astype(np.float64)
    return (values * 1e-2 - 0.5 * values.size * 1e-2).reshape(shape).astype(np.float32)


def _param(method, body):
    return f'type: "Pooling" pooling_param {{ pool: {method} {body} }}'


CASES = {
    # name: (input shape, pooling_param body, reference kwargs)
    "k3_s2_pad1_odd": (
        (2, 3, 7, 7),
        "kernel_size: 3 stride: 2 pad: 1",
        {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)},
    ),
    "k3_s2_pad1_even": (
        (2, 2, 6, 6),
        "kernel_size: 3 stride: 2 pad: 1",
        {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1)},
    ),
    "k3_s2_ceil_overhang": (
        (1, 2, 6, 7),
        "kernel_size: 3 stride: 2",
        {"kernel": (3, 3), "stride": (2, 2)},
    ),
    "k2_s2_pad1_clip": (
        (1, 2, 5, 5),
        "kernel_size: 2 stride: 2 pad: 1",
        {"kernel": (2, 2), "stride": (2, 2), "pad": (1, 1)},
    ),
    "rect_hw": (
        (2, 2, 7, 6),
        "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
        {"kernel": (3, 2), "stride": (2, 1), "pad": (1, 0)},
    ),
    "k2_s3_kernel_below_stride": (
        (1, 2, 7, 8),
        "kernel_size: 2 stride: 3",
        {"kernel": (2, 2), "stride": (3, 3)},
    ),
    "floor_mode": (
        (1, 2, 6, 7),
        "kernel_size: 3 stride: 2 round_mode: FLOOR",
        {"kernel": (3, 3), "stride": (2, 2), "ceil": False},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pooling(case, method):
    shape, body, kw = CASES[case]
    check_layer(
        _param(method, body),
        {"x": distinct(shape, seed=len(case))},
        lambda inp, p: [pool_reference(inp["x"], method, **kw)[0]],
        gradient=POOL_GRADIENT,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_max_pooling_argmax_top(case):
    shape, body, kw = CASES[case]
    x = np.random.default_rng(3).integers(0, 3, size=shape).astype(np.float32)  # many ties
    check_layer(
        _param("MAX", body),
        {"x": x},
        lambda inp, p: list(pool_reference(inp["x"], "MAX", **kw)),
        num_tops=2,
        gradient=None,
    )


def test_max_pooling_ties_first_wins_and_backward_routes_there():
    x = np.full((1, 1, 4, 4), 7.0, np.float32)
    net = build_probe(_param("MAX", "kernel_size: 2 stride: 2"), {"x": x}, num_tops=2)
    net.forward()
    np.testing.assert_array_equal(net.blobs["top1"].data[0, 0], [[0, 2], [8, 10]])
    net.blobs["top0"].diff[...] = [[[[1, 2], [3, 4]]]]
    net.backward()
    expected = np.zeros((4, 4))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(net.blobs["x"].diff[0, 0], expected)


def test_max_pooling_padding_never_wins():
    x = np.full((1, 1, 3, 3), -5.0, np.float32)
    net = build_probe(_param("MAX", "kernel_size: 3 stride: 1 pad: 1"), {"x": x})
    net.forward()
    np.testing.assert_array_equal(net.blobs["top0"].data, -5.0)


def test_windows_past_the_image_without_padding():
    """k1 s3 on 5 pixels: ceil(4/3)+1 = 3 windows, the last starting at 6 (no pad, so no
    clip): as in Caffe, MAX gives -FLT_MAX with argmax -1, AVE gives 0; backward skips them."""
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    net = build_probe(_param("MAX", "kernel_size: 1 stride: 3"), {"x": x}, num_tops=2)
    net.forward()
    y, arg = net.blobs["top0"].data[0, 0], net.blobs["top1"].data[0, 0]
    np.testing.assert_array_equal(y[:2, :2], [[0, 3], [15, 18]])
    assert np.all(y[2, :] == -np.finfo(np.float32).max) and np.all(arg[:, 2] == -1)
    net.blobs["top0"].diff[...] = 1
    net.backward()
    assert net.blobs["x"].diff.sum() == 4
    ave = build_probe(_param("AVE", "kernel_size: 1 stride: 3"), {"x": x})
    ave.forward()
    np.testing.assert_array_equal(ave.blobs["top0"].data[0, 0], [[0, 3, 0], [15, 18, 0], [0, 0, 0]])


def test_ave_pooling_caffe_example():
    """Caffe's own test: 3x3 image of 2s, k3 s1 pad1 -> corners 8/9, edges 4/3, centre 2."""
    x = np.full((1, 1, 3, 3), 2.0, np.float32)
    net = build_probe(_param("AVE", "kernel_size: 3 stride: 1 pad: 1"), {"x": x})
    net.forward()
    c, e = 8 / 9, 4 / 3
    np.testing.assert_allclose(
        net.blobs["top0"].data[0, 0], [[c, e, c], [e, 2, e], [c, e, c]], rtol=1e-6
    )


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(method):
    x = distinct((2, 3, 5, 4), seed=4)

    def reference(inp, p):
        v = inp["x"]
        return [(v.max(axis=(2, 3)) if method == "MAX" else v.mean(axis=(2, 3)))[:, :, None, None]]

    check_layer(_param(method, "global_pooling: true"), {"x": x}, reference, gradient=POOL_GRADIENT)


@pytest.mark.parametrize(
    "size, kernel, stride, pad, expected",
    [
        (6, 3, 2, 1, 4),  # ceil(5/2)+1 = 4; last window starts at 5 < 6+1: kept
        (7, 3, 2, 1, 4),
        (5, 2, 2, 1, 3),  # ceil(5/2)+1 = 4, but (4-1)*2 = 6 >= 5+1: clipped to 3
        (112, 3, 2, 0, 56),  # GoogLeNet pool1 (the convolution rule gives 55)
        (6, 3, 2, 0, 3),  # ceil(1.5)+1: the last window overhangs the image
        (13, 3, 2, 0, 6),
    ],
)
def test_pooling_output_extent(size, kernel, stride, pad, expected):
    x = np.zeros((1, 1, size, 3), np.float32)
    net = build_probe(
        _param(
            "MAX",
            f"kernel_h: {kernel} kernel_w: 1 stride_h: {stride} stride_w: 1 pad_h: {pad} pad_w: 0",
        ),
        {"x": x},
    )
    assert net.blobs["top0"].shape[2] == expected
    assert pooled_extent(size, kernel, pad, stride) == expected


def test_pooling_floor_mode_extent():
    net = build_probe(
        _param("AVE", "kernel_size: 3 stride: 2 round_mode: FLOOR"),
        {"x": np.zeros((1, 1, 112, 112), np.float32)},
    )
    assert net.blobs["top0"].shape == (1, 1, 55, 55)


@pytest.mark.parametrize(
    "name", ["pool_max_odd", "pool_max_even", "pool_ave_odd", "pool_ave_even", "pool_global_ave"]
)
def test_pooling_caffe_probe(name):
    check_probe(name)


@pytest.mark.parametrize(
    "body, match",
    [
        ("pool: STOCHASTIC kernel_size: 3 pad: 1", "padding is implemented only for MAX and AVE"),
        ("kernel_size: 2 pad: 2", "smaller than the kernel"),
        ("global_pooling: true kernel_size: 2", "global_pooling"),
        ("global_pooling: true stride: 2", "global_pooling"),
        ("kernel_size: 2 kernel_h: 2 kernel_w: 2", "kernel_size or kernel_h"),
        ("kernel_h: 2", "kernel_h and kernel_w"),
        ("stride: 2", "kernel_size"),
    ],
)
def test_pooling_config_errors(body, match):
    with pytest.raises(ConfigError, match=match) as info:
        build_probe(
            f'type: "Pooling" pooling_param {{ {body} }}', {"x": np.zeros((1, 1, 6, 6), np.float32)}
        )
    assert "probe" in str(info.value)


def test_pooling_needs_4d_input():
    with pytest.raises(ShapeError, match="probe.*4 axes"):
        build_probe(_param("MAX", "kernel_size: 2"), {"x": np.zeros((1, 1, 6, 6, 6), np.float32)})


def test_ave_pooling_allows_only_one_top():
    with pytest.raises(ConfigError, match="probe"):
        build_probe(
            _param("AVE", "kernel_size: 2"), {"x": np.zeros((1, 1, 4, 4), np.float32)}, num_tops=2
        )


# ---- STOCHASTIC ----------------------------------------------------------------------------


def _windows(h, w, kernel, stride):
    """(ph, pw, rows, cols) of every window (no padding, ceil mode, clipped to the image)."""
    out_h = pooled_extent(h, kernel, 0, stride)
    out_w = pooled_extent(w, kernel, 0, stride)
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * stride, min(i * stride + kernel, h))
            cols = slice(j * stride, min(j * stride + kernel, w))
            yield i, j, rows, cols


def _stochastic(body):
    return f'type: "Pooling" pooling_param {{ pool: STOCHASTIC {body} }}'


@pytest.mark.parametrize(
    ("shape", "kernel", "stride"),
    [((2, 3, 6, 6), 2, 2), ((1, 2, 7, 5), 3, 2), ((1, 1, 5, 5), 2, 1)],
)
def test_stochastic_test_phase_closed_form(shape, kernel, stride):
    x = np.random.default_rng(1).uniform(0, 2, size=shape).astype(np.float32)
    x[0, 0, :2, :2] = 0  # an all-zero window gives 0

    def reference(inp, _):
        v = inp["x"]
        out = np.zeros(
            shape[:2]
            + (
                pooled_extent(shape[2], kernel, 0, stride),
                pooled_extent(shape[3], kernel, 0, stride),
            )
        )
        for i, j, rows, cols in _windows(shape[2], shape[3], kernel, stride):
            block = v[:, :, rows, cols]
            total = block.sum(axis=(2, 3))
            out[:, :, i, j] = np.where(
                total > 0, (block**2).sum(axis=(2, 3)) / np.where(total > 0, total, 1), 0
            )
        return [out]

    check_layer(
        _stochastic(f"kernel_size: {kernel} stride: {stride}"),
        {"x": x},
        reference,
        phase=engine.TEST,
        gradient=None,
    )


def test_stochastic_train_draws_window_elements_and_routes_gradient():
    shape, kernel, stride = (2, 3, 7, 6), 3, 2
    x = distinct(shape, seed=2) + 2.0  # positive and distinct: a value names its element
    net = build_probe(_stochastic(f"kernel_size: {kernel} stride: {stride}"), {"x": x})
    engine.set_random_seed(5)
    net.native.forward_from_to(1, 1)
    y = net.blobs["top0"].data.copy()
    dy = np.random.default_rng(3).normal(size=y.shape).astype(np.float32)
    net.blobs["top0"].diff[...] = dy
    net.native.backward_from_to(1, 1)
    want = np.zeros(shape)
    for n in range(shape[0]):
        for c in range(shape[1]):
            for i, j, rows, cols in _windows(shape[2], shape[3], kernel, stride):
                block = x[n, c, rows, cols]
                hits = np.argwhere(block == y[n, c, i, j])
                assert len(hits) == 1, f"output {(n, c, i, j)} is not an element of its window"
                r, q = hits[0]
                want[n, c, rows.start + r, cols.start + q] += dy[n, c, i, j]
    np.testing.assert_allclose(net.blobs["x"].diff, want, rtol=1e-6)
    engine.set_random_seed(5)
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["top0"].data, y)  # same seed, same draws


def test_stochastic_train_frequencies_follow_the_values():
    # 4000 identical 2x2 windows per forward, 6 seeds: counts of each element against
    # x / sum(x) = (0.1, 0.2, 0.3, 0.4). Chi-square with 3 degrees of freedom; 40 is far past
    # the 1e-7 tail (about 36), so a correct sampler fails this less than once in 10^7 runs.
    planes = 4000
    x = np.tile(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), (1, planes, 1, 1))
    net = build_probe(_stochastic("kernel_size: 2"), {"x": x})
    counts = np.zeros(4)
    for seed in range(6):
        engine.set_random_seed(100 + seed)
        net.native.forward_from_to(1, 1)
        values = net.blobs["top0"].data.reshape(-1)
        counts += [np.sum(values == v) for v in (1.0, 2.0, 3.0, 4.0)]
    total = 6 * planes
    assert counts.sum() == total
    expected = total * np.array([0.1, 0.2, 0.3, 0.4])
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 40, f"counts {counts} vs expected {expected}: chi-square {chi2:.1f}"


def test_stochastic_zero_weight_elements_are_never_drawn():
    x = np.tile(np.array([[0.0, 5.0], [0.0, 0.0]], np.float32), (1, 500, 1, 1))
    net = build_probe(_stochastic("kernel_size: 2"), {"x": x})
    net.native.forward_from_to(1, 1)
    np.testing.assert_array_equal(net.blobs["top0"].data, 5.0)


def test_stochastic_has_no_backward_in_test():
    x = np.ones((1, 1, 4, 4), np.float32)
    net = build_probe(_stochastic("kernel_size: 2"), {"x": x}, phase=engine.TEST)
    net.native.forward_from_to(1, 1)
    with pytest.raises(ConfigError, match="probe.*TRAIN"):
        net.native.backward_from_to(1, 1)
