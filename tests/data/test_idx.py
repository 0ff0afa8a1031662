"""Tests for caffeonspark.data.idx: IDX round trips, the exact header bytes, gzip, bad files,
interrupted writes that leave no partial file."""

from __future__ import annotations

import errno
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from caffeonspark.data.idx import (
    find_idx_file,
    idx_bytes,
    read_idx,
    read_idx_bytes,
    read_idx_header,
    write_idx,
)
from caffeonspark.errors import FormatError, IoError


def test_uint8_images_round_trip_and_mnist_header(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, images)
    raw = path.read_bytes()
    # MNIST's image magic is 2051 = 0x00000803, then big-endian count, rows, cols.
    assert raw[:16] == struct.pack(">IIII", 2051, 5, 28, 28)
    assert raw[16:] == images.tobytes()
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == (5, 28, 28)
    np.testing.assert_array_equal(back, images)
    assert read_idx_header(path) == (np.dtype(">u1"), (5, 28, 28))


def test_uint8_labels_round_trip(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    path = tmp_path / "labels"
    write_idx(path, labels)
    raw = path.read_bytes()
    assert raw[:8] == struct.pack(">II", 2049, 10)  # MNIST's label magic
    np.testing.assert_array_equal(read_idx(path), labels)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_other_dtypes_round_trip_big_endian(dtype: type, tmp_path: Path) -> None:
    arr: np.ndarray = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    data = idx_bytes(arr)
    body = data[4 + 4 * 3 :]
    assert body == arr.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    back = read_idx_bytes(data)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, arr)


def test_gzip_files_read_transparently(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    plain = tmp_path / "x-idx3-ubyte"
    write_idx(plain, arr)
    # Compressed by someone else (as MNIST is downloaded), name without .gz.
    other = tmp_path / "other"
    other.write_bytes(gzip.compress(plain.read_bytes()))
    np.testing.assert_array_equal(read_idx(other), arr)
    # Written gzip'd by us.
    gz = tmp_path / "x-idx3-ubyte.gz"
    write_idx(gz, arr)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(gz), arr)
    np.testing.assert_array_equal(read_idx_bytes(gz.read_bytes()), arr)
    assert read_idx_header(gz)[1] == (3, 4, 5)


def test_rejects_bad_files(tmp_path: Path) -> None:
    good = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(FormatError, match="truncated"):
        read_idx_bytes(good[:-1])
    with pytest.raises(FormatError, match="trailing"):
        read_idx_bytes(good + b"\x00")
    with pytest.raises(FormatError, match="not an IDX"):
        read_idx_bytes(b"\x01" + good[1:])
    with pytest.raises(FormatError, match="type code"):
        read_idx_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 0))
    with pytest.raises(FormatError, match="truncated"):
        read_idx_bytes(b"\x00\x00")
    with pytest.raises(FormatError):
        idx_bytes(np.zeros(3, dtype=np.uint32))
    with pytest.raises(IoError):
        read_idx(tmp_path / "missing")


def test_find_idx_file_spellings(tmp_path: Path) -> None:
    assert find_idx_file(tmp_path, "train-images-idx3-ubyte") is None
    (tmp_path / "train-images.idx3-ubyte").write_bytes(b"")
    assert (
        find_idx_file(tmp_path, "train-images-idx3-ubyte") == tmp_path / "train-images.idx3-ubyte"
    )
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert (
        find_idx_file(tmp_path, "train-images-idx3-ubyte")
        == tmp_path / "train-images-idx3-ubyte.gz"
    )
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    assert (
        find_idx_file(tmp_path, "train-images-idx3-ubyte") == tmp_path / "train-images-idx3-ubyte"
    )


@pytest.mark.parametrize("name", ["t-idx3-ubyte", "t-idx3-ubyte.gz"])
def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch, name: str) -> None:
    path = tmp_path / name
    write_idx(path, np.zeros((2, 3), np.uint8))
    before = path.read_bytes()

    def disk_error(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_error)  # every byte written, none made durable
    with pytest.raises(IoError, match="cannot write IDX file"):
        write_idx(path, np.ones((4, 3), np.uint8))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [name]


def test_interrupted_gzip_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    real = gzip.GzipFile.write

    def half_then_interrupt(self: gzip.GzipFile, data: bytes) -> int:
        real(self, bytes(data)[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(gzip.GzipFile, "write", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_idx(tmp_path / "t.gz", np.zeros((100, 28, 28), np.uint8))
    assert os.listdir(tmp_path) == []
