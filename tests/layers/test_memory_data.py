"""MemoryData (cpp/layers/memory_data.h): batches pushed from Python through
engine.Net.memory_data_feeder(name) come out of Forward unchanged (float) or transformed
natively (uint8), swapped into the top without overwriting arrays taken earlier; pops time out with a clear error; a feeder's error surfaces in forward;
forward waits with the GIL released."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine, errors
from caffeonspark.proto import caffe_pb2

LAYER = """
layer {{ name: "feed" type: "MemoryData" top: "data" top: "label"
  memory_data_param {{ batch_size: {n} channels: {c} height: {h} width: {w} }} {transform} }}
"""


def memory_net(n=2, c=3, h=4, w=5, transform="", extra="", phase=caffe_pb2.TRAIN, feed=None):
    text = 'name: "memory"\n' + LAYER.format(n=n, c=c, h=h, w=w, transform=transform) + extra
    return engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=phase, feed=feed)


def test_float_batches_come_out_unchanged_in_push_order():
    net = memory_net()
    feeder = net.memory_data_feeder("feed")
    assert net.blobs["data"].shape == (2, 3, 4, 5) and net.blobs["label"].shape == (2,)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 3, 4, 5)).astype(np.float32)
    labels = np.arange(6) * 1.5
    assert feeder.push(data, labels)  # 6 items = three batches of 2
    for k in range(3):
        net.forward()
        np.testing.assert_array_equal(net.blobs["data"].data, data[2 * k : 2 * k + 2])
        np.testing.assert_array_equal(net.blobs["label"].data, labels[2 * k : 2 * k + 2])
    assert feeder.batches_used == 3
    net.close()


def test_uint8_batches_get_the_transform():
    transform = "transform_param { scale: 0.5 mean_value: 10 mean_value: 20 }"
    net = memory_net(c=2, transform=transform)
    feeder = net.memory_data_feeder("feed")
    images = np.random.default_rng(1).integers(0, 256, size=(2, 2, 4, 5), dtype=np.uint8)
    feeder.push(images, [3, 4])
    net.forward()
    expected = (images.astype(np.float64) - np.array([10.0, 20.0])[None, :, None, None]) * 0.5
    np.testing.assert_allclose(net.blobs["data"].data, expected, rtol=1e-6)
    np.testing.assert_array_equal(net.blobs["label"].data, [3, 4])


def test_transformed_batches_swapped_into_the_top_stay_right_and_held_arrays_keep_theirs():
    """Forward swaps the prefetched buffer into the top and recycles the old one: over many
    batches every one is right, with a downstream layer reading the top, and an array taken
    from the top earlier still holds the batch it showed (its buffer is never recycled)."""
    transform = "transform_param { scale: 0.25 mean_value: 3 }"
    extra = 'layer { name: "flat" type: "Flatten" bottom: "data" top: "flat" }'
    net = memory_net(c=2, transform=transform, extra=extra)
    feeder = net.memory_data_feeder("feed")
    images = np.random.default_rng(2).integers(0, 256, size=(24, 2, 4, 5), dtype=np.uint8)
    expected = (images.astype(np.float32) - np.float32(3)) * np.float32(0.25)
    held = []
    pusher = threading.Thread(target=feeder.push, args=(images, np.arange(24)))
    pusher.start()
    for k in range(12):
        net.forward()
        batch = expected[2 * k : 2 * k + 2]
        np.testing.assert_array_equal(net.blobs["data"].data, batch)
        np.testing.assert_array_equal(net.blobs["flat"].data, batch.reshape(2, -1))
        if k % 4 == 0:
            held.append((k, net.blobs["data"].data))
    pusher.join()
    for k, array in held:
        np.testing.assert_array_equal(array, expected[2 * k : 2 * k + 2])
    net.close()


def test_uint8_crop_in_test_phase_takes_the_centre():
    net = memory_net(
        c=1, h=3, w=3, transform="transform_param { crop_size: 3 }", phase=caffe_pb2.TEST
    )
    feeder = net.memory_data_feeder("feed")
    images = np.arange(2 * 1 * 6 * 7, dtype=np.uint8).reshape(2, 1, 6, 7)
    feeder.push(images, [0, 1])
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, images[:, :, 1:4, 2:5])


def test_forward_times_out_naming_the_layer():
    net = memory_net()
    feeder = net.memory_data_feeder("feed")
    feeder.timeout = 0.3
    start = time.monotonic()
    with pytest.raises(
        errors.IoError, match=r"layer 'feed' \(MemoryData\).*no data arrived within 0.3 seconds"
    ):
        net.forward()
    assert 0.25 <= time.monotonic() - start < 5
    assert feeder.wait_seconds >= 0.25


def test_feeder_error_surfaces_in_forward_after_the_queued_batches():
    net = memory_net()
    feeder = net.memory_data_feeder("feed")
    feeder.timeout = 10
    feeder.push(np.ones((2, 3, 4, 5), np.float32), [0, 1])
    feeder.close(errors.FormatError("record 'k7' is corrupt"))
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, 1)
    with pytest.raises(errors.FormatError, match="record 'k7' is corrupt"):
        net.forward()
    assert feeder.push(np.ones((2, 3, 4, 5), np.float32), [0, 1]) is False

    other = memory_net()
    other_feeder = other.memory_data_feeder("feed")
    other_feeder.close(KeyError("no such column"))
    with pytest.raises(errors.IoError, match=r"layer 'feed'.*KeyError"):
        other.forward()


def test_closed_without_error_says_so():
    net = memory_net()
    feeder = net.memory_data_feeder("feed")
    feeder.close()
    with pytest.raises(errors.IoError, match="feeder was closed"):
        net.forward()


def test_push_validation():
    net = memory_net(transform="transform_param { scale: 0.5 }")
    feeder = net.memory_data_feeder("feed")
    with pytest.raises(errors.ShapeError, match="multiple of batch_size 2"):
        feeder.push(np.zeros((3, 3, 4, 5), np.uint8), [0, 1, 2])
    with pytest.raises(errors.ShapeError, match="2 items but 3 labels"):
        feeder.push(np.zeros((2, 3, 4, 5), np.uint8), [0, 1, 2])
    with pytest.raises(errors.ShapeError, match="got 1 channels"):
        feeder.push(np.zeros((2, 1, 4, 5), np.uint8), [0, 1])
    with pytest.raises(errors.ShapeError, match="images of 4 x 4"):
        feeder.push(np.zeros((2, 3, 4, 4), np.uint8), [0, 1])
    with pytest.raises(errors.ConfigError, match="push uint8 images"):
        feeder.push(np.zeros((2, 3, 4, 5), np.float32), [0, 1])
    with pytest.raises(errors.ShapeError, match="N, C, H, W"):
        feeder.push(np.zeros((2, 60), np.uint8), [0, 1])


def test_layer_configuration_errors():
    with pytest.raises(errors.ConfigError, match="must all be given and positive"):
        memory_net(h=0)
    with pytest.raises(errors.ConfigError, match="must both equal the crop size"):
        memory_net(transform="transform_param { crop_size: 3 }")
    net = memory_net()
    with pytest.raises(errors.ConfigError, match="no MemoryData layer 'nope'"):
        net.memory_data_feeder("nope")


def test_full_queue_blocks_the_pusher_until_forward_makes_room():
    net = memory_net()
    feeder = net.memory_data_feeder("feed")
    feeder.capacity = 1
    one = np.zeros((2, 3, 4, 5), np.float32)
    # Feed and ready queues (1 each) plus one batch in the prefetch thread's hands.
    for _ in range(3):
        assert feeder.push(one, [0, 1], timeout=5)
    with pytest.raises(errors.IoError, match="stayed full"):
        feeder.push(one, [0, 1], timeout=0.3)
    net.forward()
    assert feeder.push(one, [0, 1], timeout=5)


def test_forward_waits_with_the_gil_released():
    extra = """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
    net = memory_net(extra=extra)
    feeder = net.memory_data_feeder("feed")
    feeder.timeout = 20
    progress = {"ticks": 0}
    data = np.random.default_rng(2).normal(size=(2, 3, 4, 5)).astype(np.float32)

    def pusher():  # a Python thread: it can only run while forward waits without the GIL
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            progress["ticks"] += 1
        feeder.push(data, [1, 3])

    thread = threading.Thread(target=pusher)
    thread.start()
    start = time.monotonic()
    out = net.forward()
    elapsed = time.monotonic() - start
    thread.join(5)
    assert progress["ticks"] > 0 and elapsed < 10
    np.testing.assert_array_equal(net.blobs["data"].data, data)
    assert np.isfinite(out["loss"])
    net.backward()
    assert np.any(net.params["ip"][0].diff != 0)


