"""MemoryData layers that name `source_class` + `memory_data_param.source` are fed by a
SourceFeeder thread when the Net is built (python/caffeonspark/data/source_feeder.py,
feeders.NetFeeds): CaffeOnSpark's own nets (lenet_memory: com.yahoo.ml.caffe.LMDB,
lenet_dataframe: ImageDataFrame) run on converted data, SeqImageDataSource with the real
JPEGs and -resize, TRAIN partitions by rank (each option given to the Net as its
FeedOptions), float columns get the transform, and bad configurations or records raise
errors naming the layer, source and key."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine, errors
from caffeonspark.data.convert_imageset import convert_imageset
from caffeonspark.data.convert_mnist import convert_arrays
from caffeonspark.data.convert_seq import lmdb_to_seq
from caffeonspark.data.datums import raw_datum
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.data.lmdb_writer import write_lmdb
from caffeonspark.data.parquet_io import lmdb_to_parquet
from caffeonspark.proto import caffe_pb2


@pytest.fixture
def in_order() -> FeedOptions:
    """The feed options of a net whose TRAIN sources are read in storage order."""
    return FeedOptions(shuffle=False)


@pytest.fixture
def digits(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    labels = np.arange(300) % 10
    convert_arrays(images, labels, tmp_path / "train_lmdb")
    convert_arrays(images[:100], labels[:100], tmp_path / "test_lmdb")
    return tmp_path, images, labels


def anchor_net(anchors, name, train_source, test_source, phase, feed=None):
    text = (anchors / "caffeonspark" / name).read_text()
    param = caffe_pb2.NetParameter()
    text_format.Parse(text, param)
    for layer in param.layer:
        if layer.type == "MemoryData":
            is_train = any(rule.phase == caffe_pb2.TRAIN for rule in layer.include)
            layer.memory_data_param.source = str(train_source if is_train else test_source)
    net = engine.Net(param, phase=phase, feed=feed)
    net.data_feeds.set_timeout(30)
    return net


def test_lenet_memory_net_reads_its_lmdb_source(anchors, digits, in_order):
    root, images, labels = digits
    net = anchor_net(
        anchors,
        "lenet_memory_train_test.prototxt",
        root / "train_lmdb",
        root / "test_lmdb",
        caffe_pb2.TRAIN,
        feed=in_order,
    )
    assert net.blobs["data"].shape == (64, 1, 28, 28)
    for step in range(2):
        out = net.forward()
        index = np.arange(64) + 64 * step
        np.testing.assert_allclose(
            net.blobs["data"].data[:, 0], images[index] * np.float32(0.00390625), rtol=1e-6
        )
        np.testing.assert_array_equal(net.blobs["label"].data, labels[index])
        assert np.isfinite(out["loss"])
    feeder = net.data_feeds.source_feeders["data"]
    assert type(feeder.source).__name__ == "LmdbSource"
    assert net.data_feeds.wait_report()["data"]["batches"] == 2
    net.close()
    assert not feeder.alive


def test_lenet_dataframe_net_reads_parquet(anchors, digits, in_order):
    root, images, labels = digits
    lmdb_to_parquet(root / "train_lmdb", root / "train_df", row_group_size=50)
    lmdb_to_parquet(root / "test_lmdb", root / "test_df")
    net = anchor_net(
        anchors,
        "lenet_dataframe_train_test.prototxt",
        root / "train_df",
        root / "test_df",
        caffe_pb2.TEST,
        feed=in_order,
    )
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, labels[:100])
    np.testing.assert_allclose(
        net.blobs["data"].data[:, 0], images[:100] / np.float32(256), rtol=1e-6
    )


def test_train_partitions_follow_the_rank(digits, in_order, tmp_path):
    root, images, labels = digits
    text = f"""
