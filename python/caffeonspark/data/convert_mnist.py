"""Convert MNIST IDX files (or arrays) into LMDBs of Caffe ``Datum``s, like Caffe's MNIST converter.

Each image becomes one Datum: channels=1, height=rows, width=cols, ``data`` = the raw uint8
pixels, ``label`` = the digit; its key is the 8-digit zero-padded index (``00000000``,
``00000001``, ...). Records are committed in batches of 1000 and the database is renamed into
place only when complete (see ``lmdb_writer.write_lmdb``).

``prepare_mnist_lmdb(out_dir)`` makes ``out_dir/mnist_train_lmdb`` and
``out_dir/mnist_test_lmdb``: from real MNIST IDX files when ``idx_dir`` holds them, otherwise
from the generated MNIST-like set (``caffeonspark.data.digits``); databases that already exist
and are complete are left alone.

Command line::

    python -m caffeonspark.data.convert_mnist IMAGES LABELS DB      # one IDX pair -> one LMDB
    python -m caffeonspark.data.convert_mnist --prepare OUT_DIR [--idx-dir D] [--n-train N]
        [--n-test N] [--seed S]

Tests: tests/data/test_convert_mnist.py.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from caffeonspark.data.digits import MNIST_FILES, generate_digits
from caffeonspark.data.idx import find_idx_file, read_idx, read_idx_header
from caffeonspark.data.lmdb_writer import (
    DEFAULT_COMMIT_EVERY,
    last_key,
    lmdb_entry_count,
    write_lmdb,
)
from caffeonspark.errors import FormatError
from caffeonspark.proto import caffe_pb2

__all__ = [
    "TRAIN_DB",
    "TEST_DB",
    "MnistLmdb",
    "mnist_key",
    "datum_bytes",
    "convert_arrays",
    "convert_mnist",
    "is_complete_lmdb",
    "find_mnist_idx",
    "prepare_mnist_lmdb",
]

log = logging.getLogger(__name__)

TRAIN_DB = "mnist_train_lmdb"
TEST_DB = "mnist_test_lmdb"
# Seed offset of the generated test split, so it is an independent draw from the training split.
TEST_SEED_OFFSET = 1_000_003


class MnistLmdb(NamedTuple):
    """Where prepare_mnist_lmdb put the databases, and what they were made from."""

    train: Path
    test: Path
    source: str  # "mnist" (real IDX files) or "generated"


def mnist_key(index: int) -> bytes:
    """Caffe's MNIST LMDB key: the index zero-padded to 8 digits."""
    return f"{index:08d}".encode("ascii")


def datum_bytes(image: np.ndarray, label: int) -> bytes:
    """Serialize one (H, W) or (C, H, W) uint8 image and its label as a Caffe Datum."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise FormatError(f"Datum images must be uint8, got {img.dtype}")
    if img.ndim == 2:
        channels, (height, width) = 1, img.shape
    elif img.ndim == 3:
        channels, height, width = img.shape
    else:
        raise FormatError(f"Datum images must be (H, W) or (C, H, W), got shape {img.shape}")
    datum = caffe_pb2.Datum(
        channels=channels,
        height=height,
        width=width,
        data=np.ascontiguousarray(img).tobytes(),
        label=int(label),
    )
    return datum.SerializeToString()


def _check_arrays(images: np.ndarray, labels: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 3:
        raise FormatError(
            f"images must be uint8 (N, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise FormatError(f"labels must be 1-D, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise FormatError(f"{images.shape[0]} images but {labels.shape[0]} labels")


def _records(images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[bytes, bytes]]:
    for i in range(images.shape[0]):
        # Looked up at call time (module global) so tests can make a conversion fail mid-way.
        yield mnist_key(i), datum_bytes(images[i], int(labels[i]))


def convert_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    db_path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    commit_every: int = DEFAULT_COMMIT_EVERY,
) -> int:
    """Write uint8 images (N, rows, cols) and labels (N,) as a Datum LMDB; returns N."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    _check_arrays(images, labels)
    count = write_lmdb(
        db_path, _records(images, labels), commit_every=commit_every, overwrite=overwrite
    )
    log.info("wrote %d datums to %s", count, db_path)
    return count


