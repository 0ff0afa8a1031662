"""caffe.Classifier against a NumPy re-statement of its pipeline (resize, ten crops or the
centre crop, preprocess, forward, mean over crops), and caffe.Timer."""

import time

import numpy as np
import pytest
from tiny_deploy import preprocess, probabilities, write_model

import caffeonspark.caffe as caffe

MEAN = [0.3, 0.5, 0.2]
SETTINGS = dict(mean=np.array(MEAN), raw_scale=2.0, input_scale=0.5, channel_swap=(2, 1, 0))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("classifier"))


def ten_crops(image, h, w):
    """Four corners, centre, then the same mirrored, restated with plain slicing."""
    height, width = image.shape[:2]
    origins = [(0, 0), (0, width - w), (height - h, 0), (height - h, width - w),
               ((height - h) // 2, (width - w) // 2)]
    five = [image[y:y + h, x:x + w] for y, x in origins]
    return five + [c[:, ::-1] for c in five]


def test_predict_oversampled_is_the_mean_over_ten_crops(model):
    deploy, weights = model
    clf = caffe.Classifier(deploy, weights, image_dims=(10, 11), **SETTINGS)
    rng = np.random.default_rng(4)
    images = [rng.random((10, 11, 3), dtype=np.float32) for _ in range(3)]
    got = clf.predict(images)
    assert got.shape == (3, 5)
    for image, row in zip(images, got, strict=True):
        inputs = [preprocess(c, MEAN, 2.0, 0.5, (2, 1, 0)) for c in ten_crops(image, 8, 8)]
        want = probabilities(deploy, weights, inputs).mean(axis=0)
        np.testing.assert_allclose(row, want, rtol=1e-5, atol=1e-6)


def test_predict_centre_crop_after_resize(model):
    deploy, weights = model
    clf = caffe.Classifier(deploy, weights, image_dims=(10, 10), **SETTINGS)
    rng = np.random.default_rng(5)
    images = [rng.random((14, 12, 3), dtype=np.float32) for _ in range(5)]  # 5: two batches
    got = clf.predict(images, oversample=False)
    resized = [caffe.io.resize_image(image, (10, 10)) for image in images]
    inputs = [preprocess(r[1:9, 1:9], MEAN, 2.0, 0.5, (2, 1, 0)) for r in resized]
    np.testing.assert_allclose(got, probabilities(deploy, weights, inputs), rtol=1e-5,
                               atol=1e-6)


def test_defaults_take_the_input_size(model):
    deploy, weights = model
    clf = caffe.Classifier(deploy, weights)
    np.testing.assert_array_equal(clf.image_dims, [8, 8])
    image = np.random.default_rng(6).random((8, 8, 3), dtype=np.float32)
    want = probabilities(deploy, weights, [image.transpose(2, 0, 1)])
    np.testing.assert_allclose(clf.predict([image], oversample=False), want, rtol=1e-5)
    # Ten crops of an image the crop size are the image five times and its mirror five times.
    mirror = probabilities(deploy, weights, [image[:, ::-1].transpose(2, 0, 1)])
    np.testing.assert_allclose(clf.predict([image]), (want + mirror) / 2, rtol=1e-5)


def test_timer_measures_the_last_interval():
    timer = caffe.Timer()
    assert timer.ms == 0.0  # never started
    timer.start()
    time.sleep(0.05)
    timer.stop()
    first = timer.seconds()
    assert 0.045 <= first < 1.0
    assert timer.milliseconds() == pytest.approx(first * 1000)
    timer.start()
    ms = timer.ms  # reading a running timer stops it
    assert 0 <= ms < 45 and timer.ms == ms
