"""The data-conversion verbs of the `caffeonspark` command (python/caffeonspark/cli.py):

    caffeonspark convert-imageset ROOT [LISTFILE] DB [-gray] [-shuffle] [-seed S]
        [-resize_height H -resize_width W] [-encoded [-encode_type jpg]] [-check_size]
        [-skip_bad] [-threads N]            # no LISTFILE: ROOT/<class>/<image> folders
    caffeonspark convert-cifar10 IN_DIR OUT_DIR
    caffeonspark compute-image-mean DB [MEAN.binaryproto]
    caffeonspark lmdb-to-parquet DB OUT_DIR [-row_group_size N]
    caffeonspark parquet-to-lmdb PARQUET DB
    caffeonspark lmdb-to-seq DB OUT.seq
    caffeonspark seq-to-lmdb SEQ DB

Flags take one or two dashes and keep Caffe's tool spellings (`-resize_height`). Each verb
prints what it wrote; long conversions show a progress bar on a terminal.
Tests: tests/data/test_cli_data.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from caffeonspark.cli_report import UsageError


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    parser.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), **kwargs)


def add_data_verbs(verbs) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add the conversion verbs to the subparsers `verbs`; returns verb -> handler."""
    imageset = verbs.add_parser("convert-imageset", help="image list or folder -> Datum LMDB")
    imageset.add_argument(
        "root", help="folder the listed paths are relative to (or the image folder)"
    )
    imageset.add_argument("paths", nargs="+", metavar="[LISTFILE] DB")
    _flag(imageset, "gray", action="store_true", help="decode as 1-channel gray")
    _flag(imageset, "shuffle", action="store_true", help="shuffle the entries (seeded)")
    _flag(imageset, "seed", type=int, default=0)
    _flag(imageset, "resize_height", type=int, default=0)
    _flag(imageset, "resize_width", type=int, default=0)
    _flag(imageset, "encoded", action="store_true", help="store encoded image bytes")
    _flag(imageset, "encode_type", default="", help="re-encode as this type (jpg, png...)")
    _flag(imageset, "check_size", action="store_true", help="require equal image sizes")
    _flag(imageset, "skip_bad", action="store_true", help="skip unreadable images (as Caffe)")
    _flag(imageset, "threads", type=int, default=2, help="decode threads (2)")
    _flag(imageset, "overwrite", action="store_true")

    cifar = verbs.add_parser("convert-cifar10", help="CIFAR-10 binaries -> train/test LMDBs")
    cifar.add_argument("input_dir")
    cifar.add_argument("out_dir")
    _flag(cifar, "overwrite", action="store_true")

    mean = verbs.add_parser("compute-image-mean", help="per-pixel mean of an LMDB -> binaryproto")
    mean.add_argument("db")
    mean.add_argument("out", nargs="?")

    to_parquet = verbs.add_parser("lmdb-to-parquet", help="Datum LMDB -> image-schema Parquet")
    to_parquet.add_argument("db")
    to_parquet.add_argument("out_dir")
    _flag(to_parquet, "row_group_size", type=int, default=1000)

    from_parquet = verbs.add_parser("parquet-to-lmdb", help="image-schema Parquet -> Datum LMDB")
    from_parquet.add_argument("source")
    from_parquet.add_argument("db")
    _flag(from_parquet, "overwrite", action="store_true")

    to_seq = verbs.add_parser("lmdb-to-seq", help="Datum LMDB -> Hadoop SequenceFile")
    to_seq.add_argument("db")
    to_seq.add_argument("out")

    from_seq = verbs.add_parser("seq-to-lmdb", help="Hadoop SequenceFile(s) -> Datum LMDB")
    from_seq.add_argument("source")
    from_seq.add_argument("db")
    _flag(from_seq, "overwrite", action="store_true")

    return {
        "convert-imageset": convert_imageset,
        "convert-cifar10": convert_cifar10,
        "compute-image-mean": compute_image_mean,
        "lmdb-to-parquet": lmdb_to_parquet,
        "parquet-to-lmdb": parquet_to_lmdb,
        "lmdb-to-seq": lmdb_to_seq,
        "seq-to-lmdb": seq_to_lmdb,
    }


def convert_imageset(args: argparse.Namespace) -> int:
    from caffeonspark.data.convert_imageset import convert_imageset as convert

    if len(args.paths) > 2:
        raise UsageError("convert-imageset takes ROOT [LISTFILE] DB")
    list_file, db = (
        (args.paths[0], args.paths[1]) if len(args.paths) == 2 else (None, args.paths[0])
    )
    count = convert(
        args.root,
        list_file,
        db,
        shuffle=args.shuffle,
        seed=args.seed,
        overwrite=args.overwrite,
        gray=args.gray,
        resize_height=args.resize_height,
        resize_width=args.resize_width,
        encoded=args.encoded,
        encode_type=args.encode_type,
        check_size=args.check_size,
        skip_bad=args.skip_bad,
        threads=args.threads,
    )
    print(f"{count} images -> {db}")
    return 0


def convert_cifar10(args: argparse.Namespace) -> int:
    from caffeonspark.data.convert_cifar import convert_cifar10 as convert

    train, test = convert(args.input_dir, args.out_dir, overwrite=args.overwrite)
    print(f"train: {train}\ntest: {test}")
    return 0


def compute_image_mean(args: argparse.Namespace) -> int:
    from caffeonspark.data.image_mean import compute_image_mean as compute

    mean = compute(args.db, args.out)
    per_channel = mean.reshape(mean.shape[0], -1).mean(axis=1)
    print("mean_value: " + " ".join(f"{v:.6g}" for v in per_channel))
    return 0


def lmdb_to_parquet(args: argparse.Namespace) -> int:
    from caffeonspark.data.parquet_io import lmdb_to_parquet as convert

    print(
        f"{convert(args.db, args.out_dir, row_group_size=args.row_group_size)} rows -> {args.out_dir}"
    )
    return 0


def parquet_to_lmdb(args: argparse.Namespace) -> int:
    from caffeonspark.data.parquet_io import parquet_to_lmdb as convert

    print(f"{convert(args.source, args.db, overwrite=args.overwrite)} datums -> {args.db}")
    return 0


def lmdb_to_seq(args: argparse.Namespace) -> int:
    from caffeonspark.data.convert_seq import lmdb_to_seq as convert

    print(f"{convert(args.db, args.out)} records -> {args.out}")
    return 0


def seq_to_lmdb(args: argparse.Namespace) -> int:
    from caffeonspark.data.convert_seq import seq_to_lmdb as convert

    print(f"{convert(args.source, args.db, overwrite=args.overwrite)} datums -> {args.db}")
    return 0
