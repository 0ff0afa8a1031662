"""CIFAR-10 binary files -> LMDBs of Datums, like Caffe's CIFAR-10 converter (docs/CAFFE.md §5.2).

The binary version of CIFAR-10 is data_batch_1.bin ... data_batch_5.bin (training) and
test_batch.bin, each 10000 records of 3073 bytes: one label byte (0-9), then the 32x32 image
as three 1024-byte planes R, G, B. Each record becomes a raw Datum (3, 32, 32) whose `data`
is the 3072 bytes copied as they are, i.e. **RGB** planes (unlike convert_imageset's BGR);
keys are 5-digit zero-padded: file_index * 10000 + item for training (file_index 0-4),
the item index for the test set. Output: `out_dir/cifar10_train_lmdb`, `out_dir/cifar10_test_lmdb`.

`write_cifar10_binaries(dir, per_file, seed)` writes files of that layout with random
pictures (for tests and benchmarks on machines without the real set).

Tests: tests/data/test_convert_cifar.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from caffeonspark.data.lmdb_writer import write_lmdb
from caffeonspark.data.progress import progress
from caffeonspark.errors import FormatError, IoError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "RECORD_BYTES",
    "TRAIN_FILES",
    "TEST_FILE",
    "cifar_key",
    "cifar_records",
    "convert_cifar10",
    "write_cifar10_binaries",
]

log = logging.getLogger(__name__)

SIZE = 32
IMAGE_BYTES = 3 * SIZE * SIZE
RECORD_BYTES = 1 + IMAGE_BYTES
PER_FILE = 10000
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"


def cifar_key(index: int) -> bytes:
    return f"{index:05d}".encode("ascii")


def _read_records(path: Path) -> np.ndarray:
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise IoError(f"cannot read CIFAR-10 file '{path}': {err}") from err
    if raw.size % RECORD_BYTES:
        raise FormatError(
            f"CIFAR-10 file '{path}' holds {raw.size} bytes, not a multiple of {RECORD_BYTES}"
        )
    return raw.reshape(-1, RECORD_BYTES)


def cifar_records(
    path: str | os.PathLike[str], base_index: int = 0
) -> Iterator[tuple[bytes, bytes]]:
    """(key, serialized Datum) of every record of one CIFAR-10 binary file."""
    records = _read_records(Path(path))
    for item, record in enumerate(records):
        label = int(record[0])
        if label > 9:
            raise FormatError(f"CIFAR-10 file '{path}' record {item}: label {label} > 9")
        datum = caffe_pb2.Datum(
            channels=3, height=SIZE, width=SIZE, data=record[1:].tobytes(), label=label
        )
        yield cifar_key(base_index + item), datum.SerializeToString()


def _train_records(folder: Path) -> Iterator[tuple[bytes, bytes]]:
    for file_index, name in enumerate(TRAIN_FILES):
        yield from cifar_records(folder / name, file_index * PER_FILE)


def convert_cifar10(
    input_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    show_progress: bool | None = None,
) -> tuple[Path, Path]:
    """Write out_dir/cifar10_train_lmdb and out_dir/cifar10_test_lmdb; returns their paths."""
    src, out = Path(input_dir), Path(out_dir)
    missing = [n for n in (*TRAIN_FILES, TEST_FILE) if not (src / n).is_file()]
    if missing:
        raise IoError(f"CIFAR-10 folder '{src}' lacks {', '.join(missing)}")
    train, test = out / "cifar10_train_lmdb", out / "cifar10_test_lmdb"
    count = write_lmdb(
        train,
        progress(_train_records(src), desc="cifar10 train", enabled=show_progress),
        overwrite=overwrite,
    )
    log.info("wrote %d training datums to %s", count, train)
    count = write_lmdb(test, cifar_records(src / TEST_FILE), overwrite=overwrite)
    log.info("wrote %d test datums to %s", count, test)
    return train, test


def write_cifar10_binaries(
    out_dir: str | os.PathLike[str], per_file: int = PER_FILE, seed: int = 0
) -> Path:
    """CIFAR-10-layout binaries with random pictures (smooth colour blobs) and labels."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for name in (*TRAIN_FILES, TEST_FILE):
        labels = rng.integers(0, 10, size=per_file, dtype=np.uint8)
        cy, cx = rng.uniform(4, 28, size=(2, per_file, 1, 1))
        colour = rng.uniform(0, 255, size=(per_file, 3, 1, 1))
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)[:, None]
        noise = rng.normal(0, 12, size=(per_file, 3, SIZE, SIZE))
        images = np.clip(colour * blob + noise + 20 * labels[:, None, None, None] / 9, 0, 255)
        records = np.empty((per_file, RECORD_BYTES), dtype=np.uint8)
        records[:, 0] = labels
        records[:, 1:] = images.astype(np.uint8).reshape(per_file, -1)
        records.tofile(out / name)
    return out
