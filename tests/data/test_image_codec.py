"""image_codec (python/caffeonspark/data/image_codec.py) and datums.datum_image: OpenCV decode
modes (native / color / gray, BGR order), the real JPEG fixtures of CaffeOnSpark (sizes read
independently from the JPEG headers), bilinear resize against a float64 NumPy reference,
errors, and the order-keeping DecodePool."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from caffeonspark import errors
from caffeonspark.data.datums import datum_image, encoded_datum, raw_datum
from caffeonspark.data.image_codec import (
    DecodePool,
    decode_image,
    decode_mode,
    encode_image,
    resize_image,
)

FIXTURES = ("cat1.jpg", "cat2.jpg", "dog1.jpg", "dog2.jpg")


def png(hwc: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", hwc)
    assert ok
    return buf.tobytes()


def jpeg_header(data: bytes) -> tuple[int, int, int]:
    """(components, height, width) from the first SOFn marker: an independent reading."""
    assert data[:2] == b"\xff\xd8"
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return data[pos + 9], height, width
        pos += 2 + length
    raise AssertionError("no SOF marker")


def luma(bgr: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of a (3, H, W) BGR image, float64."""
    b, g, r = bgr.astype(np.float64)
    return 0.299 * r + 0.587 * g + 0.114 * b


@pytest.mark.parametrize("name", FIXTURES)
def test_real_jpeg_fixtures_decode_with_their_header_size(anchors, name):
    data = (anchors / "caffeonspark" / name).read_bytes()
    components, height, width = jpeg_header(data)
    native = decode_image(data, "native")
    assert native.dtype == np.uint8 and native.shape == (components, height, width)
    color = decode_image(data, "color")
    assert color.shape == (3, height, width)
    gray = decode_image(data, "gray")
    assert gray.shape == (1, height, width)
    # libjpeg's gray decode keeps the stored luma; the colour decode converts YCbCr to BGR
    # (clipping out-of-gamut pixels): the two agree to rounding but for a few clipped pixels.
    diff = np.abs(gray[0] - luma(color))
    assert diff.mean() < 0.25 and (diff > 1).mean() < 0.02 and diff.max() < 10


def test_colour_planes_are_bgr_for_png_and_jpeg():
    hwc = np.zeros((16, 16, 3), np.uint8)
    hwc[..., 2] = 250  # red in OpenCV's BGR storage
    hwc[..., 1] = 40
    for data in (png(hwc), cv2.imencode(".jpg", hwc)[1].tobytes()):
        chw = decode_image(data, "native")
        assert chw.shape == (3, 16, 16)
        np.testing.assert_allclose(chw.reshape(3, -1).mean(axis=1), [0, 40, 250], atol=3)


def test_png_round_trip_is_exact_in_each_mode():
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(9, 7), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(png(color)), color.transpose(2, 0, 1))
    np.testing.assert_array_equal(decode_image(png(gray)), gray[None])  # native keeps 1 channel
    np.testing.assert_array_equal(decode_image(png(gray), "color"), np.repeat(gray[None], 3, 0))
    got = decode_image(png(color), "gray")[0].astype(np.float64)
    assert np.abs(got - luma(color.transpose(2, 0, 1))).max() <= 1.01


