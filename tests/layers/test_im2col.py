"""Im2col (cpp/layers/im2col_layer.cc): forward against a direct float64 NumPy unfolding
(row (c, kernel offset), column output position, zeros in the padding) for 2-D kernels with
pad, stride and dilation, non-square kernel_h/kernel_w, the N-D path (force_nd_im2col and 3-D),
a channel axis other than 1, backward (col2im) by finite differences, and geometry errors."""

import itertools

import numpy as np
import pytest
from layer_check import build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _unfold(x, axis, kernel, pad, stride, dilation):
    """Direct im2col: y[..., (c, k), out...] = x[..., c, o*s - p + k*d] (0 outside)."""
    batch = x.shape[:axis]
    channels = x.shape[axis]
    spatial = x.shape[axis + 1 :]
    out = [
        (i + 2 * p - (d * (k - 1) + 1)) // s + 1
        for i, k, p, s, d in zip(spatial, kernel, pad, stride, dilation, strict=True)
    ]
    flat = x.reshape((-1, channels) + spatial)
    y = np.zeros((flat.shape[0], channels * int(np.prod(kernel))) + tuple(out))
    for n, c in itertools.product(range(flat.shape[0]), range(channels)):
        for r, offs in enumerate(itertools.product(*[range(k) for k in kernel])):
            for pos in itertools.product(*[range(o) for o in out]):
                src = [
                    o * s - p + k * d
                    for o, s, p, k, d in zip(pos, stride, pad, offs, dilation, strict=True)
                ]
                if all(0 <= v < e for v, e in zip(src, spatial, strict=True)):
                    y[(n, c * int(np.prod(kernel)) + r) + pos] = flat[(n, c) + tuple(src)]
    return y.reshape(batch + y.shape[1:])


@pytest.mark.parametrize(
    ("shape", "fields", "kernel", "pad", "stride", "dilation"),
    [
        ((2, 3, 5, 5), "kernel_size: 3", (3, 3), (0, 0), (1, 1), (1, 1)),
        ((1, 2, 6, 7), "kernel_size: 3 pad: 1 stride: 2", (3, 3), (1, 1), (2, 2), (1, 1)),
        ((1, 2, 7, 6), "kernel_size: 2 dilation: 2 pad: 1", (2, 2), (1, 1), (1, 1), (2, 2)),
        (
            (2, 1, 5, 6),
            "kernel_h: 2 kernel_w: 3 pad_h: 1 pad_w: 0 stride_h: 1 stride_w: 2",
            (2, 3),
            (1, 0),
            (1, 2),
            (1, 1),
        ),
        (
            (1, 2, 5, 4),
            "kernel_size: 3 pad: 1 force_nd_im2col: true",
            (3, 3),
            (1, 1),
            (1, 1),
            (1, 1),
        ),
        (
            (1, 2, 3, 4, 4),
            "kernel_size: 2 stride: 2 pad: 1",
            (2, 2, 2),
            (1, 1, 1),
            (2, 2, 2),
            (1, 1, 1),
        ),
    ],
)
def test_im2col(shape, fields, kernel, pad, stride, dilation):
    x = _normal(shape, seed=1)
    check_layer(
        f'type: "Im2col" convolution_param {{ {fields} }}',
        {"x": x},
        lambda inp, p: [_unfold(inp["x"], 1, kernel, pad, stride, dilation)],
    )


def test_im2col_channel_axis_2():
    x = _normal((2, 2, 3, 4, 4), seed=2)
    check_layer(
        'type: "Im2col" convolution_param { axis: 2 kernel_size: 2 }',
        {"x": x},
        lambda inp, p: [_unfold(inp["x"], 2, (2, 2), (0, 0), (1, 1), (1, 1))],
    )


def test_backward_is_the_adjoint():
    # <im2col(x), dy> = <x, col2im(dy)> for any x, dy.
    x = _normal((2, 3, 5, 6), seed=3)
    net = build_probe(
        'type: "Im2col" convolution_param { kernel_size: 3 pad: 1 stride: 2 }', {"x": x}
    )
    net.native.forward_from_to(1, 1)
    dy = _normal(net.blobs["top0"].data.shape, seed=4)
    net.blobs["top0"].diff[...] = dy
    net.native.backward_from_to(1, 1)
    lhs = np.sum(net.blobs["top0"].data.astype(np.float64) * dy)
    rhs = np.sum(x.astype(np.float64) * net.blobs["x"].diff)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


@pytest.mark.parametrize(
    ("fields", "shape", "error"),
    [
        ("", (1, 1, 4, 4), ConfigError),
        ("kernel_size: 5", (1, 1, 4, 4), ShapeError),
        ("kernel_size: 2 stride: 0", (1, 1, 4, 4), ConfigError),
        ("kernel_size: 2 kernel_h: 2 kernel_w: 2", (1, 1, 4, 4), ConfigError),
        ("kernel_size: 2", (3, 4), ShapeError),
    ],
)
def test_errors(fields, shape, error):
    with pytest.raises(error, match="probe"):
        build_probe(
            f'type: "Im2col" convolution_param {{ {fields} }}', {"x": np.zeros(shape, np.float32)}
        )
