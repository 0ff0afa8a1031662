"""The whole preprocessing of an encoded image, as a feeder and the native transform run it
(decode in the layer's mode -> optional bilinear resize -> DataTransformer crop / mirror /
mean / scale, docs/CAFFE.md §5.4), against an independent float64 NumPy reference, for every
combination of decode mode, resize, crop (TRAIN random / TEST centred), mirror, mean (none,
one value, one per channel, mean file) and scale."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from caffeonspark._native import _engine
from caffeonspark.data.image_codec import decode_image, resize_image

N, H, W = 5, 8, 9
RESIZE = (10, 7)
CROP = 5


def encoded_images() -> tuple[list[bytes], np.ndarray]:
    bgr = np.random.default_rng(21).integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)
    files = [cv2.imencode(".png", image)[1].tobytes() for image in bgr]
    return files, bgr.transpose(0, 3, 1, 2).astype(np.float64)


def decode_reference(bgr: np.ndarray, mode: str) -> np.ndarray:
    if mode == "gray":
        b, g, r = bgr[:, 0], bgr[:, 1], bgr[:, 2]
        return (0.299 * r + 0.587 * g + 0.114 * b)[:, None]
    return bgr  # colour files: native and color both give the 3 BGR planes


def resize_reference(images: np.ndarray, height: int, width: int) -> np.ndarray:
    def weights(out_n, in_n):
        src = np.clip((np.arange(out_n) + 0.5) * in_n / out_n - 0.5, 0, in_n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, in_n - 1)
        return lo, hi, src - lo

    y0, y1, fy = weights(height, images.shape[2])
    x0, x1, fx = weights(width, images.shape[3])
    rows = images[:, :, y0] * (1 - fy)[:, None] + images[:, :, y1] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def transform_reference(images, choices, crop, mean_full, scale):
    out_h = crop or images.shape[2]
    out_w = crop or images.shape[3]
    outs = []
    for item, (h_off, w_off, mirrored) in zip(images, choices, strict=True):
        window = np.s_[:, h_off : h_off + out_h, w_off : w_off + out_w]
        value = (item[window] - mean_full[window]) * scale
        outs.append(value[:, :, ::-1] if mirrored else value)
    return np.stack(outs)


@pytest.mark.parametrize(
    "mode, resize, crop, mirror, mean, train",
    list(
        itertools.product(
            ["native", "color", "gray"],
            [None, RESIZE],
            [0, CROP],
            [False, True],
            ["none", "value", "values", "file"],
            [True, False],
        )
    ),
)
def test_decode_resize_transform_matches_numpy(mode, resize, crop, mirror, mean, train):
    files, bgr = encoded_images()
    channels = 1 if mode == "gray" else 3
    height, width = resize or (H, W)
    scale = 0.25
    rng = np.random.default_rng(22)
    mean_array = rng.uniform(0, 255, size=(channels, height, width)).astype(np.float32)
    param = {"scale": scale, "mirror": mirror, "crop_size": crop, "mean_value": []}
    mean_full = np.zeros((channels, height, width))
    if mean == "value":
        param["mean_value"] = [100.5]
        mean_full += 100.5
    elif mean == "values":
        values = [10.0, 120.25, 250.0][:channels]
        param["mean_value"] = values
        mean_full += np.array(values)[:, None, None]
    elif mean == "file":
        param["mean_file"] = "mean.binaryproto"
        param["mean_file_data"] = {"shape": list(mean_array.shape), "data": mean_array.tobytes()}
        mean_full = mean_array.astype(np.float64)

    # The pipeline: decode, resize, native transform.
    decoded = np.stack([decode_image(f, mode) for f in files])
    resized = np.stack([resize_image(d, *resize) for d in decoded]) if resize else decoded
    transformer = _engine.DataTransformer(param, train, seed=5)
    out, choices = transformer.transform(resized)

    # Stage by stage against the references.
    want_decoded = decode_reference(bgr, mode)
    assert np.abs(decoded - want_decoded).max() <= (1.01 if mode == "gray" else 0)
    want_resized = resize_reference(decoded.astype(np.float64), *resize) if resize else decoded
    assert np.abs(resized - want_resized).max() <= 1
    np.testing.assert_allclose(
        out,
        transform_reference(resized.astype(np.float64), choices, crop, mean_full, scale),
        rtol=1e-6,
        atol=1e-4,
    )
    # And end to end from the original pixels: within the decode and resize roundings.
    full = want_decoded
    if resize:
        full = resize_reference(full, *resize)
    end_to_end = transform_reference(full, choices, crop, mean_full, scale)
    assert np.abs(out - end_to_end).max() <= 2.01 * scale
    # The random choices follow the phase: centred crops in TEST.
    for h_off, w_off, mirrored in choices:
        if crop and not train:
            assert (h_off, w_off) == ((height - crop) // 2, (width - crop) // 2)
        if not mirror:
            assert not mirrored
