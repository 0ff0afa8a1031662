"""WindowData (cpp/layers/window_data.h, python/caffeonspark/data/window_feeder.py): the
window file's fg/bg split, batch composition (background first, then floor(batch_size *
fg_fraction) foreground), crops checked against hand-computed Caffe geometry (warp, context
padding with zero fill and mirrored padding, square mode), mean and scale, the net's
batches equal to the sampler's, and errors naming the window file, line or image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine, errors
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.data.window_feeder import WindowSampler, read_window_file, window_crop
from caffeonspark.proto import caffe_pb2

RH, RW = 20, 30  # image rows, columns


def bgr_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(RH, RW, 3), dtype=np.uint8)


@pytest.fixture
def window_file(tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), bgr_image(i))
    text = f"""# 0
im0.png
3 {RH} {RW}
4
1 0.9 2 3 12 10
2 0.5 5 5 20 15
0 0.1 0 0 9 9
3 0.3 1 1 8 8
# 1
im1.png
3 {RH} {RW}
2
3 0.7 10 2 25 18
0 0.0 3 4 7 9
"""
    (tmp_path / "windows.txt").write_text(text)
    return tmp_path / "windows.txt", f"{tmp_path}/"


def region(image_hwc: np.ndarray, y1, y2, x1, x2, size) -> np.ndarray:
    """cv2 bilinear warp of the inclusive box to size (h, w), as (C, h, w) float64."""
    cut = np.ascontiguousarray(image_hwc[y1 : y2 + 1, x1 : x2 + 1])
    return cv2.resize(cut, (size[1], size[0]), interpolation=cv2.INTER_LINEAR).transpose(
        2, 0, 1
    ).astype(np.float64)


def test_fg_bg_split_by_thresholds(window_file):
    source, root = window_file
    parsed = read_window_file(str(source), root, fg_threshold=0.5, bg_threshold=0.5)
    assert [(w.image, w.label) for w in parsed.fg] == [(0, 1), (0, 2), (1, 3)]
    assert [(w.image, w.label, w.overlap) for w in parsed.bg] == [
        (0, 0, 0.0), (0, 0, 0.0), (1, 0, 0.0)
    ]  # 0.3 < 0.5: background, its class forced to 0
    parsed = read_window_file(str(source), root, fg_threshold=0.8, bg_threshold=0.2)
    assert [w.label for w in parsed.fg] == [1]
    assert len(parsed.bg) == 2  # 0.5 and 0.7 and 0.3 fall between: unused
    assert parsed.images[1] == (f"{root}im1.png", (3, RH, RW))


def test_warp_crop_is_the_box_resized():
    image = bgr_image(0)
    got = window_crop(image.transpose(2, 0, 1), (5, 4, 14, 11), crop_size=10)
    np.testing.assert_array_equal(got, region(image, 4, 11, 5, 14, (10, 10)))


def test_context_pad_grows_the_box():
    # box (5, 4)-(14, 11), crop 10, pad 2: scale 10/6, centre (10, 8), half sizes (5, 4):
    # x 10 -+ 8.33 -> 2..18, y 8 -+ 6.67 -> 1..15, all inside; 17 x 15 warped to 10 x 10
    image = bgr_image(1)
    got = window_crop(image.transpose(2, 0, 1), (5, 4, 14, 11), crop_size=10, context_pad=2)
    np.testing.assert_array_equal(got, region(image, 1, 15, 2, 18, (10, 10)))


@pytest.mark.parametrize("mirror", [False, True])
def test_context_past_the_image_edge_is_zero_padding(mirror):
    # box (0, 0)-(5, 5), crop 10, pad 2: grown to -2..8 (11 wide); clipped 0..8, pad 2 on
    # the left/top; scale 10/11: the 9 x 9 region warps to round(8.18) = 8, the padding to
    # round(1.82) = 2; mirrored, the (zero) right padding, 0, goes first.
    image = bgr_image(2)
    got = window_crop(image.transpose(2, 0, 1), (0, 0, 5, 5), crop_size=10, context_pad=2,
                      mirror=mirror)
    warped = region(image, 0, 8, 0, 8, (8, 8))
    want = np.zeros((3, 10, 10))
    if mirror:
        want[:, 2:10, 0:8] = warped[:, :, ::-1]
    else:
        want[:, 2:10, 2:10] = warped
    np.testing.assert_array_equal(got, want)


def test_square_mode_uses_the_longer_side():
    # box (5, 4)-(14, 7): 10 x 4, half sizes 5 and 2 -> both 5; centre (10, 6):
    # x 5..15, y 1..11 (11 x 11) warped to 10 x 10
    image = bgr_image(3)
    got = window_crop(image.transpose(2, 0, 1), (5, 4, 14, 7), crop_size=10, square=True)
    np.testing.assert_array_equal(got, region(image, 1, 11, 5, 15, (10, 10)))


def test_mean_file_centre_window_and_scale():
    image = bgr_image(4)
    mean = np.random.default_rng(9).uniform(0, 255, size=(3, 12, 12)).astype(np.float32)
    got = window_crop(image.transpose(2, 0, 1), (0, 0, 5, 5), crop_size=10, context_pad=2,
                      scale=0.25, mean=mean)
    warped = region(image, 0, 8, 0, 8, (8, 8))
    want = np.zeros((3, 10, 10))
    off = (12 - 10) // 2
    want[:, 2:10, 2:10] = (warped - mean[:, off + 2 : off + 10, off + 2 : off + 10]) * 0.25
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    values = np.array([10, 20, 30], dtype=np.float32)
    got = window_crop(image.transpose(2, 0, 1), (5, 4, 14, 11), crop_size=10, scale=2,
                      mean_values=values)
    want = (region(image, 4, 11, 5, 14, (10, 10)) - values[:, None, None]) * 2
    np.testing.assert_allclose(got, want, rtol=1e-6)


def window_net(source, root, batch_size=8, fg_fraction=0.25, transform="crop_size: 10",
               extra="", feed=None):
    text = f"""layer {{ name: "win" type: "WindowData" top: "data" top: "label"
      window_data_param {{ source: "{source}" root_folder: "{root}" batch_size: {batch_size}
        fg_fraction: {fg_fraction} {extra} }}
      transform_param {{ {transform} }} }}"""
    return engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=engine.TRAIN,
                      feed=feed)


def test_net_batches_are_background_then_foreground_and_match_the_sampler(window_file):
    source, root = window_file
    net = window_net(source, root, batch_size=8, fg_fraction=0.25,
                     transform="crop_size: 10 mirror: true", extra="context_pad: 1",
                     feed=FeedOptions(seed=7))
    assert net.blobs["data"].shape == (8, 3, 10, 10)
    assert net.blobs["label"].shape == (8,)
    layer = net.net_param.layer[0]
    sampler = WindowSampler(layer, {}, "")
    rng = np.random.default_rng([7, 0])
    for _ in range(3):
        net.forward()
        data, labels, choices = sampler.batch(rng)
        got = net.blobs["label"].data
        assert (got[:6] == 0).all() and (got[6:] > 0).all()  # floor(8 * 0.25) = 2 fg
        np.testing.assert_array_equal(got, labels)
        np.testing.assert_array_equal(net.blobs["data"].data, data)
    net.close()


def test_all_foreground_and_caching(window_file):
    source, root = window_file
    net = window_net(source, root, batch_size=4, fg_fraction=1, extra="cache_images: true")
    net.forward()
    assert (net.blobs["label"].data > 0).all()
    net.close()


def test_errors_name_the_file_line_or_image(window_file, tmp_path):
    source, root = window_file
    bad = tmp_path / "bad.txt"
    bad.write_text(source.read_text().replace("3 0.7", "3 high"))
    with pytest.raises(errors.FormatError, match=r"bad\.txt' line 13: expected a window's "
                                                  "overlap, got 'high'"):
        window_net(bad, root)
    zero = tmp_path / "zero.txt"
    zero.write_text(source.read_text().replace("1 0.9", "0 0.9"))
    with pytest.raises(errors.FormatError, match="foreground window .* class 0"):
        window_net(zero, root)
    gone = tmp_path / "gone.txt"
    gone.write_text(source.read_text().replace("im1.png", "missing.png"))
    net = window_net(gone, root, batch_size=8, fg_fraction=1)
    with pytest.raises(errors.IoError, match=r"gone\.txt' image 1: cannot read .*missing\.png"):
        for _ in range(20):
            net.forward()
    net.close()
    with pytest.raises(errors.ConfigError, match="crop_size"):
        window_net(source, root, transform="mirror: true")
    with pytest.raises(errors.ConfigError, match="crop_mode"):
        window_net(source, root, extra='crop_mode: "round"')