layer {{ name: "d" type: "MemoryData" top: "data" top: "label"
  source_class: "LMDB"
  memory_data_param {{ source: "{root / "train_lmdb"}" batch_size: 50 channels: 1
    height: 28 width: 28 }} }}"""
    feed = dataclasses.replace(in_order, rank=1, world_size=3)
    train = engine.Net(
        text_format.Parse(text, caffe_pb2.NetParameter()), phase=caffe_pb2.TRAIN, feed=feed
    )
    test = engine.Net(
        text_format.Parse(text, caffe_pb2.NetParameter()), phase=caffe_pb2.TEST, feed=feed
    )
    seen = []
    for _ in range(3):  # partition 1 of 3 = records 100..199: two batches per epoch
        train.forward()
        seen.append(train.blobs["data"].data[:, 0].copy())
    np.testing.assert_array_equal(np.concatenate(seen[:2]), images[100:200].astype(np.float32))
    np.testing.assert_array_equal(seen[2], images[100:150].astype(np.float32))
    test.forward()  # TEST reads everything, from the start
    np.testing.assert_array_equal(test.blobs["data"].data[:, 0], images[:50].astype(np.float32))


def test_shuffled_epochs_cover_the_partition(digits):
    root, _, labels = digits
    text = f"""
layer {{ name: "d" type: "MemoryData" top: "data" top: "label" source_class: "LMDB"
  memory_data_param {{ source: "{root / "test_lmdb"}" batch_size: 25 channels: 1 height: 28
    width: 28 }} }}"""
    net = engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=caffe_pb2.TRAIN)
    epochs = []
    for _ in range(2):
        got = []
        for _ in range(4):
            net.forward()
            got += net.blobs["label"].data.astype(int).tolist()
        epochs.append(got)
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(labels[:100].tolist())
    assert epochs[0] != epochs[1]


def test_seq_image_data_source_with_real_jpegs_and_resize(anchors, tmp_path, in_order):
    root = anchors / "caffeonspark"
    convert_imageset(root, root / "labels.txt", tmp_path / "enc_lmdb", encoded=True)
    lmdb_to_seq(tmp_path / "enc_lmdb", tmp_path / "images.seq")
    text = f"""
layer {{ name: "data" type: "MemoryData" top: "data" top: "label"
  source_class: "com.yahoo.ml.caffe.SeqImageDataSource"
  transform_param {{ mean_value: 104 mean_value: 117 mean_value: 123 }}
  memory_data_param {{ source: "{tmp_path / "images.seq"}" batch_size: 4 channels: 3
    height: 40 width: 48 }} }}"""
    param = text_format.Parse(text, caffe_pb2.NetParameter())
    with pytest.raises(errors.ShapeError, match=r"holds items of shape \(3, 256, 256\).*-resize"):
        engine.Net(param, phase=caffe_pb2.TEST, feed=in_order)
    net = engine.Net(param, phase=caffe_pb2.TEST, feed=dataclasses.replace(in_order, resize=True))
    net.forward()
    names = [line.split()[0] for line in (root / "labels.txt").read_text().splitlines()]
    for i, name in enumerate(names):
        want = cv2.resize(cv2.imread(str(root / name)), (48, 40)).transpose(2, 0, 1)
        want = want.astype(np.float32) - np.array([104, 117, 123], np.float32)[:, None, None]
        np.testing.assert_array_equal(net.blobs["data"].data[i], want)
    np.testing.assert_array_equal(net.blobs["label"].data, [0, 0, 1, 1])


def test_numpy_float_source_gets_the_transform(tmp_path, in_order):
    values = np.random.default_rng(1).normal(size=(8, 2, 3, 3)).astype(np.float32)
    np.savez(tmp_path / "f.npz", data=values, label=np.arange(8))
    text = f"""