def test_alpha_is_dropped():
    bgra = np.random.default_rng(1).integers(0, 256, size=(5, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(
        decode_image(png(bgra), "native"), bgra[..., :3].transpose(2, 0, 1)
    )


def test_encode_then_decode_png():
    chw = np.random.default_rng(2).integers(0, 256, size=(3, 6, 5), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(encode_image(chw, "png")), chw)
    gray = chw[:1]
    np.testing.assert_array_equal(decode_image(encode_image(gray, ".png")), gray)


def test_decode_errors():
    with pytest.raises(errors.FormatError, match="where: cannot decode.*5 bytes"):
        decode_image(b"hello", "native", "where: ")
    with pytest.raises(errors.FormatError, match="0 bytes"):
        decode_image(b"", "native")
    with pytest.raises(errors.ConfigError, match="unknown decode mode"):
        decode_image(png(np.zeros((2, 2), np.uint8)), "sepia")
    with pytest.raises(errors.ConfigError, match="both force_color and force_gray"):
        decode_mode(True, True)
    assert [decode_mode(False, False), decode_mode(True, False), decode_mode(False, True)] == [
        "native",
        "color",
        "gray",
    ]


def bilinear_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """float64 bilinear resize with half-pixel centres and replicated edges (OpenCV's rule)."""
    channels, in_h, in_w = image.shape

    def axis(out_n, in_n):
        src = (np.arange(out_n) + 0.5) * (in_n / out_n) - 0.5
        src = np.clip(src, 0, None)
        lo = np.minimum(np.floor(src).astype(int), in_n - 1)
        hi = np.minimum(lo + 1, in_n - 1)
        frac = src - lo
        frac[lo == in_n - 1] = 0.0
        return lo, hi, frac

    y0, y1, fy = axis(height, in_h)
    x0, x1, fx = axis(width, in_w)
    img = image.astype(np.float64)
    top = img[:, y0][:, :, x0] * (1 - fx) + img[:, y0][:, :, x1] * fx
    bottom = img[:, y1][:, :, x0] * (1 - fx) + img[:, y1][:, :, x1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    "in_hw, out_hw", [((8, 6), (16, 12)), ((9, 13), (5, 4)), ((7, 7), (7, 11)), ((20, 20), (6, 6))]
)
def test_resize_matches_bilinear_reference(channels, in_hw, out_hw):
    image = np.random.default_rng(3).integers(0, 256, size=(channels, *in_hw), dtype=np.uint8)
    got = resize_image(image, *out_hw)
    assert got.shape == (channels, *out_hw) and got.dtype == np.uint8
    want = bilinear_reference(image, *out_hw)
    # OpenCV interpolates uint8 in fixed point: within one grey level of the exact value.
    assert np.abs(got - want).max() <= 1.0


def test_resize_of_float_and_many_channel_images():
    image = np.random.default_rng(4).normal(size=(5, 6, 4)).astype(np.float32)
    got = resize_image(image, 3, 8)
    np.testing.assert_allclose(got, bilinear_reference(image, 3, 8), atol=1e-5)
    assert resize_image(image, 6, 4) is image  # same size: untouched


def test_datum_image_raw_float_encoded_and_resize():
    chw = np.random.default_rng(5).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    np.testing.assert_array_equal(datum_image(raw_datum(chw, 1)), chw)
    enc = encoded_datum(encode_image(chw, ".png"), 2)
    assert enc.channels == enc.height == enc.width == 0 and enc.encoded
    np.testing.assert_array_equal(datum_image(enc), chw)
    assert datum_image(enc, mode="gray").shape == (1, 4, 5)
    resized = datum_image(raw_datum(chw, 1), resize=(8, 10))
    assert np.abs(resized - bilinear_reference(chw, 8, 10)).max() <= 1
    short = raw_datum(chw, 1)
    short.data = short.data[:-1]
    with pytest.raises(errors.FormatError, match="src key 'k': Datum holds 59 data bytes"):
        datum_image(short, "src key 'k'")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_decode_pool_keeps_order_and_raises_the_first_error(threads):
    items = list(range(23))
    seen = set()

    def work(i):
        seen.add(threading.current_thread().name)
        return i * i

    with DecodePool(threads) as pool:
        assert pool.map(work, items) == [i * i for i in items]
        assert pool.map(work, []) == []

        def fail(i):
            if i in (7, 15):
                raise errors.FormatError(f"bad {i}")
            return i

        with pytest.raises(errors.FormatError, match="bad 7"):
            pool.map(fail, items)
    if threads > 1:
        assert any(name.startswith("decode") for name in seen)


def test_fixtures_are_read_in_place(anchors):
    # The fixtures stay in shared/: nothing in the repository duplicates them.
    repo = Path(__file__).resolve().parents[2]
    assert not list(repo.glob("**/cat1.jpg"))
