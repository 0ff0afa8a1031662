"""SPP (cpp/layers/spp.cc): each pyramid level against the float64 pooling reference of
tests/layers/test_pooling.py with Caffe's per-level kernel = ceil(H / 2^l),
pad = (kernel·2^l − H + 1) / 2, stride = kernel; levels flattened per item and concatenated
in level order (pyramid_height 1: the level's 4-D output as is); MAX and AVE; gradients by
finite differences (the levels' gradients summed); a new input size rebuilding the levels;
errors (missing pyramid_height, an input too small for the pyramid, non-4-D input)."""

import math

import numpy as np
import pytest
from layer_check import GradientSettings, build_probe, check_layer
from test_pooling import distinct, pool_reference

from caffeonspark.errors import ConfigError, ShapeError

POOL_GRADIENT = GradientSettings(step=1e-4, threshold=1e-2)


def level_geometry(size, level):
    bins = 2**level
    kernel = math.ceil(size / bins)
    return kernel, (kernel * bins - size + 1) // 2


def spp_reference(x, height, method):
    n = x.shape[0]
    outputs = []
    for level in range(height):
        kh, ph = level_geometry(x.shape[2], level)
        kw, pw = level_geometry(x.shape[3], level)
        y, _ = pool_reference(x, method, (kh, kw), stride=(kh, kw), pad=(ph, pw))
        if height == 1:
            return y
        outputs.append(y.reshape(n, -1))
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize(
    ("shape", "height"),
    [
        ((2, 3, 8, 8), 3),
        ((1, 2, 7, 5), 2),
        ((2, 2, 9, 6), 3),
        ((1, 2, 5, 5), 1),
        ((1, 1, 16, 14), 4),
    ],
)
def test_spp(shape, height, method):
    x = distinct(shape, seed=1)
    net = check_layer(
        f'type: "SPP" spp_param {{ pyramid_height: {height} pool: {method} }}',
        {"x": x},
        lambda inp, p: [spp_reference(inp["x"], height, method)],
        gradient=POOL_GRADIENT,
    )
    if height > 1:
        bins = sum(4**level for level in range(height))
        assert net.blobs["top0"].data.shape == (shape[0], shape[1] * bins)


def test_level_order_and_rows():
    # Item n's row is [level 0 (C values), level 1 (C·4 values, channel-major)].
    x = distinct((2, 2, 4, 4), seed=2)
    net = build_probe('type: "SPP" spp_param { pyramid_height: 2 }', {"x": x})
    net.native.forward_from_to(1, 1)
    y = net.blobs["top0"].data
    np.testing.assert_array_equal(y[:, :2], x.max(axis=(2, 3)))
    quad = x.reshape(2, 2, 2, 2, 2, 2).max(axis=(3, 5))  # (n, c, bin_h, bin_w)
    np.testing.assert_array_equal(y[:, 2:], quad.reshape(2, -1))


def test_new_input_size_rebuilds_the_levels():
    x = distinct((1, 1, 8, 8), seed=3)
    net = build_probe('type: "SPP" spp_param { pyramid_height: 2 pool: AVE }', {"x": x})
    net.native.forward_from_to(1, 1)
    bigger = distinct((1, 1, 11, 9), seed=4)
    net.blobs["x"].reshape(*bigger.shape)
    net.blobs["x"].data[...] = bigger
    net.native.forward_from_to(1, 1)
    np.testing.assert_allclose(
        net.blobs["top0"].data, spp_reference(bigger.astype(np.float64), 2, "AVE"), rtol=1e-5
    )


@pytest.mark.parametrize(
    ("body", "shape", "error", "match"),
    [
        ("", (1, 1, 4, 4), ConfigError, "pyramid_height"),
        ("pyramid_height: 3", (1, 1, 3, 3), ConfigError, "pyramid level 2"),
        ("pyramid_height: 2", (1, 4, 4), ShapeError, "4 axes"),
    ],
)
def test_errors(body, shape, error, match):
    with pytest.raises(error, match=f"probe.*{match}"):
        build_probe(f'type: "SPP" spp_param {{ {body} }}', {"x": np.zeros(shape, np.float32)})
