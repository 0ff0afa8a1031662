"""Data (cpp/layers/data.h) with its LMDB feeder thread (python/caffeonspark/data/
lmdb_feeder.py), started by engine.Net: records come out in key order with wrap-around,
transformed natively; sharding across readers; corrupt records, missing sources, LevelDB
and encoded Datums fail with clear errors; forward runs with the GIL released."""

from __future__ import annotations

import gc
import os
import shutil
import threading
import time
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine, errors, model_io
from caffeonspark._native import _engine
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.data.lmdb_feeder import LmdbFeeder
from caffeonspark.proto import caffe_pb2

C, H, W = 2, 5, 6


def datum(image: np.ndarray, label: int, as_float: bool = False) -> caffe_pb2.Datum:
    d = caffe_pb2.Datum(channels=image.shape[0], height=image.shape[1], width=image.shape[2])
    if as_float:
        d.float_data.extend(image.astype(np.float32).ravel().tolist())
    else:
        d.data = image.astype(np.uint8).tobytes()
    d.label = label
    return d


def write_lmdb(path: Path, values: dict[int, bytes]) -> Path:
    """Keys %08d; inserted in shuffled order (LMDB keeps them sorted)."""
    env = lmdb.open(str(path), map_size=1 << 26)
    order = np.random.default_rng(99).permutation(sorted(values))
    with env.begin(write=True) as txn:
        for index in order:
            txn.put(b"%08d" % index, values[int(index)])
    env.close()
    return path


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, C, H, W), dtype=np.uint8)


@pytest.fixture
def db10(tmp_path):
    pixels = images(10)
    values = {i: datum(pixels[i], 100 + i).SerializeToString() for i in range(10)}
    return write_lmdb(tmp_path / "db10", values), pixels


def data_net(
    source,
    batch_size=4,
    transform="",
    phase=caffe_pb2.TRAIN,
    backend="LMDB",
    tops=("data", "label"),
    extra="",
    prefetch=None,
    feed=None,
):
    top_text = " ".join(f'top: "{t}"' for t in tops)
    prefetch_text = f"prefetch: {prefetch}" if prefetch else ""
    text = f"""
name: "datanet"
layer {{ name: "data" type: "Data" {top_text}
  data_param {{ source: "{source}" batch_size: {batch_size} backend: {backend} {prefetch_text} }}
  {transform} }}
{extra}
"""
    net = engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=phase, feed=feed)
    net.data_feeds.set_timeout(30)
    return net


def test_forward_yields_scaled_pixels_in_key_order_with_wrap_around(db10):
    path, pixels = db10
    net = data_net(path, transform="transform_param { scale: 0.00390625 }")
    assert net.blobs["data"].shape == (4, C, H, W) and net.blobs["label"].shape == (4,)
    for step in range(6):  # 24 records from a DB of 10: wraps around twice
        net.forward()
        index = (np.arange(4) + 4 * step) % 10
        np.testing.assert_array_equal(
            net.blobs["data"].data, pixels[index].astype(np.float32) * np.float32(0.00390625)
        )
        np.testing.assert_array_equal(net.blobs["label"].data, 100 + index)
    report = net.data_feeds.wait_report()["data"]
    assert report["batches"] == 6 and report["wait_seconds"] >= 0
    net.close()
    assert not any(f.alive for f in net.data_feeds.lmdb_feeders.values())


def test_float_data_datums_and_a_single_top(tmp_path):
    values = np.random.default_rng(3).normal(size=(5, C, H, W)).astype(np.float32)
    db = write_lmdb(
        tmp_path / "floats",
        {i: datum(values[i], i, as_float=True).SerializeToString() for i in range(5)},
    )
    net = data_net(db, batch_size=5, tops=("data",), transform="transform_param { scale: 2 }")
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, values * 2)


