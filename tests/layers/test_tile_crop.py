"""Tile and Crop (cpp/layers/tile_crop.cc): forward against NumPy (np.tile along an axis,
slicing), finite-difference gradients (Tile sums the copies, Crop scatters into zeros),
Crop's offset forms (none, one for all axes, one per axis) and axis choices, real Caffe's
probes, and shape/config errors naming the layer."""

import numpy as np
import pytest
from caffe_ref import check_probe
from layer_check import build_probe, check_layer

from caffeonspark.errors import ConfigError, ShapeError


def _normal(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# ---- Tile --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "axis", "tiles"),
    [((2, 3, 4), 1, 3), ((2, 3), 0, 2), ((2, 3, 2), 2, 4), ((2, 3, 2), -1, 2), ((3,), 0, 1)],
)
def test_tile(shape, axis, tiles):
    x = _normal(shape, seed=1)
    a = axis % len(shape)
    reps = [1] * len(shape)
    reps[a] = tiles

    def reference(inp, p):
        # Caffe repeats the whole block from `axis` on: tile the axis, not each element.
        return [np.tile(inp["x"], reps)]

    net = check_layer(
        f'type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}', {"x": x}, reference
    )
    want = list(shape)
    want[a] *= tiles
    assert net.blobs["top0"].shape == tuple(want)


def test_tile_matches_caffe_probe():
    check_probe("tile")


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("tile_param { axis: 1 }", ConfigError, "tiles is required"),
        ("tile_param { tiles: 0 }", ConfigError, "tiles must be positive"),
        ("tile_param { axis: 3 tiles: 2 }", ShapeError, "tile_param.axis 3"),
    ],
)
def test_tile_errors_name_the_layer(text, error, match):
    with pytest.raises(error, match=f"probe.*{match}"):
        build_probe(f'type: "Tile" {text}', {"x": _normal((2, 3))})


# ---- Crop --------------------------------------------------------------------------------


def _crop_reference(x, ref_shape, axis, offsets):
    axis = axis % x.ndim
    index = []
    for i in range(x.ndim):
        if i < axis:
            index.append(slice(None))
        else:
            off = 0 if not offsets else offsets[0] if len(offsets) == 1 else offsets[i - axis]
            index.append(slice(off, off + ref_shape[i]))
    return x[tuple(index)]


@pytest.mark.parametrize(
    ("shape", "ref_shape", "axis", "offsets"),
    [
        ((2, 3, 8, 8), (2, 3, 5, 4), 2, [1, 2]),
        ((2, 3, 8, 8), (2, 3, 5, 4), 2, [3]),
        ((2, 3, 8, 8), (2, 3, 5, 4), 2, []),
        ((2, 4, 5), (1, 2, 3), 0, [1, 2, 0]),
        ((3, 4, 5), (9, 2, 3), 1, [1]),
        ((2, 5), (7, 2), -1, [2]),
    ],
)
def test_crop(shape, ref_shape, axis, offsets):
    x = _normal(shape, seed=2)
    ref = _normal(ref_shape, seed=3)
    offset_text = " ".join(f"offset: {o}" for o in offsets)
    net = check_layer(
        f'type: "Crop" crop_param {{ axis: {axis} {offset_text} }}',
        {"x": x, "ref": ref},
        lambda inp, p: [_crop_reference(inp["x"], ref_shape, axis, offsets)],
        check_bottoms=["x"],
    )
    # The reference bottom only lends its shape: its gradient is zero.
    np.testing.assert_array_equal(net.blobs["ref"].diff, 0)


def test_crop_default_axis_is_two():
    x = _normal((2, 3, 6, 6), seed=4)
    ref = _normal((1, 1, 3, 2), seed=5)
    net = check_layer(
        'type: "Crop"',
        {"x": x, "ref": ref},
        lambda inp, p: [inp["x"][:, :, :3, :2]],
        check_bottoms=["x"],
    )
    assert net.blobs["top0"].shape == (2, 3, 3, 2)


def test_crop_matches_caffe_probe():
    check_probe("crop")


@pytest.mark.parametrize(
    ("shape", "ref_shape", "text", "error", "match"),
    [
        (
            (2, 3, 8, 8),
            (2, 3, 5, 4),
            "offset: 4",
            ShapeError,
            "cannot crop axis 2.*size 5.*offset 4",
        ),
        ((2, 3, 8, 8), (2, 3, 9, 4), "", ShapeError, "cannot crop axis 2"),
        ((2, 3, 8, 8), (2, 3, 5, 4), "offset: 1 offset: 2 offset: 3", ConfigError, "3 values"),
        ((2, 3, 8, 8), (2, 3, 5), "", ShapeError, "same number of axes"),
        ((2, 3, 8, 8), (2, 3, 5, 4), "axis: 4", ShapeError, "crop_param.axis 4"),
    ],
)
def test_crop_errors_name_the_layer(shape, ref_shape, text, error, match):
    with pytest.raises(error, match=f"probe.*{match}"):
        build_probe(
            f'type: "Crop" crop_param {{ {text} }}',
            {"x": _normal(shape), "ref": _normal(ref_shape)},
        )
