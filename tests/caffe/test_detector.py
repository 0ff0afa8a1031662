"""caffe.Detector.detect_windows against a NumPy re-statement (load, crop each window,
resize to the input, preprocess, forward through caffe.Net); context padding; selective
search refused."""

import cv2
import numpy as np
import pytest
from tiny_deploy import preprocess, probabilities, write_model

import caffeonspark.caffe as caffe

MEAN = [0.3, 0.5, 0.2]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("detector"))


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    rgb = np.random.default_rng(8).integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("images") / "scene.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])  # OpenCV writes BGR
    return str(path), rgb.astype(np.float32) / 255


def test_detect_windows(model, image_file):
    deploy, weights = model
    path, rgb = image_file
    det = caffe.Detector(deploy, weights, mean=np.array(MEAN), raw_scale=2.0, input_scale=0.5,
                         channel_swap=(2, 1, 0))
    windows = np.array([[0, 0, 8, 8], [2, 3, 14, 19], [5, 1, 20, 24], [10, 10, 18, 18],
                        [0, 4, 9, 12]])
    got = det.detect_windows([(path, windows[:3]), (path, windows[3:])])
    assert [d["filename"] for d in got] == [path] * 5
    np.testing.assert_array_equal([d["window"] for d in got], windows)
    inputs = []
    for y0, x0, y1, x1 in windows:
        crop = caffe.io.resize_image(rgb[y0:y1, x0:x1], (8, 8))
        inputs.append(preprocess(crop, MEAN, 2.0, 0.5, (2, 1, 0)))
    np.testing.assert_allclose([d["prediction"] for d in got],
                               probabilities(deploy, weights, inputs), rtol=1e-5, atol=1e-6)


def test_context_pad_crop(model, image_file):
    deploy, weights = model
    _, rgb = image_file
    det = caffe.Detector(deploy, weights, mean=np.array(MEAN), raw_scale=2.0,
                         channel_swap=(2, 1, 0), context_pad=2)
    # crop_mean is the mean in image space: channels back in RGB order, divided by raw_scale
    np.testing.assert_allclose(det.crop_mean.ravel(), np.array(MEAN)[::-1] / 2.0)
    window = np.array([0, 2, 7, 9])  # touches the top edge: the box runs off the image
    got = det.crop(rgb, window)
    # scale 8 / (8 - 4) = 2: half sizes 4, centre (4, 6), box round([-4, -2, 12, 14]),
    # 17 x 17 pixels warped to 8: pad_y = round(4 * 8 / 17) = 2, clipped box [0, 0, 12, 14]
    # is 13 x 15 -> round(13 * 8 / 17) = 6 by round(15 * 8 / 17) = 7 (pad_x 1: 2 * 8 / 17)
    want = np.ones((8, 8, 3), np.float32) * (np.array(MEAN)[::-1] / 2.0)
    want[2:8, 1:8] = caffe.io.resize_image(rgb[0:12, 0:14], (6, 7))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    det.configure_crop(None)
    np.testing.assert_array_equal(det.crop(rgb, window), rgb[0:7, 2:9])


def test_selective_search_is_refused(model):
    det = caffe.Detector(*model)
    with pytest.raises(NotImplementedError, match="selective search.*detect_windows"):
        det.detect_selective_search(["a.jpg"])
