"""CoSData layers (cpp/layers/cos_data.cc, python/caffeonspark/data/cos_tops.py, cos_feeder.py):
every top type against a NumPy float64 reference of CaffeOnSpark's rules (docs/DATA.md),
the top shape rules (sample_num_axes, out_*, transpose), partitioned reading, bad input
naming the layer / top / row, a layer without a source fed by push (as Spark's test /
features tasks feed it), and CaffeOnSpark's lenet_cos net trained from Parquet."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

from caffeonspark import engine, errors, model_io
from caffeonspark.data.cos_dataframe import write_cos_arrow, write_cos_parquet
from caffeonspark.data.cos_feeder import open_cos_source
from caffeonspark.data.digits import generate_digits
from caffeonspark.data.feed_options import FeedOptions
from caffeonspark.proto import caffe_pb2
from caffeonspark.solver import Solver

TEST = caffe_pb2.TEST
TRAIN = caffe_pb2.TRAIN


@pytest.fixture
def in_order() -> FeedOptions:
    """The feed options of a net whose TRAIN sources are read in storage order."""
    return FeedOptions(shuffle=False)


def cos_layer(source, tops: str, batch_size: int = 4, extra: str = "") -> caffe_pb2.LayerParameter:
    """A CoSData layer whose top blobs are named like its `top { name: ... }` entries."""
    layer = caffe_pb2.LayerParameter()
    text_format.Parse(
        f'name: "data" type: "CoSData" source_class: "com.yahoo.ml.caffe.DataFrameSource" '
        f'cos_data_param {{ source: "{source}" batch_size: {batch_size} {extra} {tops} }}',
        layer,
    )
    layer.top.extend(top.name for top in layer.cos_data_param.top)
    return layer


def cos_net(
    layer: caffe_pb2.LayerParameter, phase=TEST, feed: FeedOptions | None = None
) -> engine.Net:
    param = caffe_pb2.NetParameter(name="cos")
    param.layer.add().CopyFrom(layer)
    net = engine.Net(param, phase=phase, feed=feed)
    net.data_feeds.set_timeout(30)
    return net


def crop_reference(images, crop, mean, scale):
    """float64 (x - mean) * scale of the centred crop (TEST phase)."""
    x = np.asarray(images, np.float64)
    h, w = x.shape[2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    mean = np.asarray(mean, np.float64).reshape(1, -1, 1, 1)
    return (x[:, :, top : top + crop, left : left + crop] - mean) * scale


def test_raw_image_scale_mean_crop_and_scalars(tmp_path, in_order):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(8, 3, 10, 12), dtype=np.uint8)
    path = write_cos_parquet(
        tmp_path / "df.parquet",
        {
            "data": ("RAW_IMAGE", images),
            "label": ("STRING", np.arange(8) % 5),
            "count": ("INT", np.arange(8) * 3 - 4),
            "weight": ("FLOAT", np.linspace(-1, 1, 8)),
        },
        row_group_size=3,
    )
    tops = """
      top { name: "data" type: RAW_IMAGE channels: 3 height: 10 width: 12 out_height: 6
            out_width: 6 transform_param { crop_size: 6 scale: 0.5
            mean_value: 10 mean_value: 20 mean_value: 30 } }
      top { name: "label" type: STRING channels: 1 height: 1 width: 1 }
      top { name: "count" type: INT channels: 1 sample_num_axes: 1 }
      top { name: "weight" type: FLOAT sample_num_axes: 0 }"""
    net = cos_net(cos_layer(path, tops), feed=in_order)
    assert net.blobs["data"].shape == (4, 3, 6, 6)
    assert net.blobs["label"].shape == (4, 1, 1, 1)
    assert net.blobs["count"].shape == (4, 1)
    assert net.blobs["weight"].shape == (4,)
    for step in range(2):
        net.forward()
        rows = slice(4 * step, 4 * step + 4)
        want = crop_reference(images[rows], 6, [10, 20, 30], 0.5)
        np.testing.assert_allclose(net.blobs["data"].data, want, rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(net.blobs["label"].data.reshape(-1), np.arange(8)[rows] % 5)
        np.testing.assert_array_equal(net.blobs["count"].data[:, 0], np.arange(8)[rows] * 3 - 4)
        np.testing.assert_allclose(
            net.blobs["weight"].data, np.linspace(-1, 1, 8)[rows].astype(np.float32)
        )
    net.close()


def test_raw_image_bytes_are_opencv_interleaved(tmp_path, in_order):
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(3, 2, 3)  # (C, H, W)
    hwc = image.transpose(1, 2, 0).tobytes()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"data": pa.array([hwc] * 2, pa.binary())}), tmp_path / "x.parquet")
    tops = 'top { name: "data" type: RAW_IMAGE channels: 3 height: 2 width: 3 }'
    net = cos_net(cos_layer(tmp_path / "x.parquet", tops, batch_size=2), feed=in_order)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data[0], image)
    net.close()


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_encoded_image_is_decoded(tmp_path, in_order, ext):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(4, 3, 16, 16), dtype=np.uint8)
    files = [cv2.imencode(ext, im.transpose(1, 2, 0))[1].tobytes() for im in images]
    gray = [cv2.imencode(ext, im[0])[1].tobytes() for im in images]
    path = write_cos_parquet(
        tmp_path / "df.parquet",
        {"color": ("ENCODED_IMAGE", files), "gray": ("ENCODED_IMAGE", gray)},
    )
    tops = """
      top { name: "color" type: ENCODED_IMAGE channels: 3 height: 16 width: 16
            transform_param { scale: 2 } }
      top { name: "gray" type: ENCODED_IMAGE channels: 1 height: 16 width: 16 }"""
    net = cos_net(cos_layer(path, tops), feed=in_order)
    net.forward()
    decoded = np.stack(
        [
            cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR).transpose(2, 0, 1)
            for f in files
        ]
    )
    decoded_gray = np.stack(
        [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_GRAYSCALE) for f in gray]
    )
    np.testing.assert_array_equal(net.blobs["color"].data, decoded.astype(np.float64) * 2)
    np.testing.assert_array_equal(net.blobs["gray"].data[:, 0], decoded_gray)
    if ext == ".png":  # lossless: the original pixels
        np.testing.assert_array_equal(decoded, images)
    net.close()


def lrcn_data_layer(anchors, source) -> caffe_pb2.LayerParameter:
    net = model_io.read_net_prototxt(anchors / "caffeonspark" / "lrcn_cos.prototxt")
    layer = next(layer for layer in net.layer if layer.type == "CoSData")
    layer.ClearField("include")
    layer.cos_data_param.source = str(source)
    layer.cos_data_param.batch_size = 2
    return layer


def test_lrcn_tops_encoded_with_dim_crop_and_transposed_sentences(anchors, tmp_path, in_order):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(4, 3, 256, 256), dtype=np.uint8)
    sentences = {name: rng.integers(-1, 50, size=(4, 21)) for name in ("cont", "input", "target")}
    path = write_cos_parquet(
        tmp_path / "coco.parquet",
        {
            "data": ("ENCODED_IMAGE_WITH_DIM", list(images)),
            "label": ("INT", np.zeros(4)),
            "cont_sentence": ("INT_ARRAY", sentences["cont"]),
            "input_sentence": ("INT_ARRAY", sentences["input"]),
            "target_sentence": ("INT_ARRAY", sentences["target"]),
        },
    )
    net = cos_net(lrcn_data_layer(anchors, path), phase=TEST, feed=in_order)
    assert net.blobs["data"].shape == (2, 3, 227, 227)
    assert net.blobs["label"].shape == (2, 1, 1, 1)
    assert net.blobs["input_sentence"].shape == (21, 2)  # T x N
    for step in range(2):
        net.forward()
        rows = slice(2 * step, 2 * step + 2)
        want = crop_reference(images[rows], 227, [104, 117, 123], 1.0)
        got = net.blobs["data"].data
        for i in range(2):  # mirror: true flips each item with probability 1/2
            same = np.allclose(got[i], want[i], atol=1e-4)
            mirrored = np.allclose(got[i], want[i][..., ::-1], atol=1e-4)
            assert same or mirrored
        for name in ("cont", "input", "target"):
            np.testing.assert_array_equal(
                net.blobs[f"{name}_sentence"].data, sentences[name][rows].T
            )
    net.close()


def test_float_array_axes_transform_and_arrow_source(tmp_path, in_order):
    values = np.arange(6 * 12, dtype=np.float32).reshape(6, 12) / 7
    path = write_cos_arrow(
        tmp_path / "x.arrow",
        {"feat": ("FLOAT_ARRAY", values), "seq": ("FLOAT_ARRAY", values[:, :4])},
    )
    tops = """
      top { name: "feat" type: FLOAT_ARRAY channels: 3 height: 2 width: 2
            transform_param { scale: 3 mean_value: 1 } }
      top { name: "seq" type: FLOAT_ARRAY channels: 4 sample_num_axes: 1 transpose: true }"""
    layer = cos_layer(path, tops, batch_size=3, extra='dataframe_format: "arrow"')
    net = cos_net(layer, feed=in_order)
    assert net.blobs["feat"].shape == (3, 3, 2, 2)
    assert net.blobs["seq"].shape == (4, 3)
    for step in range(2):
        net.forward()
        rows = slice(3 * step, 3 * step + 3)
        want = (values[rows].astype(np.float64).reshape(3, 3, 2, 2) - 1) * 3
        np.testing.assert_allclose(net.blobs["feat"].data, want, rtol=1e-6)
        np.testing.assert_array_equal(net.blobs["seq"].data, values[rows, :4].T)
    net.close()


@pytest.mark.parametrize(
    ("top", "shape"),
    [
        ('top { name: "v" type: FLOAT_ARRAY channels: 6 sample_num_axes: 1 }', (5, 6)),
        ('top { name: "v" type: FLOAT_ARRAY channels: 2 height: 3 sample_num_axes: 2 }', (5, 2, 3)),
        ('top { name: "v" type: FLOAT_ARRAY channels: 1 height: 2 width: 3 }', (5, 1, 2, 3)),
        (
            'top { name: "v" type: INT_ARRAY channels: 6 sample_num_axes: 1 transpose: true }',
            (6, 5),
        ),
    ],
)
def test_top_shapes_follow_sample_num_axes(tmp_path, top, shape):
    path = write_cos_parquet(tmp_path / "x.parquet", {"v": ("INT_ARRAY", np.ones((5, 6)))})
    net = cos_net(cos_layer(path, top, batch_size=5))
    assert net.blobs["v"].shape == shape
    net.forward()
    np.testing.assert_array_equal(net.blobs["v"].data, np.ones(shape))
    net.close()


@pytest.mark.parametrize(
    ("top", "message"),
    [
        (
            'top { name: "v" type: INT_ARRAY channels: 2 height: 3 width: 1 transpose: true }',
            "transpose needs sample_num_axes 1",
        ),
        ('top { name: "v" type: INT channels: 2 height: 1 width: 1 }', "one number per item"),
        ('top { name: "v" type: RAW_IMAGE channels: 1 height: 4 sample_num_axes: 2 }', "images"),
        (
            'top { name: "v" type: RAW_IMAGE channels: 1 height: 4 width: 4 out_height: 3 }',
            "out_height",
        ),
        ('top { name: "v" type: FLOAT_ARRAY channels: 0 sample_num_axes: 1 }', "channels"),
    ],
)
def test_bad_top_specs_are_config_errors(tmp_path, top, message):
    path = write_cos_parquet(tmp_path / "x.parquet", {"v": ("INT_ARRAY", np.ones((5, 6)))})
    with pytest.raises(errors.ConfigError, match=message) as err:
        cos_net(cos_layer(path, top, batch_size=5))
    assert "layer 'data' (CoSData)" in str(err.value)


def test_top_count_must_match_the_layer(tmp_path):
    path = write_cos_parquet(tmp_path / "x.parquet", {"v": ("INT", np.ones(5))})
    layer = cos_layer(path, 'top { name: "v" type: INT channels: 1 height: 1 width: 1 }')
    layer.top.append("extra")
    with pytest.raises(errors.ConfigError, match="2 top blobs but cos_data_param describes 1"):
        cos_net(layer)


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_partitions_see_each_row_once(tmp_path, parts):
    path = write_cos_parquet(
        tmp_path / "x.parquet",
        {"row": ("INT", np.arange(50)), "pair": ("FLOAT_ARRAY", np.arange(100).reshape(50, 2))},
        row_group_size=7,
    )
    layer = cos_layer(
        path,
        'top { name: "row" type: INT sample_num_axes: 0 } '
        'top { name: "pair" type: FLOAT_ARRAY channels: 2 sample_num_axes: 1 }',
    )
    seen = []
    for part in range(parts):
        source = open_cos_source(layer, "", partition=part, num_partitions=parts, shuffle=True)
        for chunk in source.epoch(0):
            rows, pairs = chunk.data
            np.testing.assert_array_equal(rows.reshape(-1), chunk.ids)
            np.testing.assert_array_equal(pairs.reshape(-1, 2)[:, 0], 2 * chunk.ids)
            seen.extend(rows.reshape(-1).astype(int).tolist())
        source.close()
    assert sorted(seen) == list(range(50))


def test_train_net_reads_its_shard_shuffled(tmp_path):
    path = write_cos_parquet(tmp_path / "x.parquet", {"row": ("INT", np.arange(40))})
    layer = cos_layer(
        path,
        'top { name: "row" type: INT sample_num_axes: 0 }',
        batch_size=20,
        extra="shuffle: true",
    )
    net = cos_net(layer, phase=TRAIN, feed=FeedOptions(rank=1, world_size=2))
    net.forward()
    got = net.blobs["row"].data.astype(int)
    assert sorted(got.tolist()) == list(range(20, 40))
    assert got.tolist() != list(range(20, 40))  # cos_data_param.shuffle permutes the epoch
    net.close()


def test_missing_column_names_the_layer_and_top(tmp_path):
    path = write_cos_parquet(tmp_path / "x.parquet", {"data": ("INT", np.ones(5))})
    layer = cos_layer(
        path,
        'top { name: "data" type: INT sample_num_axes: 0 } '
        'top { name: "label" type: INT sample_num_axes: 0 }',
    )
    with pytest.raises(errors.FormatError) as err:
        cos_net(layer)
    text = str(err.value)
    assert "layer 'data' (CoSData)" in text and "top 1 'label' (INT)" in text
    assert "x.parquet" in text


def test_wrong_raw_image_length_names_the_row(tmp_path, in_order):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [bytes(16)] * 5 + [bytes(15)] + [bytes(16)] * 2
    pq.write_table(pa.table({"data": pa.array(rows, pa.binary())}), tmp_path / "x.parquet")
    tops = 'top { name: "data" type: RAW_IMAGE channels: 1 height: 4 width: 4 }'
    net = cos_net(cos_layer(tmp_path / "x.parquet", tops, batch_size=4), feed=in_order)
    with pytest.raises(
        errors.FormatError, match=r"row 5: 15 bytes but channels x height x width = 16"
    ) as err:
        net.forward()
    assert "top 'data' (RAW_IMAGE)" in str(err.value)
    net.close()


def test_bad_string_and_type_mismatch_name_the_row_and_top(tmp_path, in_order):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"label": ["1", "2", "x3", "4"], "f": [1.5, 2.5, 3.5, 4.5]}),
        tmp_path / "x.parquet",
    )
    top = 'top { name: "label" type: STRING sample_num_axes: 0 }'
    net = cos_net(cos_layer(tmp_path / "x.parquet", top), feed=in_order)
    with pytest.raises(errors.FormatError, match=r"row 2: 'x3' is not a number"):
        net.forward()
    net.close()
    net = cos_net(
        cos_layer(tmp_path / "x.parquet", 'top { name: "f" type: INT sample_num_axes: 0 }'),
        feed=in_order,
    )
    with pytest.raises(errors.FormatError, match=r"top 'f' \(INT\): column holds double"):
        net.forward()
    net.close()


def test_encoded_image_of_another_size_needs_resize(tmp_path, in_order):
    images = np.random.default_rng(4).integers(0, 256, size=(4, 3, 20, 24), dtype=np.uint8)
    path = write_cos_parquet(
        tmp_path / "x.parquet", {"im": ("ENCODED_IMAGE_WITH_DIM", list(images))}
    )
    tops = 'top { name: "im" type: ENCODED_IMAGE_WITH_DIM channels: 3 height: 10 width: 12 }'
    net = cos_net(cos_layer(path, tops), feed=in_order)
    with pytest.raises(
        errors.FormatError, match=r"row 0: the image is 20 x 24; the top wants 10 x 12"
    ):
        net.forward()
    net.close()
    net = cos_net(cos_layer(path, tops), feed=dataclasses.replace(in_order, resize=True))
    net.forward()
    want = np.stack(
        [cv2.resize(im.transpose(1, 2, 0), (12, 10)).transpose(2, 0, 1) for im in images]
    )
    np.testing.assert_array_equal(net.blobs["im"].data, want)
    net.close()


def test_unknown_type_and_unsupported_sources(tmp_path):
    text = 'layer { name: "d" type: "CoSData" top: "x" cos_data_param { top { name: "x" type: BOGUS } } }'
    bad = tmp_path / "bad.prototxt"
    bad.write_text(text)
    with pytest.raises(errors.FormatError, match="bad.prototxt:1"):
        model_io.read_net_prototxt(bad)
    with pytest.raises(errors.ConfigError, match="unknown CoSData type 'BOGUS'"):
        write_cos_parquet(tmp_path / "y.parquet", {"x": ("BOGUS", [1])})
    top = 'top { name: "x" type: INT sample_num_axes: 0 }'
    layer = cos_layer(tmp_path / "lmdb", top)
    layer.source_class = "com.yahoo.ml.caffe.LMDB"
    with pytest.raises(NotImplementedError, match="LMDB"):
        cos_net(layer)
    layer = cos_layer(tmp_path / "x.json", top, extra='dataframe_format: "json"')
    with pytest.raises(NotImplementedError, match="dataframe_format 'json'"):
        cos_net(layer)


def test_lenet_cos_trains_from_parquet(anchors, tmp_path):
    images, labels = generate_digits(2400, seed=5)
    train = write_cos_parquet(
        tmp_path / "train.parquet",
        {"data": ("RAW_IMAGE", images[:2000]), "label": ("STRING", labels[:2000])},
    )
    test = write_cos_parquet(
        tmp_path / "test.parquet",
        {"data": ("RAW_IMAGE", images[2000:]), "label": ("STRING", labels[2000:])},
    )
    root = anchors / "caffeonspark"
    param = model_io.read_solver_prototxt(root / "lenet_cos_solver.prototxt")
    net = model_io.read_net_prototxt(root / "lenet_cos_train_test.prototxt")
    for layer in net.layer:
        if layer.type == "CoSData":
            is_train = layer.include[0].phase == TRAIN
            layer.cos_data_param.source = str(train if is_train else test)
            layer.cos_data_param.shuffle = True
    param.ClearField("net")
    param.net_param.CopyFrom(net)
    param.snapshot_prefix = str(tmp_path / "lenet_cos")
    param.test_interval = 0
    param.display = 0
    param.snapshot = 0
    param.snapshot_after_train = False
    param.max_iter = 300
    param.random_seed = 1701  # the anchor solver draws a random seed; fix it here
    param.test_iter[0] = 6  # 6 batches of 64 of the 400 test digits
    engine.set_num_threads(2)
    solver = Solver(param)
    losses = []
    for _ in range(300):
        solver.step(1)
        losses.append(solver.native.last_loss)
    assert np.mean(losses[-30:]) < 0.5 * np.mean(losses[:10])
    accuracy = solver.test(0)["accuracy"][0]
    assert accuracy > 0.9, f"lenet_cos test accuracy {accuracy:.3f} after 300 iterations"


def test_layer_without_source_is_fed_by_push(tmp_path):
    # What Spark's test / features tasks do: one array per top, made by cos_tops.top_arrays.
    from caffeonspark.data.cos_dataframe import cos_table
    from caffeonspark.data.cos_tops import top_arrays, top_specs

    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(3, 2, 4, 5), dtype=np.uint8)
    tops = """
      top { name: "data" type: RAW_IMAGE channels: 2 height: 4 width: 5
            transform_param { scale: 0.5 mean_value: 3 mean_value: 1 } }
      top { name: "label" type: STRING channels: 1 height: 1 width: 1 }"""
    layer = cos_layer("", tops, batch_size=3)
    layer.ClearField("source_class")
    layer.cos_data_param.ClearField("source")
    net = cos_net(layer)
    assert not net.data_feeds.cos_feeders  # no reader thread
    table = cos_table({"data": ("RAW_IMAGE", images), "label": ("STRING", [4, 0, 9])})
    arrays = top_arrays(table, top_specs(layer), np.arange(3), "test")
    assert net.data_feeds.cos_feed("data").push_tops(list(arrays))
    net.forward()
    want = (images.astype(np.float64) - np.array([3, 1]).reshape(1, 2, 1, 1)) * 0.5
    np.testing.assert_allclose(net.blobs["data"].data, want, rtol=1e-6)
    np.testing.assert_array_equal(net.blobs["label"].data.reshape(-1), [4, 0, 9])
    net.close()
    reading = cos_net(cos_layer(write_cos_parquet(tmp_path / "x.parquet", {
        "data": ("RAW_IMAGE", images), "label": ("STRING", [4, 0, 9])}), tops, batch_size=3))
    with pytest.raises(errors.ConfigError, match=r"reads cos_data_param.source itself"):
        reading.data_feeds.cos_feed("data")
    reading.close()
