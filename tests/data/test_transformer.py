"""The native DataTransformer (cpp/data/transformer.h, docs/CAFFE.md §5.4) against an
independent NumPy reference, for every combination of crop (TRAIN random / TEST centred),
mirror, mean (none / mean_file / one mean_value / one per channel), scale and input dtype;
plus the distribution of its random choices, seeding, and its errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from caffeonspark import errors
from caffeonspark._native import _engine

C, H, W = 3, 7, 6
CROP = 4


def transform_param(crop, mirror, mean, scale, mean_array=None):
    param = {"scale": scale, "mirror": mirror, "crop_size": crop, "mean_value": []}
    if mean == "file":
        param["mean_file"] = "mean.binaryproto"
        param["mean_file_data"] = {
            "shape": list(mean_array.shape),
            "data": np.ascontiguousarray(mean_array, dtype="<f4").tobytes(),
        }
    elif mean == "value":
        param["mean_value"] = [100.5]
    elif mean == "values":
        param["mean_value"] = [10.0, 120.25, 250.0]
    return param


def reference(items, choices, crop, mean, scale, mean_array):
    """float64: window at the chosen offsets, minus the mean at the source pixels, times
    scale, then flipped left-right for mirrored items."""
    items = items.astype(np.float64)
    if mean == "file":
        mean_full = mean_array.astype(np.float64)
    elif mean == "value":
        mean_full = np.full((C, H, W), 100.5)
    elif mean == "values":
        mean_full = np.array([10.0, 120.25, 250.0])[:, None, None] * np.ones((C, H, W))
    else:
        mean_full = np.zeros((C, H, W))
    out_h = crop or H
    out_w = crop or W
    outs = []
    for item, (h_off, w_off, mirrored) in zip(items, choices, strict=True):
        window = np.s_[:, h_off : h_off + out_h, w_off : w_off + out_w]
        value = (item[window] - mean_full[window]) * scale
        outs.append(value[:, :, ::-1] if mirrored else value)
    return np.stack(outs)


@pytest.mark.parametrize(
    "train, crop, mirror, mean, scale, dtype",
    list(
        itertools.product(
            [True, False],
            [0, CROP],
            [False, True],
            ["none", "file", "value", "values"],
            [1.0, 0.00390625],
            [np.uint8, np.float32],
        )
    ),
)
def test_transform_matches_numpy_reference(train, crop, mirror, mean, scale, dtype):
    rng = np.random.default_rng(11)
    n = 6
    items = rng.integers(0, 256, size=(n, C, H, W)).astype(dtype)
    mean_array = rng.uniform(0, 255, size=(C, H, W)).astype(np.float32)
    param = transform_param(crop, mirror, mean, scale, mean_array)
    transformer = _engine.DataTransformer(param, train, seed=3)
    out, choices = transformer.transform(items)
    assert out.dtype == np.float32
    assert out.shape == (n, C, crop or H, crop or W)
    assert tuple(transformer.output_shape(C, H, W)) == out.shape[1:]
    # The choices obey the phase rules...
    for h_off, w_off, mirrored in choices:
        if not crop:
            assert (h_off, w_off) == (0, 0)
        elif train:
            assert 0 <= h_off <= H - crop and 0 <= w_off <= W - crop
        else:
            assert (h_off, w_off) == ((H - crop) // 2, (W - crop) // 2)
        assert mirror or not mirrored
    # ...and the values follow them exactly.
    expected = reference(items, choices, crop, mean, scale, mean_array)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-4 * scale)


def test_random_choices_cover_every_offset_and_mirror_half_the_time():
    items = np.zeros((4000, 1, 6, 5), dtype=np.uint8)
    param = {"scale": 1.0, "mirror": True, "crop_size": 3, "mean_value": []}
    _, choices = _engine.DataTransformer(param, True, seed=1).transform(items)
    h_offs = np.array([c[0] for c in choices])
    w_offs = np.array([c[1] for c in choices])
    mirrored = np.array([c[2] for c in choices])
    assert set(h_offs) == {0, 1, 2, 3} and set(w_offs) == {0, 1, 2}
    # Uniform: each offset within 5 binomial standard deviations of its expectation.
    for offs, k in ((h_offs, 4), (w_offs, 3)):
        counts = np.bincount(offs, minlength=k)
        expected = len(offs) / k
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert abs(mirrored.mean() - 0.5) < 5 * np.sqrt(0.25 / len(mirrored))
    # TEST phase mirrors too (Caffe's rule), with a centred crop.
    _, test_choices = _engine.DataTransformer(param, False, seed=1).transform(items[:400])
    assert {c[:2] for c in test_choices} == {(1, 1)}
    assert 0 < sum(c[2] for c in test_choices) < 400


def test_same_seed_same_choices():
    items = np.zeros((50, 1, 8, 8), dtype=np.uint8)
    param = {"scale": 1.0, "mirror": True, "crop_size": 5, "mean_value": []}
    first = _engine.DataTransformer(param, True, seed=42).transform(items)[1]
    second = _engine.DataTransformer(param, True, seed=42).transform(items)[1]
    other = _engine.DataTransformer(param, True, seed=43).transform(items)[1]
    assert first == second and first != other


def test_identity_transform_copies_values():
    items = np.random.default_rng(0).normal(size=(3, 2, 4, 5)).astype(np.float32)
    out, _ = _engine.DataTransformer({"scale": 1.0}, True).transform(items)
    np.testing.assert_array_equal(out, items)


def test_errors():
    mean = np.zeros((C, H, W), np.float32)
    both = transform_param(0, False, "file", 1.0, mean)
    both["mean_value"] = [1.0]
    with pytest.raises(errors.ConfigError, match="both mean_file and mean_value"):
        _engine.DataTransformer(both, True)
    two = {"scale": 1.0, "mean_value": [1.0, 2.0]}
    with pytest.raises(errors.ConfigError, match="2 mean_value entries for 3 channels"):
        _engine.DataTransformer(two, True).output_shape(3, 4, 4)
    with pytest.raises(errors.ShapeError, match="crop_size 9 is larger"):
        _engine.DataTransformer({"crop_size": 9}, True).output_shape(3, 8, 10)
    wrong_mean = transform_param(0, False, "file", 1.0, np.zeros((C, H + 1, W), np.float32))
    with pytest.raises(errors.ShapeError, match=r"mean_file .* has shape \(3, 8, 6\)"):
        _engine.DataTransformer(wrong_mean, True).transform(np.zeros((1, C, H, W), np.uint8))
    unloaded = {"mean_file": "mean.binaryproto"}
    with pytest.raises(errors.ConfigError, match="was not loaded"):
        _engine.DataTransformer(unloaded, True)