layer {{ name: "d" type: "MemoryData" top: "data" top: "label" source_class: "NumPy"
  transform_param {{ scale: 2 mean_value: 1 }}
  memory_data_param {{ source: "{tmp_path / "f.npz"}" batch_size: 4 channels: 2 height: 3
    width: 3 }} }}"""
    param = text_format.Parse(text, caffe_pb2.NetParameter())
    net = engine.Net(param, phase=caffe_pb2.TEST, feed=in_order)
    net.data_feeds.set_timeout(30)
    net.forward()
    np.testing.assert_allclose(net.blobs["data"].data, (values[:4] - 1) * 2, rtol=1e-6)


def _net(source, source_class='source_class: "LMDB"', size=28):
    text = f"""
layer {{ name: "feed" type: "MemoryData" top: "data" top: "label" {source_class}
  memory_data_param {{ source: "{source}" batch_size: 2 channels: 1 height: {size}
    width: {size} }} }}"""
    net = engine.Net(text_format.Parse(text, caffe_pb2.NetParameter()), phase=caffe_pb2.TEST)
    net.data_feeds.set_timeout(30)
    return net


def test_configuration_errors_name_the_layer(digits, tmp_path):
    root, _, _ = digits
    with pytest.raises(
        errors.ConfigError,
        match=r"layer 'feed' \(MemoryData\): unknown source_class 'com.acme.X'"
        r".*com.yahoo.ml.caffe.LMDB",
    ):
        _net(root / "train_lmdb", 'source_class: "com.acme.X"')
    with pytest.raises(errors.ConfigError, match=r"layer 'feed'.*needs a source_class"):
        _net(root / "train_lmdb", "")
    with pytest.raises(errors.IoError, match=r"layer 'feed'.*nowhere_lmdb' does not exist"):
        _net(tmp_path / "nowhere_lmdb")
    with pytest.raises(
        errors.ShapeError, match=r"layer 'feed'.*\(1, 28, 28\).*1 channel\(s\) of 32 x 32"
    ):
        _net(root / "train_lmdb", size=32)


def test_corrupt_record_surfaces_in_forward_naming_the_key(tmp_path):
    good = raw_datum(np.zeros((1, 28, 28), np.uint8), 0).SerializeToString()
    write_lmdb(
        tmp_path / "bad", [(b"%08d" % i, good) for i in range(4)] + [(b"00000004", b"junk!")]
    )
    net = _net(tmp_path / "bad")  # the first record is fine: the net builds
    # Records are read in chunks, so the error comes with the chunk that holds the bad one.
    with pytest.raises(errors.FormatError, match=r"layer 'feed'.*bad' key '00000004': not a Datum"):
        for _ in range(3):
            net.forward()


def test_solver_trains_lenet_memory_and_reports_data_wait(anchors, digits, tmp_path):
    from caffeonspark.solver import Solver

    root, _, _ = digits
    net = anchor_net(
        anchors,
        "lenet_memory_train_test.prototxt",
        root / "train_lmdb",
        root / "test_lmdb",
        caffe_pb2.TRAIN,
    )
    param = net.net_param
    net.close()
    text = (anchors / "caffeonspark" / "lenet_memory_train_test.prototxt").read_text()
    text = text.replace(
        "file:/Users/mridul/bigml/demodl/mnist_train_lmdb", str(root / "train_lmdb")
    )
    text = text.replace("file:/Users/mridul/bigml/demodl/mnist_test_lmdb/", str(root / "test_lmdb"))
    (tmp_path / "net.prototxt").write_text(text)
    solver_param = caffe_pb2.SolverParameter(
        net=str(tmp_path / "net.prototxt"),
        base_lr=0.01,
        lr_policy="fixed",
        max_iter=6,
        test_iter=[1],
        test_interval=100,
        display=0,
        snapshot_after_train=False,
    )
    solver = Solver(solver_param)
    solver.solve()
    report = solver.net.data_feeds.wait_report()["data"]
    assert report["batches"] == 6 and report["wait_seconds"] >= 0
    assert param.layer[0].source_class == "com.yahoo.ml.caffe.LMDB"