def convert_mnist(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    db_path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    commit_every: int = DEFAULT_COMMIT_EVERY,
) -> int:
    """Convert an IDX image file and its IDX label file (plain or gzip'd) into a Datum LMDB."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise FormatError(f"{os.fspath(images_path)}: not an IDX uint8 image file (3-D)")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise FormatError(f"{os.fspath(labels_path)}: not an IDX uint8 label file (1-D)")
    return convert_arrays(images, labels, db_path, overwrite=overwrite, commit_every=commit_every)


def is_complete_lmdb(db_path: str | os.PathLike[str], expected: int) -> bool:
    """True when ``db_path`` is a readable LMDB of exactly ``expected`` MNIST-keyed records."""
    if lmdb_entry_count(db_path) != expected:
        return False
    return expected == 0 or last_key(db_path) == mnist_key(expected - 1)


def find_mnist_idx(idx_dir: str | os.PathLike[str] | None) -> dict[str, tuple[Path, Path]] | None:
    """The real MNIST IDX files in ``idx_dir`` as {split: (images, labels)}, or None if any is missing."""
    if idx_dir is None or not Path(idx_dir).is_dir():
        return None
    found: dict[str, tuple[Path, Path]] = {}
    for split, (img_name, lbl_name) in MNIST_FILES.items():
        img = find_idx_file(idx_dir, img_name)
        lbl = find_idx_file(idx_dir, lbl_name)
        if img is None or lbl is None:
            return None
        found[split] = (img, lbl)
    return found


def prepare_mnist_lmdb(
    out_dir: str | os.PathLike[str],
    n_train: int = 60000,
    n_test: int = 10000,
    seed: int = 1,
    idx_dir: str | os.PathLike[str] | None = None,
) -> MnistLmdb:
    """Make ``out_dir/mnist_train_lmdb`` and ``out_dir/mnist_test_lmdb`` if not already there.

    If ``idx_dir`` holds the four MNIST IDX files (plain or ``.gz``), they are converted whole
    (``n_train``/``n_test`` are then ignored); otherwise ``n_train`` and ``n_test`` generated
    MNIST-like digits are used (training split from ``seed``, test split from
    ``seed + 1_000_003``). A database that exists with the expected number of records is kept
    as it is; an incomplete one is rebuilt.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    real = find_mnist_idx(idx_dir)
    if idx_dir is not None and real is None:
        log.warning("no complete set of MNIST IDX files in %s; using generated digits", idx_dir)
    source = "mnist" if real is not None else "generated"
    targets = {
        "train": (out / TRAIN_DB, n_train, seed),
        "test": (out / TEST_DB, n_test, seed + TEST_SEED_OFFSET),
    }
    for split, (db_path, count, split_seed) in targets.items():
        if real is not None:
            img_path, lbl_path = real[split]
            count = read_idx_header(img_path)[1][0]
        if is_complete_lmdb(db_path, count):
            log.info("%s is complete (%d records); skipping", db_path, count)
            continue
        overwrite = db_path.exists()
        if real is not None:
            convert_mnist(img_path, lbl_path, db_path, overwrite=overwrite)
        else:
            images, labels = generate_digits(count, split_seed)
            convert_arrays(images, labels, db_path, overwrite=overwrite)
    return MnistLmdb(out / TRAIN_DB, out / TEST_DB, source)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Convert MNIST IDX files into Caffe Datum LMDBs.")
    parser.add_argument("paths", nargs="*", help="IMAGES LABELS DB (one IDX pair to one LMDB)")
    parser.add_argument(
        "--prepare", metavar="OUT_DIR", help="make mnist_train_lmdb and mnist_test_lmdb"
    )
    parser.add_argument("--idx-dir", help="directory holding real MNIST IDX files")
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DB")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.prepare:
        if args.paths:
            parser.error("--prepare takes no positional paths")
        made = prepare_mnist_lmdb(args.prepare, args.n_train, args.n_test, args.seed, args.idx_dir)
        print(f"train: {made.train}\ntest: {made.test}\nsource: {made.source}")
        return 0
    if len(args.paths) != 3:
        parser.error("expected IMAGES LABELS DB, or --prepare OUT_DIR")
    count = convert_mnist(*args.paths, overwrite=args.overwrite)
    print(f"{count} datums -> {args.paths[2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
