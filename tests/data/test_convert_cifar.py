"""CIFAR-10 binaries -> LMDB (python/caffeonspark/data/convert_cifar.py): 5-digit keys,
RGB planes copied raw, labels; compute_image_mean (data/image_mean.py) against NumPy and
the legacy 4-D binaryproto it writes; the two CLI verbs."""

from __future__ import annotations

import numpy as np
import pytest

from caffeonspark import cli, errors, model_io
from caffeonspark.data.convert_cifar import (
    RECORD_BYTES,
    TEST_FILE,
    TRAIN_FILES,
    convert_cifar10,
    write_cifar10_binaries,
)
from caffeonspark.data.image_mean import compute_image_mean
from caffeonspark.data.lmdb_writer import iter_datums
from caffeonspark.proto import caffe_pb2

PER_FILE = 12


@pytest.fixture
def cifar(tmp_path):
    src = write_cifar10_binaries(tmp_path / "bin", per_file=PER_FILE, seed=3)
    raw = {
        n: np.fromfile(src / n, np.uint8).reshape(-1, RECORD_BYTES)
        for n in (*TRAIN_FILES, TEST_FILE)
    }
    return src, raw


def test_keys_planes_and_labels(cifar, tmp_path):
    src, raw = cifar
    train, test = convert_cifar10(src, tmp_path / "out")
    assert train.name == "cifar10_train_lmdb" and test.name == "cifar10_test_lmdb"
    got = list(iter_datums(train))
    want_keys = [f"{f * 10000 + j:05d}" for f in range(5) for j in range(PER_FILE)]
    assert [k for k, _ in got] == want_keys
    records = np.concatenate([raw[n] for n in TRAIN_FILES])
    for (_, datum), record in zip(got, records, strict=True):
        assert (datum.channels, datum.height, datum.width) == (3, 32, 32)
        assert datum.data == record[1:].tobytes()  # R, G, B planes as stored
        assert datum.label == record[0] and not datum.encoded
    tested = list(iter_datums(test))
    assert [k for k, _ in tested] == [f"{j:05d}" for j in range(PER_FILE)]
    assert [d.label for _, d in tested] == list(raw[TEST_FILE][:, 0])


def test_missing_and_truncated_files(cifar, tmp_path):
    src, _ = cifar
    (src / TEST_FILE).unlink()
    with pytest.raises(errors.IoError, match="lacks test_batch.bin"):
        convert_cifar10(src, tmp_path / "out")
    (src / TEST_FILE).write_bytes(b"\x01" * (RECORD_BYTES + 5))
    with pytest.raises(errors.FormatError, match="not a multiple of 3073"):
        convert_cifar10(src, tmp_path / "out2")


def test_image_mean_matches_numpy_and_reads_back(cifar, tmp_path):
    src, raw = cifar
    train, _ = convert_cifar10(src, tmp_path / "out")
    out = tmp_path / "mean.binaryproto"
    mean = compute_image_mean(train, out)
    images = np.concatenate([raw[n] for n in TRAIN_FILES])[:, 1:].reshape(-1, 3, 32, 32)
    np.testing.assert_allclose(mean, images.astype(np.float64).mean(axis=0), rtol=1e-6)
    blob = caffe_pb2.BlobProto()
    blob.ParseFromString(out.read_bytes())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 32, 32)
    assert not blob.HasField("shape")
    np.testing.assert_array_equal(model_io.read_binaryproto(out)[0], mean)


def test_image_mean_shape_mismatch_names_the_key(tmp_path):
    from caffeonspark.data.datums import raw_datum
    from caffeonspark.data.lmdb_writer import write_lmdb

    records = [
        (b"a", raw_datum(np.zeros((1, 2, 2), np.uint8), 0).SerializeToString()),
        (b"b", raw_datum(np.zeros((1, 3, 2), np.uint8), 0).SerializeToString()),
    ]
    write_lmdb(tmp_path / "db", records)
    with pytest.raises(errors.FormatError, match=r"key 'b': image shape \(1, 3, 2\)"):
        compute_image_mean(tmp_path / "db")


def test_cli_verbs(cifar, tmp_path, capsys):
    src, _ = cifar
    assert cli.main(["convert-cifar10", str(src), str(tmp_path / "o")]) == 0
    assert (
        cli.main(
            [
                "compute-image-mean",
                str(tmp_path / "o" / "cifar10_train_lmdb"),
                str(tmp_path / "m.binaryproto"),
            ]
        )
        == 0
    )
    assert "mean_value:" in capsys.readouterr().out
    assert model_io.read_binaryproto(tmp_path / "m.binaryproto").shape == (1, 3, 32, 32)