def test_crop_mirror_and_mean_file_end_to_end(tmp_path, db10):
    path, pixels = db10
    mean = np.random.default_rng(4).uniform(0, 255, size=(C, H, W)).astype(np.float32)
    mean_path = tmp_path / "mean.binaryproto"
    model_io.write_binaryproto(mean_path, mean[None], legacy_4d=True)
    transform = (
        f'transform_param {{ crop_size: 3 mirror: true scale: 0.5 mean_file: "{mean_path}" }}'
    )

    def windows(index):  # every output Caffe's rules allow for record `index`
        for h in range(H - 2):
            for w in range(W - 2):
                value = (
                    pixels[index, :, h : h + 3, w : w + 3]
                    - mean[:, h : h + 3, w : w + 3].astype(np.float64)
                ) * 0.5
                yield h, w, False, value
                yield h, w, True, value[:, :, ::-1]

    engine.set_random_seed(5)
    train = data_net(path, batch_size=10, transform=transform)
    assert train.blobs["data"].shape == (10, C, 3, 3)
    seen = set()
    for _ in range(3):
        train.forward()
        for i in range(10):
            out = train.blobs["data"].data[i]
            match = [(h, w, m) for h, w, m, v in windows(i) if np.allclose(out, v, atol=1e-4)]
            assert match, f"record {i}: output is no crop/mirror of the mean-subtracted image"
            seen.add(match[0])
    assert len({(h, w) for h, w, _ in seen}) > 1 and {m for _, _, m in seen} == {False, True}

    test = data_net(
        path, batch_size=10, transform=transform.replace("mirror: true", ""), phase=caffe_pb2.TEST
    )
    test.forward()
    centre = (pixels[:, :, 1:4, 1:4] - mean[None, :, 1:4, 1:4].astype(np.float64)) * 0.5
    np.testing.assert_allclose(test.blobs["data"].data, centre, atol=1e-4)


def test_same_seed_same_random_crops(db10):
    path, _ = db10
    transform = "transform_param { crop_size: 3 mirror: true }"
    outputs = []
    for _ in range(2):
        engine.set_random_seed(17)
        net = data_net(path, batch_size=10, transform=transform)
        net.forward()
        outputs.append(net.blobs["data"].data.copy())
        net.close()
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_sharded_readers_see_each_record_once_per_epoch(db10, world_size):
    path, _ = db10
    epochs = 3
    counts = np.zeros(10, dtype=int)
    for rank in range(world_size):
        reader = LmdbFeeder(path, queue=None, batch_size=1, rank=rank, world_size=world_size)
        records = reader.records()
        mine = len([i for i in range(10 * epochs) if i % world_size == rank])
        for _ in range(mine):
            key, _ = next(records)
            counts[int(key)] += 1
    np.testing.assert_array_equal(counts, epochs)


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharding_through_nets(db10, world_size):
    path, _ = db10
    labels = []
    for rank in range(world_size):
        feed = FeedOptions(rank=rank, world_size=world_size)
        net = data_net(path, batch_size=1, feed=feed)
        mine = len([i for i in range(10) if i % world_size == rank])
        for _ in range(mine):
            net.forward()
            labels.append(int(net.blobs["label"].data[0]) - 100)
        net.close()
    assert sorted(labels) == list(range(10))
    # TEST phase does not skip: every record, in order, whatever the shard.
    test = data_net(path, batch_size=10, phase=caffe_pb2.TEST, feed=feed)
    test.forward()
    np.testing.assert_array_equal(test.blobs["label"].data, 100 + np.arange(10))


