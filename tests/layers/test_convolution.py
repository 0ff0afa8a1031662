"""Convolution and Deconvolution (cpp/layers/convolution.*): forward against float64 NumPy
references written here from the definition (slices of the zero-padded input, one einsum
per kernel offset; no im2col), gradients by finite differences (Caffe's conv settings:
step 1e-2, threshold 1e-3), Caffe's own outputs for the group+dilation and deconv probes,
and the configuration/shape errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import build_probe, check_layer

from caffeonspark import engine
from caffeonspark.errors import ConfigError, ShapeError

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def _per_axis(value, axes):
    return list(value) if isinstance(value, (list, tuple)) else [value] * axes


def conv_reference(x, w, b, stride=1, pad=0, dilation=1, group=1):
    """y[n, o, p] = b[o] + sum_{c in group(o), k} w[o, c, k] * xpad[n, c, p*stride + k*dilation]."""
    axes = x.ndim - 2
    stride, pad, dilation = (_per_axis(v, axes) for v in (stride, pad, dilation))
    kernel = w.shape[2:]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    out = [
        (x.shape[2 + a] + 2 * pad[a] - (dilation[a] * (kernel[a] - 1) + 1)) // stride[a] + 1
        for a in range(axes)
    ]
    n, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // group, o // group
    y = np.zeros((n, o, *out))
    for g in range(group):
        xs = xp[:, g * cg : (g + 1) * cg]
        for k in itertools.product(*(range(kk) for kk in kernel)):
            window = tuple(
                slice(
                    k[a] * dilation[a], k[a] * dilation[a] + stride[a] * (out[a] - 1) + 1, stride[a]
                )
                for a in range(axes)
            )
            patch = xs[(slice(None), slice(None), *window)]
            y[:, g * og : (g + 1) * og] += np.einsum(
                "nc...,oc->no...", patch, w[(slice(g * og, (g + 1) * og), slice(None), *k)]
            )
    if b is not None:
        y += b.reshape((1, o) + (1,) * axes)
    return y


def deconv_reference(x, w, b, stride=1, pad=0, dilation=1, group=1):
    """Scatter: ypad[n, o, i*stride + k*dilation] += x[n, c, i] * w[c, o, k]; crop pad."""
    axes = x.ndim - 2
    stride, pad, dilation = (_per_axis(v, axes) for v in (stride, pad, dilation))
    kernel = w.shape[2:]
    n, c = x.shape[:2]
    og = w.shape[1]
    o, cg = og * group, c // group
    full = [
        stride[a] * (x.shape[2 + a] - 1) + dilation[a] * (kernel[a] - 1) + 1 for a in range(axes)
    ]
    yp = np.zeros((n, o, *full))
    for g in range(group):
        xs = x[:, g * cg : (g + 1) * cg]
        for k in itertools.product(*(range(kk) for kk in kernel)):
            window = tuple(
                slice(
                    k[a] * dilation[a],
                    k[a] * dilation[a] + stride[a] * (x.shape[2 + a] - 1) + 1,
                    stride[a],
                )
                for a in range(axes)
            )
            yp[(slice(None), slice(g * og, (g + 1) * og), *window)] += np.einsum(
                "nc...,co->no...", xs, w[(slice(g * cg, (g + 1) * cg), slice(None), *k)]
            )
    crop = tuple(slice(pad[a], full[a] - pad[a]) for a in range(axes))
    y = yp[(slice(None), slice(None), *crop)]
    if b is not None:
        y = y + b.reshape((1, o) + (1,) * axes)
    return y


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Convolution forward + gradients
# ---------------------------------------------------------------------------------------

CASES = {
    # name: (input shape, convolution_param body, reference kwargs)
    "k3_s2_pad1": (
        (2, 3, 6, 5),
        "num_output: 4 kernel_size: 3 stride: 2 pad: 1",
        {"stride": 2, "pad": 1},
    ),
    "odd_k2_s1": ((2, 2, 7, 5), "num_output: 3 kernel_size: 2", {}),
    "rect_hw_fields": (
        (2, 3, 7, 5),
        "num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
        {"stride": (2, 1), "pad": (1, 0)},
    ),
    "per_axis_repeated": (
        (1, 2, 6, 7),
        "num_output: 3 kernel_size: 3 kernel_size: 2 stride: 1 stride: 2 pad: 0 pad: 1",
        {"stride": (1, 2), "pad": (0, 1)},
    ),
    "group2_dilation2": (
        (2, 4, 9, 8),
        "num_output: 6 kernel_size: 3 group: 2 dilation: 2 pad: 1 stride: 2",
        {"stride": 2, "pad": 1, "dilation": 2, "group": 2},
    ),
    "group3_rect_dilation": (
        (2, 3, 7, 6),
        "num_output: 3 kernel_size: 2 group: 3 dilation: 3 dilation: 1",
        {"dilation": (3, 1), "group": 3},
    ),
    "one_by_one": ((2, 5, 4, 3), "num_output: 3 kernel_size: 1", {}),
    "one_by_one_group2": ((2, 4, 3, 5), "num_output: 6 kernel_size: 1 group: 2", {"group": 2}),
    "one_by_one_stride2": ((2, 3, 5, 5), "num_output: 2 kernel_size: 1 stride: 2", {"stride": 2}),
    "batch_of_one": ((1, 2, 5, 6), "num_output: 2 kernel_size: 3 pad: 2", {"pad": 2}),
    "kernel_equals_padded_input": ((2, 1, 3, 3), "num_output: 2 kernel_size: 5 pad: 1", {"pad": 1}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_convolution_2d(case):
    shape, body, kw = CASES[case]
    x = _x(shape)
    check_layer(
        f'type: "Convolution" convolution_param {{ {body} {FILLERS} }}',
        {"x": x},
        lambda inp, p: [conv_reference(inp["x"], p[0], p[1], **kw)],
    )


def test_convolution_3d():
    x = _x((2, 2, 5, 4, 4), seed=1)
    check_layer(
        f'type: "Convolution" convolution_param {{ num_output: 3 kernel_size: 3 kernel_size: 2 '
        f"kernel_size: 2 pad: 1 stride: 1 stride: 2 stride: 1 {FILLERS} }}",
        {"x": x},
        lambda inp, p: [conv_reference(inp["x"], p[0], p[1], stride=(1, 2, 1), pad=1)],
    )


def test_convolution_3d_groups_dilation_forward():
    x = _x((2, 4, 6, 5, 5), seed=2)
    net = check_layer(
        f'type: "Convolution" convolution_param {{ num_output: 4 kernel_size: 2 group: 2 '
        f"dilation: 2 pad: 1 stride: 2 {FILLERS} }}",
        {"x": x},
        lambda inp, p: [conv_reference(inp["x"], p[0], p[1], 2, 1, 2, 2)],
        gradient=None,
    )
    assert net.params["probe"][0].data.shape == (4, 2, 2, 2, 2)


def test_convolution_force_nd_im2col_matches_2d():
    x = _x((2, 3, 7, 6), seed=3)
    check_layer(
        f'type: "Convolution" convolution_param {{ num_output: 4 kernel_size: 3 stride: 2 pad: 1 '
        f"dilation: 2 force_nd_im2col: true {FILLERS} }}",
        {"x": x},
        lambda inp, p: [conv_reference(inp["x"], p[0], p[1], 2, 1, 2)],
    )


def test_convolution_channel_axis_2():
    # Axes before the channel axis are all batch axes: (2, 3) images of 2 channels.
    x = _x((2, 3, 2, 5, 4), seed=4)

    def reference(inp, p):
        flat = inp["x"].reshape(6, 2, 5, 4)
        return [conv_reference(flat, p[0], p[1], pad=1).reshape(2, 3, 3, 5, 4)]

    check_layer(
        f'type: "Convolution" convolution_param {{ num_output: 3 kernel_size: 3 pad: 1 axis: 2 {FILLERS} }}',
        {"x": x},
        reference,
    )


def test_convolution_two_bottoms_share_weights():
    a, b = _x((2, 3, 5, 5), 5), _x((2, 3, 5, 5), 6)

    def reference(inp, p):
        return [conv_reference(inp[k], p[0], p[1], pad=1, stride=2) for k in ("a", "b")]

    check_layer(
        f'type: "Convolution" convolution_param {{ num_output: 2 kernel_size: 3 pad: 1 stride: 2 {FILLERS} }}',
        {"a": a, "b": b},
        reference,
        num_tops=2,
    )


def test_convolution_defaults_no_bias_zero_weights():
    net = check_layer(
        'type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 bias_term: false }',
        {"x": _x((1, 2, 4, 4))},
        lambda inp, p: [np.zeros((1, 2, 2, 2))],
        gradient=None,
    )
    params = net.params["probe"]
    assert len(params) == 1 and params[0].shape == (2, 2, 3, 3)
    assert not np.any(params[0].data), "a missing weight_filler means constant 0"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "shape, outputs", [((5, 3, 9, 9), 4), ((1, 16, 20, 20), 32), ((1, 128, 6, 6), 64)]
)
def test_convolution_threads_and_split_gemms(threads, shape, outputs):
    """Batch-parallel images (one column buffer per thread), and a single image whose GEMMs
    are split over the threads (core/math.cc), give the NumPy values for y, dW, db, dx."""
    x = _x(shape, seed=7)
    layer = (
        f'type: "Convolution" convolution_param {{ num_output: {outputs} kernel_size: 3 pad: 1 '
        f"{FILLERS} }}"
    )
    try:
        engine.set_num_threads(threads)
        engine.set_random_seed(3)
        net = build_probe(layer, {"x": x})
        net.forward()
        dy = _x(net.blobs["top0"].shape, seed=8)
        net.blobs["top0"].diff[...] = dy
        for p in net.params["probe"]:
            p.diff[...] = 0
        net.backward()
    finally:
        engine.set_num_threads(2)
    w, bias = (p.data.astype(np.float64) for p in net.params["probe"])
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y = conv_reference(x64, w, bias, pad=1)
    h, wd = shape[2:]
    xp = np.pad(x64, [(0, 0), (0, 0), (1, 1), (1, 1)])
    dw = np.zeros_like(w)
    for i, j in itertools.product(range(3), range(3)):
        dw[:, :, i, j] = np.einsum("nohw,nchw->oc", dy64, xp[:, :, i : i + h, j : j + wd])
    dx = deconv_reference(dy64, w, None, pad=1)  # the adjoint of the convolution
    for label, got, want in [
        ("y", net.blobs["top0"].data, y),
        ("dW", net.params["probe"][0].diff, dw),
        ("db", net.params["probe"][1].diff, dy64.sum(axis=(0, 2, 3))),
        ("dx", net.blobs["x"].diff, dx),
    ]:
        err = np.max(np.abs(got - want)) / np.max(np.abs(want))
        assert err < 1e-5, f"{label}: relative error {err:.3g}"


def _windows(kernel_offset, stride, dilation, out):
    return tuple(
        slice(k * d, k * d + s * (o - 1) + 1, s)
        for k, s, d, o in zip(kernel_offset, stride, dilation, out, strict=True)
    )


def conv_gradients(x, w, dy, stride, pad, dilation, group):
    """dW and dx of a 2-D convolution from the definition: every kernel tap's window of the
    zero-padded input times dy (dW), and dy scattered back through the same windows (dx)."""
    stride, pad, dilation = (_per_axis(v, 2) for v in (stride, pad, dilation))
    n, c, h, wd = x.shape
    o = w.shape[0]
    cg, og = c // group, o // group
    xp = np.pad(x, [(0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])])
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for g in range(group):
        cs, os_ = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
        for k in itertools.product(*(range(kk) for kk in w.shape[2:])):
            window = (slice(None), cs, *_windows(k, stride, dilation, dy.shape[2:]))
            dw[(os_, slice(None), *k)] = np.einsum("nohw,nchw->oc", dy[:, os_], xp[window])
            dxp[window] += np.einsum("nohw,oc->nchw", dy[:, os_], w[(os_, slice(None), *k)])
    return dw, dxp[:, :, pad[0] : pad[0] + h, pad[1] : pad[1] + wd]


GATHER_CASES = {
    # Channel counts in multiples of 16 take the gather products (convolution_products.cc):
    # forward and dW when num_output/group is, dx when channels/group is and stride is 1.
    "k5_pad2": ((2, 16, 9, 8), "num_output: 16 kernel_size: 5 pad: 2", {"pad": 2}),
    "stride2_dx_by_col2im": (
        (2, 16, 9, 9),
        "num_output: 32 kernel_size: 3 stride: 2 pad: 1",
        {"stride": 2, "pad": 1},
    ),
    "rect_dilated": (
        (2, 16, 9, 10),
        "num_output: 16 kernel_h: 3 kernel_w: 2 dilation: 2 pad_h: 2 pad_w: 1",
        {"dilation": 2, "pad": (2, 1)},
    ),
    "group2": ((2, 32, 7, 7), "num_output: 32 kernel_size: 3 pad: 1 group: 2", {"pad": 1, "group": 2}),
    "pad_past_kernel": ((1, 16, 5, 5), "num_output: 16 kernel_size: 3 pad: 3", {"pad": 3}),
    "no_pad": ((2, 16, 8, 8), "num_output: 16 kernel_size: 3", {}),
    "outputs_20_dx_only": ((2, 16, 6, 6), "num_output: 20 kernel_size: 3 pad: 1", {"pad": 1}),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", sorted(GATHER_CASES))
def test_convolution_gather_paths(case, threads):
    """y, dW, db and dx of shapes that take the gather products, against the definition."""
    shape, body, kw = GATHER_CASES[case]
    x = _x(shape, seed=21)
    try:
        engine.set_num_threads(threads)
        net = build_probe(f'type: "Convolution" convolution_param {{ {body} {FILLERS} }}', {"x": x})
        net.forward()
        dy = _x(net.blobs["top0"].shape, seed=22)
        net.blobs["top0"].diff[...] = dy
        for p in net.params["probe"]:
            p.diff[...] = 0
        net.backward()
    finally:
        engine.set_num_threads(2)
    w, bias = (p.data.astype(np.float64) for p in net.params["probe"])
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    dw, dx = conv_gradients(
        x64, w, dy64, kw.get("stride", 1), kw.get("pad", 0), kw.get("dilation", 1), kw.get("group", 1)
    )
    for label, got, want in [
        ("y", net.blobs["top0"].data, conv_reference(x64, w, bias, **kw)),
        ("dW", net.params["probe"][0].diff, dw),
        ("db", net.params["probe"][1].diff, dy64.sum(axis=(0, 2, 3))),
        ("dx", net.blobs["x"].diff, dx),
    ]:
        err = np.max(np.abs(got - want)) / np.max(np.abs(want))
        assert err < 1e-5, f"{label}: relative error {err:.3g}"


def test_convolution_gather_paths_after_reshape():
    """A new input shape with the same padded size (10x12 -> 12x10) must not reuse the old
    zero border of the padded-image buffers."""
    body = f"num_output: 16 kernel_size: 3 pad: 1 {FILLERS}"
    net = build_probe(f'type: "Convolution" convolution_param {{ {body} }}', {"x": _x((1, 16, 10, 12))})
    net.forward()
    x = _x((1, 16, 12, 10), seed=5)
    net.blobs["x"].reshape(*x.shape)
    net.reshape()
    net.blobs["x"].data[...] = x
    net.forward()
    w, bias = (p.data.astype(np.float64) for p in net.params["probe"])
    want = conv_reference(x.astype(np.float64), w, bias, pad=1)
    np.testing.assert_allclose(net.blobs["top0"].data, want, rtol=1e-5, atol=1e-5)


def test_convolution_param_gradients_accumulate():
    x = _x((2, 2, 5, 5), seed=9)
    net = build_probe(
        f'type: "Convolution" convolution_param {{ num_output: 2 kernel_size: 3 {FILLERS} }}',
        {"x": x},
    )
    net.forward()
    net.blobs["top0"].diff[...] = 1
    for p in net.params["probe"]:
        p.diff[...] = 0
    net.backward()
    once = [p.diff.copy() for p in net.params["probe"]]
    net.backward()
    for p, first in zip(net.params["probe"], once, strict=True):
        np.testing.assert_allclose(p.diff, 2 * first, rtol=1e-5)


def test_convolution_probe_group_dilation():
    check_probe("conv_group_dilation")


# ---------------------------------------------------------------------------------------
# Deconvolution
# ---------------------------------------------------------------------------------------

DECONV_CASES = {
    "k4_s2_pad1": (
        (2, 3, 4, 5),
        "num_output: 2 kernel_size: 4 stride: 2 pad: 1",
        {"stride": 2, "pad": 1},
    ),
    "k3_s1": ((2, 2, 3, 4), "num_output: 3 kernel_size: 3", {}),
    "group2_dilation2_rect": (
        (2, 4, 3, 4),
        "num_output: 2 kernel_h: 2 kernel_w: 3 group: 2 dilation: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0",
        {"stride": (2, 1), "pad": (1, 0), "dilation": 2, "group": 2},
    ),
    "one_by_one": ((2, 3, 3, 4), "num_output: 2 kernel_size: 1", {}),
}


@pytest.mark.parametrize("case", sorted(DECONV_CASES))
def test_deconvolution(case):
    shape, body, kw = DECONV_CASES[case]
    check_layer(
        f'type: "Deconvolution" convolution_param {{ {body} {FILLERS} }}',
        {"x": _x(shape, seed=11)},
        lambda inp, p: [deconv_reference(inp["x"], p[0], p[1], **kw)],
    )


@pytest.mark.parametrize(
    "shape, body, kw",
    [
        # 16 channels each way: the forward is the conv's gather data product (stride 1), the
        # backward its gather forward and weight products; stride 2 folds with col2im.
        ((2, 16, 5, 4), "num_output: 16 kernel_size: 3 pad: 1", {"pad": 1}),
        ((2, 16, 4, 4), "num_output: 32 kernel_size: 4 stride: 2 pad: 1", {"stride": 2, "pad": 1}),
    ],
)
def test_deconvolution_gather_paths(shape, body, kw):
    """Deconvolution with 16-multiple channels, exactly: y, dx (the convolution of dy) and dW
    (the convolution's weight gradient with dy as its input and x as its output gradient)."""
    x = _x(shape, seed=31)
    net = build_probe(f'type: "Deconvolution" convolution_param {{ {body} {FILLERS} }}', {"x": x})
    net.forward()
    dy = _x(net.blobs["top0"].shape, seed=32)
    net.blobs["top0"].diff[...] = dy
    for p in net.params["probe"]:
        p.diff[...] = 0
    net.backward()
    w, bias = (p.data.astype(np.float64) for p in net.params["probe"])
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    dw, _ = conv_gradients(dy64, w, x64, kw.get("stride", 1), kw.get("pad", 0), 1, 1)
    for label, got, want in [
        ("y", net.blobs["top0"].data, deconv_reference(x64, w, bias, **kw)),
        ("dx", net.blobs["x"].diff, conv_reference(dy64, w, None, **kw)),
        ("dW", net.params["probe"][0].diff, dw),
    ]:
        err = np.max(np.abs(got - want)) / np.max(np.abs(want))
        assert err < 1e-5, f"{label}: relative error {err:.3g}"


def test_deconvolution_3d():
    check_layer(
        f'type: "Deconvolution" convolution_param {{ num_output: 2 kernel_size: 2 stride: 2 {FILLERS} }}',
        {"x": _x((1, 2, 3, 2, 3), seed=12)},
        lambda inp, p: [deconv_reference(inp["x"], p[0], p[1], stride=2)],
    )


def test_deconvolution_weight_shape():
    net = build_probe(
        'type: "Deconvolution" convolution_param { num_output: 6 kernel_size: 3 group: 2 }',
        {"x": _x((1, 4, 3, 3))},
    )
    assert net.params["probe"][0].shape == (4, 3, 3, 3)
    assert net.params["probe"][1].shape == (6,)
    assert net.blobs["top0"].shape == (1, 6, 5, 5)


def test_deconvolution_probe():
    check_probe("deconv")


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, shape, match",
    [
        ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "divisible by group"),
        ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "divisible by group"),
        ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 1, 5, 5), "not both"),
        (
            "num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3",
            (1, 1, 5, 5),
            "one per spatial axis",
        ),
        ("num_output: 2", (1, 1, 5, 5), "kernel_size"),
        ("num_output: 2 kernel_h: 3 kernel_w: 3", (1, 1, 5, 5, 5), "2-D"),
        ("num_output: 2 kernel_size: 3 stride: 0", (1, 1, 5, 5), "stride"),
    ],
)
def test_convolution_config_errors(body, shape, match):
    with pytest.raises(ConfigError, match=match) as info:
        build_probe(f'type: "Convolution" convolution_param {{ {body} }}', {"x": _x(shape)})
    assert "probe" in str(info.value)


def test_convolution_kernel_larger_than_padded_input():
    with pytest.raises(ShapeError, match="probe.*does not fit"):
        build_probe(
            'type: "Convolution" convolution_param { num_output: 2 kernel_size: 5 pad: 0 }',
            {"x": _x((1, 1, 4, 6))},
        )
    with pytest.raises(ShapeError, match="probe.*does not fit"):
        build_probe(
            'type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 dilation: 3 pad: 1 }',
            {"x": _x((1, 1, 4, 9))},
        )


def test_convolution_reshape_checks_channels():
    net = build_probe(
        'type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 }',
        {"x": _x((1, 2, 5, 5))},
    )
    net.blobs["x"].reshape(1, 3, 5, 5)
    with pytest.raises(ShapeError, match="probe.*channels"):
        net.reshape()


def test_convolution_output_shape_floor_rule():
    # 112 with k3 s2 (no pad): floor((112 - 3) / 2) + 1 = 55 (pooling's ceil rule gives 56).
    net = build_probe(
        'type: "Convolution" convolution_param { num_output: 1 kernel_size: 3 stride: 2 }',
        {"x": _x((1, 1, 112, 7))},
    )
    assert net.blobs["top0"].shape == (1, 1, 55, 3)
