"""The raw-Datum fast path (datums.raw_datum_batch over cpp/data/datum_view.h): it returns
exactly what protobuf's own parse gives (pixels, labels, shape) for raw Datums, from bytes and
from memoryviews into an LMDB read transaction; it declines (None, so the per-record path with
its keyed errors runs) for encoded / float_data / malformed / mis-sized / mixed-shape records,
and a fuzz of corrupted records never makes it accept what protobuf would read differently.
The layer side: batches whose buffers are swapped into the top (and recycled) keep their
values across many Forwards, and an array taken from the top before a Forward keeps the
batch it showed."""

from __future__ import annotations

import lmdb
import numpy as np
import pytest

from caffeonspark.data.datums import encoded_datum, raw_datum, raw_datum_batch
from caffeonspark.data.image_codec import encode_image
from caffeonspark.data.lmdb_writer import write_lmdb
from caffeonspark.data.sources import LmdbSource
from caffeonspark.proto import caffe_pb2


def images(n=5, shape=(3, 4, 6), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def serialized(pixels, labels):
    return [raw_datum(p, int(lb)).SerializeToString() for p, lb in zip(pixels, labels, strict=True)]


def test_raw_datums_parse_to_the_stacked_pixels_and_labels():
    pixels = images()
    labels = [3, -7, 0, 2**31 - 1, -(2**31)]
    data, out_labels = raw_datum_batch(serialized(pixels, labels))
    assert data.dtype == np.uint8 and data.shape == pixels.shape
    np.testing.assert_array_equal(data, pixels)
    np.testing.assert_array_equal(out_labels, np.array(labels, np.float64).astype(np.float32))
    assert out_labels.dtype == np.float32


def test_given_shape_must_match():
    values = serialized(images(), range(5))
    assert raw_datum_batch(values, (3, 4, 6)) is not None
    assert raw_datum_batch(values, (3, 6, 4)) is None
    mixed = values[:2] + serialized(images(1, (3, 6, 4)), [9])
    assert raw_datum_batch(mixed) is None


@pytest.mark.parametrize(
    "record",
    [
        "encoded",
        "float_data",
        "size",
        "truncated",
        "garbage",
        "none",
        "no_shape",
    ],
)
def test_records_it_declines(record):
    good = serialized(images(2), [1, 2])
    if record == "encoded":
        bad = encoded_datum(encode_image(images(1)[0]), 1).SerializeToString()
    elif record == "float_data":
        bad = caffe_pb2.Datum(
            channels=3, height=4, width=6, float_data=[0.5] * 72, label=1
        ).SerializeToString()
    elif record == "size":
        bad = caffe_pb2.Datum(channels=3, height=4, width=6, data=b"\0" * 71).SerializeToString()
    elif record == "truncated":
        bad = good[0][:-3]
    elif record == "garbage":
        bad = b"\xff\xff\xff\xff"
    elif record == "none":
        bad = None
    else:
        bad = caffe_pb2.Datum(data=b"\0" * 72).SerializeToString()
    assert raw_datum_batch([good[0], bad, good[1]]) is None
    assert raw_datum_batch([]) is None


def test_protobuf_merge_rules_and_unknown_fields():
    """Concatenated messages merge (last scalar / bytes wins); unknown fields are skipped."""
    first = raw_datum(images(1, seed=1)[0], 4).SerializeToString()
    second = raw_datum(images(1, seed=2)[0], 8).SerializeToString()
    unknown = bytes([(100 << 3 | 0) & 0x7F | 0x80, 100 >> 4, 5])  # field 100, varint 5
    unknown += bytes([(101 << 3 | 2) & 0x7F | 0x80, 101 >> 4, 2, 0xAA, 0xBB])  # field 101, bytes
    for value in (first + second, unknown + first, first + unknown):
        reference = caffe_pb2.Datum.FromString(value)
        data, labels = raw_datum_batch([value])
        expected = np.frombuffer(reference.data, np.uint8).reshape(
            reference.channels, reference.height, reference.width
        )
        np.testing.assert_array_equal(data[0], expected)
        assert labels[0] == reference.label


def test_fuzzed_records_are_declined_or_read_as_protobuf_reads_them():
    rng = np.random.default_rng(5)
    base = raw_datum(images(1, (2, 3, 3))[0], 77).SerializeToString()
    accepted = 0
    for _ in range(600):
        value = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            value[int(rng.integers(0, len(value)))] = int(rng.integers(0, 256))
        value = bytes(value[: int(rng.integers(len(value) - 3, len(value) + 1))])
        fast = raw_datum_batch([value])
        if fast is None:
            continue
        accepted += 1
        reference = caffe_pb2.Datum.FromString(value)  # must parse
        assert not reference.encoded and reference.data
        shape = (reference.channels, reference.height, reference.width)
        np.testing.assert_array_equal(
            fast[0][0], np.frombuffer(reference.data, np.uint8).reshape(shape)
        )
        assert fast[1][0] == np.float32(reference.label)
    assert accepted > 0


def test_memoryviews_into_an_lmdb_transaction(tmp_path):
    pixels = images(6)
    write_lmdb(
        tmp_path / "db", [(b"%02d" % i, v) for i, v in enumerate(serialized(pixels, range(6)))]
    )
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    with env.begin(buffers=True) as txn:
        views = [txn.get(b"%02d" % i) for i in (4, 0, 5)]
        assert isinstance(views[0], memoryview)
        data, labels = raw_datum_batch(views)
    env.close()
    np.testing.assert_array_equal(data, pixels[[4, 0, 5]])
    np.testing.assert_array_equal(labels, [4, 0, 5])


def test_lmdb_source_fast_and_general_paths_agree(tmp_path):
    """A raw LMDB read by chunks (fast path) equals the same records read one by one
    through protobuf (the general path, which resize forces; resizing to the same size is
    the identity)."""
    pixels = images(23, (3, 5, 7), seed=3)
    write_lmdb(
        tmp_path / "db", [(b"%03d" % i, v) for i, v in enumerate(serialized(pixels, range(23)))]
    )
    with (
        LmdbSource(tmp_path / "db", shuffle=True, seed=4, chunk_size=6) as fast,
        LmdbSource(tmp_path / "db", shuffle=True, seed=4, chunk_size=6, resize=(5, 7)) as general,
    ):
        for a, b in zip(fast.epoch(1), general.epoch(1), strict=True):
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.data, b.data)
            np.testing.assert_array_equal(a.labels, b.labels)
            np.testing.assert_array_equal(a.data, pixels[a.ids])