@pytest.mark.parametrize("corruption", ["short", "garbage", "shape"])
def test_corrupt_datum_raises_format_error_naming_the_key_in_forward(tmp_path, corruption):
    pixels = images(8)
    values = {i: datum(pixels[i], i).SerializeToString() for i in range(8)}
    if corruption == "short":
        values[5] = caffe_pb2.Datum(
            channels=C, height=H, width=W, data=b"\x01" * 7, label=5
        ).SerializeToString()
    elif corruption == "garbage":
        values[5] = b"\xff\xff\xff\xff not a datum"
    else:
        values[5] = datum(np.zeros((C, H + 1, W), np.uint8), 5).SerializeToString()
    net = data_net(write_lmdb(tmp_path / "bad", values), batch_size=4)
    net.forward()  # records 0-3 are fine
    np.testing.assert_array_equal(net.blobs["label"].data, [0, 1, 2, 3])
    with pytest.raises(errors.FormatError, match="00000005") as info:
        net.forward()
    assert "layer 'data' (Data)" in str(info.value) and str(tmp_path / "bad") in str(info.value)


def test_missing_source_raises_io_error_at_construction(tmp_path):
    missing = tmp_path / "no_such_lmdb"
    start = time.monotonic()
    with pytest.raises(errors.IoError, match=rf"layer 'data' \(Data\).*'{missing}' does not exist"):
        data_net(missing)
    assert time.monotonic() - start < 5


def test_empty_lmdb_raises_io_error(tmp_path):
    with pytest.raises(errors.IoError, match="holds no records"):
        data_net(write_lmdb(tmp_path / "empty", {}))


def test_leveldb_is_refused_with_a_hint(db10):
    path, _ = db10
    with pytest.raises(
        errors.ConfigError, match="LevelDB databases are unsupported; convert the database to LMDB"
    ):
        data_net(path, backend="LEVELDB")


def png_datum(image: np.ndarray, label: int) -> caffe_pb2.Datum:
    """An encoded Datum (PNG: lossless, so decoded pixels equal `image`), made with OpenCV."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image.transpose(1, 2, 0)))
    assert ok
    return caffe_pb2.Datum(data=buf.tobytes(), label=label, encoded=True)


def test_encoded_datums_are_decoded_like_raw_ones(tmp_path):
    pixels = np.random.default_rng(5).integers(0, 256, size=(6, 3, H, W), dtype=np.uint8)
    values = {i: png_datum(pixels[i], 10 + i).SerializeToString() for i in range(6)}
    values[2] = datum(pixels[2], 12).SerializeToString()  # raw and encoded may be mixed
    net = data_net(
        write_lmdb(tmp_path / "png", values),
        batch_size=3,
        transform="transform_param { scale: 0.5 }",
    )
    assert net.blobs["data"].shape == (3, 3, H, W)
    for step in range(2):
        net.forward()
        np.testing.assert_array_equal(
            net.blobs["data"].data, pixels[3 * step : 3 * step + 3].astype(np.float32) * 0.5
        )
        np.testing.assert_array_equal(net.blobs["label"].data, 10 + np.arange(3) + 3 * step)


@pytest.mark.parametrize("flag", ["", "force_gray: true", "force_color: true"])
def test_encoded_gray_and_color_decoding_follows_force_flags(tmp_path, flag):
    gray = np.random.default_rng(6).integers(0, 256, size=(1, H, W), dtype=np.uint8)
    db = write_lmdb(tmp_path / "gray", {0: png_datum(gray, 0).SerializeToString()})
    net = data_net(db, batch_size=1, transform=f"transform_param {{ {flag} }}")
    want = 3 if flag == "force_color: true" else 1
    assert net.blobs["data"].shape == (1, want, H, W)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data[0], np.repeat(gray, want, axis=0))


def test_undecodable_encoded_datum_names_the_key(tmp_path):
    encoded = caffe_pb2.Datum(data=b"\x89PNG...", encoded=True, label=1).SerializeToString()
    with pytest.raises(errors.FormatError, match="00000000.*cannot decode"):
        data_net(write_lmdb(tmp_path / "enc_first", {0: encoded}))
    pixels = images(3)
    values = {
        0: datum(pixels[0], 0).SerializeToString(),
        1: encoded,
        2: datum(pixels[2], 2).SerializeToString(),
    }
    net = data_net(write_lmdb(tmp_path / "enc_later", values), batch_size=1)
    net.forward()
    with pytest.raises(errors.FormatError, match="enc_later' key '00000001'.*cannot decode"):
        net.forward()


def test_both_force_flags_are_a_config_error(db10):
    path, _ = db10
    with pytest.raises(errors.ConfigError, match="both force_color and force_gray"):
        data_net(path, transform="transform_param { force_color: true force_gray: true }")


def test_forward_runs_with_the_gil_released(db10):
    # Data feeds the net; a MemoryData layer in the same net is filled by a Python thread
    # only after forward has started: forward can finish only if it waits without the GIL.
    path, pixels = db10
    extra = """