def test_push_encoded_decodes_and_resizes_to_the_layer_size(anchors):
    # The real JPEG fixtures are 256 x 256; CaffeOnSpark's -resize brings them to the net's
    # input size (bilinear), then the transform runs natively.
    files = [(anchors / "caffeonspark" / f"{n}.jpg").read_bytes() for n in ("cat1", "dog1")]
    net = memory_net(c=3, h=32, w=24, transform="transform_param { scale: 0.5 }")
    feeder = net.memory_data_feeder("feed")
    with pytest.raises(errors.ShapeError, match="256 x 256; the layer wants 32 x 24"):
        feeder.push_encoded(files, [0, 1])
    assert feeder.push_encoded(files, [0, 1], resize=True)
    net.forward()
    want = [
        cv2.resize(cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR), (24, 32))
        for f in files
    ]
    want = np.stack(want).transpose(0, 3, 1, 2).astype(np.float32) * 0.5
    np.testing.assert_array_equal(net.blobs["data"].data, want)
    np.testing.assert_array_equal(net.blobs["label"].data, [0, 1])
    gray = memory_net(c=1, h=256, w=256, transform="transform_param { force_gray: true }")
    gray.memory_data_feeder("feed").push_encoded(files, [1, 0])
    gray.forward()
    assert gray.blobs["data"].shape == (2, 1, 256, 256)


def test_feed_option_resize_is_the_resize_flag():
    from caffeonspark.data.feed_options import FeedOptions

    image = np.random.default_rng(9).integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    net = memory_net(n=1, c=3, h=4, w=5, feed=FeedOptions(resize=True))
    feeder = net.memory_data_feeder("feed")
    assert feeder.resize
    feeder.push_encoded([cv2.imencode(".png", image.transpose(1, 2, 0))[1].tobytes()], [7])
    net.forward()
    want = cv2.resize(image.transpose(1, 2, 0), (5, 4)).transpose(2, 0, 1)
    np.testing.assert_array_equal(net.blobs["data"].data[0], want)
