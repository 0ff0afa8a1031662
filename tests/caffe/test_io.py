"""caffe.io against NumPy: the Transformer's steps and their inverse, load_image's colour
and gray conversions, resize_image, oversample, and the proto converters."""

import cv2
import numpy as np
import pytest

import caffeonspark.caffe as caffe
from caffeonspark.proto import caffe_pb2


def test_transformer_preprocess_and_deprocess():
    rng = np.random.default_rng(0)
    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255.0)
    mean = np.array([10.0, 20.0, 30.0], np.float32)
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.5)
    img = rng.random((4, 5, 3)).astype(np.float32)
    out = t.preprocess("data", img)
    expected = (img.transpose(2, 0, 1)[[2, 1, 0]] * 255.0 - mean[:, None, None]) * 0.5
    assert out.dtype == np.float32 and out.shape == (3, 4, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.deprocess("data", out[np.newaxis]), img, rtol=1e-5, atol=1e-5)


def test_transformer_resizes_and_checks():
    t = caffe.io.Transformer({"data": (1, 3, 6, 8)})
    t.set_transpose("data", (2, 0, 1))
    img = np.ones((3, 4, 3), np.float32) * 0.25
    np.testing.assert_allclose(t.preprocess("data", img), np.full((3, 6, 8), 0.25), atol=1e-6)
    with pytest.raises(ValueError):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(ValueError):
        t.set_mean("data", np.zeros((3, 5, 5)))
    t.set_mean("data", np.zeros((3, 6, 8)))
    with pytest.raises(ValueError):
        t.set_transpose("data", (1, 0))
    with pytest.raises(ValueError):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(KeyError):
        t.preprocess("label", img)


def test_load_image_color_and_gray(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 2] = (10, 200, 30)
    path = str(tmp_path / "x.png")
    cv2.imwrite(path, rgb[:, :, ::-1])  # OpenCV writes BGR
    color = caffe.io.load_image(path)
    assert color.dtype == np.float32 and color.shape == (2, 3, 3)
    np.testing.assert_allclose(color, rgb / 255.0, atol=1e-6)
    gray = caffe.io.load_image(path, color=False)
    assert gray.shape == (2, 3, 1)
    np.testing.assert_allclose(gray[..., 0], (rgb / 255.0) @ [0.2125, 0.7154, 0.0721], atol=1e-6)
    mono = str(tmp_path / "g.png")
    cv2.imwrite(mono, np.array([[0, 128], [255, 64]], np.uint8))
    tiled = caffe.io.load_image(mono)
    assert tiled.shape == (2, 2, 3)
    np.testing.assert_allclose(tiled[..., 1], np.array([[0, 128], [255, 64]]) / 255.0, atol=1e-6)


def test_resize_and_oversample():
    im = np.arange(2 * 2 * 4, dtype=np.float32).reshape(2, 2, 4)
    big = caffe.io.resize_image(im, (4, 4), interp_order=0)
    assert big.shape == (4, 4, 4) and big.dtype == np.float32
    np.testing.assert_array_equal(big[::2, ::2], im)
    images = np.random.default_rng(1).random((2, 5, 6, 3)).astype(np.float32)
    crops = caffe.io.oversample(images, (3, 4))
    assert crops.shape == (20, 3, 4, 3)
    np.testing.assert_array_equal(crops[0], images[0, :3, :4])
    np.testing.assert_array_equal(crops[3], images[0, 2:, 2:])
    np.testing.assert_array_equal(crops[4], images[0, 1:4, 1:5])
    np.testing.assert_array_equal(crops[5], images[0, :3, :4][:, ::-1])
    np.testing.assert_array_equal(crops[10], images[1, :3, :4])


def test_proto_converters():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = caffe.io.array_to_blobproto(arr)
    assert list(blob.shape.dim) == [2, 3, 4]
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), arr)
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=range(6))
    assert caffe.io.blobproto_to_array(legacy).shape == (1, 2, 1, 3)
    text = caffe.io.arraylist_to_blobprotovector_str([arr, arr[0]])
    back = caffe.io.blobprotovector_str_to_arraylist(text)
    np.testing.assert_array_equal(back[1], arr[0])
    u8 = (np.arange(24) % 256).astype(np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(u8, 7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), u8)
    floats = caffe.io.datum_to_array(caffe.io.array_to_datum(arr / 7))
    np.testing.assert_allclose(floats, arr / 7, rtol=1e-6)
    with pytest.raises(ValueError):
        caffe.io.array_to_datum(arr[0])