layer { name: "side" type: "MemoryData" top: "side" top: "side_label"
  memory_data_param { batch_size: 4 channels: 1 height: 1 width: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
    labels_db = write_lmdb(
        path.parent / "labels10",
        {i: datum(pixels[i], i).SerializeToString() for i in range(10)},
    )
    net = data_net(labels_db, transform="transform_param { scale: 0.00390625 }", extra=extra)
    side = net.memory_data_feeder("side")
    progress = {"ticks": 0}

    def pusher():
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            progress["ticks"] += 1
        side.push(np.ones((4, 1, 1, 3), np.float32), np.zeros(4))

    thread = threading.Thread(target=pusher)
    thread.start()
    out = net.forward()
    thread.join(5)
    assert progress["ticks"] > 0
    assert np.isfinite(out["loss"])
    np.testing.assert_array_equal(net.blobs["side"].data, 1)
    net.backward()
    assert np.any(net.params["ip"][0].diff != 0)


def test_feeder_threads_stop_when_the_net_is_collected(db10):
    path, _ = db10
    net = data_net(path, prefetch=1)
    feeder = net.data_feeds.lmdb_feeders["data"]
    assert feeder.alive
    del net
    gc.collect()
    deadline = time.monotonic() + 10
    while feeder.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not feeder.alive


def test_lenet_train_test_prototxt_just_works(tmp_path, monkeypatch):
    anchors = Path(__file__).resolve().parents[2] / ".." / "shared" / "anchors" / "caffe"
    prototxt = anchors / "mnist_lenet_train_test.prototxt"
    if not prototxt.is_file():
        pytest.skip(f"shared anchors not found at {anchors}")
    missing = {"Convolution", "Pooling", "Accuracy"} - set(_engine.layer_types())
    if missing:
        pytest.skip(f"engine lacks LeNet's layer types {sorted(missing)} on this branch")
    digits = np.random.default_rng(6).integers(0, 256, size=(70, 1, 28, 28), dtype=np.uint8)
    monkeypatch.chdir(tmp_path)
    os.makedirs("examples/mnist")
    write_lmdb(
        Path("examples/mnist/mnist_train_lmdb"),
        {i: datum(digits[i], i % 10).SerializeToString() for i in range(70)},
    )
    shutil.copytree("examples/mnist/mnist_train_lmdb", "examples/mnist/mnist_test_lmdb")
    net = engine.Net(str(prototxt), phase=engine.TRAIN)
    net.forward()
    np.testing.assert_allclose(net.blobs["data"].data, digits[:64] * np.float32(0.00390625))
    net.backward()
    net.close()


def test_reads_what_the_mnist_converter_writes(tmp_path):
    from caffeonspark.data.convert_mnist import convert_arrays

    digits = np.random.default_rng(8).integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 10
    convert_arrays(digits, labels, tmp_path / "mnist_lmdb")
    net = data_net(
        tmp_path / "mnist_lmdb", batch_size=8, transform="transform_param { scale: 0.00390625 }"
    )
    assert net.blobs["data"].shape == (8, 1, 28, 28)
    for step in range(2):
        net.forward()
        index = (np.arange(8) + 8 * step) % 12
        np.testing.assert_array_equal(
            net.blobs["data"].data[:, 0], digits[index] * np.float32(0.00390625)
        )
        np.testing.assert_array_equal(net.blobs["label"].data, labels[index])
    net.close()
