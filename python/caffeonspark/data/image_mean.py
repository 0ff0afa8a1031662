"""compute_image_mean: the per-pixel mean of a Datum LMDB, as a .binaryproto (docs/CAFFE.md §5.3).

Every record (raw, float_data, or encoded and decoded natively) must have the shape of the
first (FormatError naming the database and key otherwise). The mean is accumulated in
float64 (Caffe sums in float32, which is exact only below 2^24 per pixel sum) and stored
as float32 in a BlobProto with legacy num = 1, channels, height, width — the layout
Caffe's mean files have, which transform_param.mean_file reads back. The channel order
is the Datums' (BGR for convert_imageset, RGB for the CIFAR converter).

Tests: tests/data/test_convert_cifar.py.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from caffeonspark import model_io
from caffeonspark.data.datums import datum_image, key_text, parse_datum
from caffeonspark.data.lmdb_writer import iter_lmdb, lmdb_entry_count
from caffeonspark.data.progress import progress
from caffeonspark.errors import FormatError, IoError

__all__ = ["compute_image_mean", "write_mean_file"]

log = logging.getLogger(__name__)


def compute_image_mean(
    db_path: str | os.PathLike[str],
    out_file: str | os.PathLike[str] | None = None,
    *,
    show_progress: bool | None = None,
) -> np.ndarray:
    """The (C, H, W) float32 mean image of the LMDB; written to `out_file` when given."""
    source = os.fspath(db_path)
    total = lmdb_entry_count(source)
    if total is None:
        raise IoError(f"no LMDB at '{source}'")
    if total == 0:
        raise IoError(f"LMDB '{source}' holds no records")
    accumulator: np.ndarray | None = None
    count = 0
    for key, value in progress(iter_lmdb(source), total=total, desc="mean", enabled=show_progress):
        where = f"LMDB '{source}' key '{key_text(key)}'"
        image = datum_image(parse_datum(value, where), where)
        if accumulator is None:
            accumulator = np.zeros(image.shape, dtype=np.float64)
        elif image.shape != accumulator.shape:
            raise FormatError(
                f"{where}: image shape {image.shape} differs from the first record's "
                f"{accumulator.shape}"
            )
        accumulator += image
        count += 1
    assert accumulator is not None
    mean = (accumulator / count).astype(np.float32)
    for channel, value in enumerate(mean.reshape(mean.shape[0], -1).mean(axis=1)):
        log.info("mean_value channel [%d]: %g", channel, value)
    if out_file is not None:
        write_mean_file(out_file, mean)
    return mean


def write_mean_file(path: str | os.PathLike[str], mean: np.ndarray) -> None:
    """A (C, H, W) mean as a legacy 4-D (1, C, H, W) BlobProto .binaryproto."""
    mean = np.asarray(mean, dtype=np.float32)
    if mean.ndim != 3:
        raise FormatError(f"a mean image is (C, H, W), got shape {mean.shape}")
    model_io.write_binaryproto(path, mean[np.newaxis], legacy_4d=True)