@pytest.mark.parametrize("mode", ["native", "color", "gray"])
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_encoded_datums_decode_like_the_per_record_path(mode, ext):
    from caffeonspark.data.datums import datum_image, encoded_datum_batch
    from caffeonspark.data.image_codec import DecodePool

    pixels = images(7, (3, 9, 11), seed=6)
    values = [
        encoded_datum(encode_image(p, ext), 10 + i).SerializeToString()
        for i, p in enumerate(pixels)
    ]
    with DecodePool(2) as pool:
        data, labels = encoded_datum_batch(values, mode, None, pool)
    expected = np.stack([datum_image(caffe_pb2.Datum.FromString(v), "", mode) for v in values])
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(labels, np.arange(10, 17))
    assert data.shape[1] == (1 if mode == "gray" else 3)


def test_encoded_alpha_is_dropped_and_odd_batches_are_declined():
    from caffeonspark.data.datums import encoded_datum_batch

    rgba = np.concatenate([images(1, (3, 5, 5))[0], np.full((1, 5, 5), 128, np.uint8)])
    import cv2

    png = cv2.imencode(".png", rgba.transpose(1, 2, 0))[1].tobytes()
    data, _ = encoded_datum_batch([encoded_datum(png, 1).SerializeToString()])
    np.testing.assert_array_equal(data[0], rgba[:3])
    good = encoded_datum(encode_image(images(1, (3, 5, 5))[0]), 1).SerializeToString()
    other_size = encoded_datum(encode_image(images(1, (3, 6, 5))[0]), 1).SerializeToString()
    raw = raw_datum(images(1, (3, 5, 5))[0], 1).SerializeToString()
    broken = encoded_datum(b"\x89PNG not really", 1).SerializeToString()
    for bad in (other_size, raw, broken, b"\xff\xff"):
        assert encoded_datum_batch([good, bad]) is None
    assert encoded_datum_batch([good], shape=(3, 6, 5)) is None
