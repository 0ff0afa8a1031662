"""Tests for caffeonspark.data.convert_mnist and lmdb_writer: Datum LMDBs as Caffe writes them.

The stored records are checked with a protobuf wire decoder written here (varint and
length-delimited fields by number, docs/CAFFE.md §5), independent of caffe_pb2.
"""

from __future__ import annotations

from pathlib import Path

import lmdb
import numpy as np
import pytest

from caffeonspark.data import convert_mnist as cm
from caffeonspark.data.digits import MNIST_FILES, generate_digits
from caffeonspark.data.idx import write_idx
from caffeonspark.data.lmdb_writer import iter_datums, iter_lmdb, lmdb_entry_count, write_lmdb
from caffeonspark.errors import IoError


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_wire(buf: bytes) -> dict[int, list[int | bytes]]:
    """Decode a protobuf message into {field number: [values]} (varint and bytes fields)."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = _varint(buf, pos)
            fields.setdefault(number, []).append(value)
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            fields.setdefault(number, []).append(buf[pos : pos + length])
            pos += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type} for field {number}")
    assert pos == len(buf)
    return fields


def _raw_records(path: Path) -> list[tuple[bytes, bytes]]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor()]
    finally:
        env.close()


@pytest.fixture(scope="module")
def small_set() -> tuple[np.ndarray, np.ndarray]:
    return generate_digits(37, seed=11)


def test_datums_decode_field_by_field(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = small_set
    db = tmp_path / "mnist_train_lmdb"
    assert cm.convert_arrays(images, labels, db) == 37
    records = _raw_records(db)
    assert [k for k, _ in records] == [f"{i:08d}".encode() for i in range(37)]
    assert records[0][0] == b"00000000" and records[1][0] == b"00000001"
    for i, (_, value) in enumerate(records):
        fields = decode_wire(value)
        assert fields[1] == [1]  # channels
        assert fields[2] == [28]  # height
        assert fields[3] == [28]  # width
        assert fields[4] == [images[i].tobytes()]  # data: raw row-major pixels
        assert fields[5] == [int(labels[i])]  # label (present even when 0)
        assert set(fields) == {1, 2, 3, 4, 5}  # no float_data, not encoded


def test_iter_datums_reads_back_pixels_and_labels(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = small_set
    db = tmp_path / "db"
    cm.convert_arrays(images, labels, db)
    got = list(iter_datums(db))
    assert [k for k, _ in got] == [f"{i:08d}" for i in range(37)]
    pixels = np.stack(
        [np.frombuffer(d.data, np.uint8).reshape(d.channels, d.height, d.width)[0] for _, d in got]
    )
    np.testing.assert_array_equal(pixels, images)
    np.testing.assert_array_equal([d.label for _, d in got], labels)
    assert not any(d.encoded for _, d in got)
    assert lmdb_entry_count(db) == 37
    assert cm.is_complete_lmdb(db, 37) and not cm.is_complete_lmdb(db, 38)


def test_convert_mnist_from_gzip_idx(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = small_set
    write_idx(tmp_path / "imgs.gz", images)
    write_idx(tmp_path / "lbls", labels)
    db = tmp_path / "out" / "db"
    assert cm.convert_mnist(tmp_path / "imgs.gz", tmp_path / "lbls", db) == 37
    got = list(iter_datums(db))
    np.testing.assert_array_equal(
        np.frombuffer(got[5][1].data, np.uint8).reshape(28, 28), images[5]
    )


def test_commits_in_batches_and_grows_the_map(tmp_path: Path) -> None:
    records = [(f"{i:08d}".encode(), bytes([i % 251]) * 3000) for i in range(2500)]
    db = tmp_path / "big"
    # A 64 KiB map holds a handful of records: it must be doubled many times along the way.
    assert write_lmdb(db, iter(records), initial_map_size=64 << 10) == 2500
    assert list(iter_lmdb(db)) == records


def test_failed_conversion_leaves_no_db(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    images = np.repeat(small_set[0], 50, axis=0)  # 1850 records: fails after the first commit
    labels = np.repeat(small_set[1], 50)
    real = cm.datum_bytes
    calls = {"n": 0}

    def failing(image: np.ndarray, label: int) -> bytes:
        calls["n"] += 1
        if calls["n"] == 1500:
            raise RuntimeError("disk on fire")
        return real(image, label)

    monkeypatch.setattr(cm, "datum_bytes", failing)
    db = tmp_path / "mnist_train_lmdb"
    with pytest.raises(RuntimeError, match="disk on fire"):
        cm.convert_arrays(images, labels, db)
    assert calls["n"] == 1500
    assert not db.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone too


def test_failed_overwrite_keeps_the_old_db(
    tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = small_set
    db = tmp_path / "db"
    cm.convert_arrays(images[:10], labels[:10], db)
    with pytest.raises(IoError, match="exists"):
        cm.convert_arrays(images, labels, db)

    def failing(image: np.ndarray, label: int) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(cm, "datum_bytes", failing)
    with pytest.raises(RuntimeError):
        cm.convert_arrays(images, labels, db, overwrite=True)
    assert lmdb_entry_count(db) == 10
    monkeypatch.undo()
    cm.convert_arrays(images, labels, db, overwrite=True)
    assert lmdb_entry_count(db) == 37
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]


def test_prepare_generated_then_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = cm.prepare_mnist_lmdb(tmp_path, n_train=30, n_test=12, seed=3)
    assert made.source == "generated"
    assert made.train == tmp_path / "mnist_train_lmdb" and made.test == tmp_path / "mnist_test_lmdb"
    train = list(iter_datums(made.train))
    assert len(train) == 30 and lmdb_entry_count(made.test) == 12
    expected, expected_labels = generate_digits(30, 3)
    np.testing.assert_array_equal(
        np.frombuffer(train[7][1].data, np.uint8).reshape(28, 28), expected[7]
    )
    assert [d.label for _, d in train] == expected_labels.tolist()

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("complete databases must be left alone")

    monkeypatch.setattr(cm, "generate_digits", must_not_run)
    monkeypatch.setattr(cm, "write_lmdb", must_not_run)
    again = cm.prepare_mnist_lmdb(tmp_path, n_train=30, n_test=12, seed=3)
    assert again == made


def test_prepare_rebuilds_incomplete_db(tmp_path: Path) -> None:
    images, labels = generate_digits(5, 1)
    cm.convert_arrays(images, labels, tmp_path / "mnist_train_lmdb")  # a short, stale DB
    cm.prepare_mnist_lmdb(tmp_path, n_train=20, n_test=4, seed=1)
    assert lmdb_entry_count(tmp_path / "mnist_train_lmdb") == 20
    assert lmdb_entry_count(tmp_path / "mnist_test_lmdb") == 4


def test_prepare_uses_real_idx_files(tmp_path: Path) -> None:
    idx_dir = tmp_path / "mnist"
    idx_dir.mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", 15), ("test", 6)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        img_name, lbl_name = MNIST_FILES[split]
        write_idx(idx_dir / (img_name + ".gz"), images)
        write_idx(idx_dir / lbl_name, labels)
        arrays[split] = (images, labels)
    made = cm.prepare_mnist_lmdb(tmp_path / "out", n_train=999, n_test=999, idx_dir=idx_dir)
    assert made.source == "mnist"
    for split, path in (("train", made.train), ("test", made.test)):
        images, labels = arrays[split]
        got = list(iter_datums(path))
        assert len(got) == len(labels)
        np.testing.assert_array_equal(
            np.stack([np.frombuffer(d.data, np.uint8) for _, d in got]),
            images.reshape(len(images), -1),
        )
        np.testing.assert_array_equal([d.label for _, d in got], labels)


def test_prepare_falls_back_when_idx_dir_incomplete(tmp_path: Path) -> None:
    idx_dir = tmp_path / "partial"
    idx_dir.mkdir()
    write_idx(idx_dir / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    made = cm.prepare_mnist_lmdb(tmp_path / "out", n_train=8, n_test=3, idx_dir=idx_dir)
    assert made.source == "generated" and lmdb_entry_count(made.train) == 8


def test_command_line(tmp_path: Path, small_set: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = small_set
    write_idx(tmp_path / "i", images)
    write_idx(tmp_path / "l", labels)
    assert cm.main([str(tmp_path / "i"), str(tmp_path / "l"), str(tmp_path / "db")]) == 0
    assert lmdb_entry_count(tmp_path / "db") == 37
    assert cm.main(["--prepare", str(tmp_path / "p"), "--n-train", "4", "--n-test", "2"]) == 0
    assert lmdb_entry_count(tmp_path / "p" / "mnist_test_lmdb") == 2
