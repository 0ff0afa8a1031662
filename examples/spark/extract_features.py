"""Feature extraction to Parquet: a LeNet's blobs for every row of a source, written by
CaffeOnSpark (`-features ip1 -label label -outputFormat parquet -output ...`), read back with
Spark and joined to the input rows on their id.

    python examples/spark/extract_features.py                       # trains a LeNet first
    python examples/spark/extract_features.py --model work/lenet.caffemodel --features ip1,ip2
    python examples/spark/extract_features.py --format json --output /tmp/ip1.json

The source is --source (an LMDB of Datums; default the held-out digits of --data, generated
when absent), fed through the TEST phase of the example LeNet (lenet_memory_* beside this
file, written to --work). Without an existing --model the same run trains one first
(`-train`, --iterations on the training digits), like CaffeOnSpark's first example. The
features are written to a fresh path and then renamed to --output (an existing output is kept
unless --overwrite). `main(spark, args)` returns the output path, its row count and the
joined DataFrame.
Tests: tests/examples/test_extract_features.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from example_support import (
    check_writable,
    ensure_digits,
    example_parser,
    run_main,
    save_replacing,
    write_lenet,
)

from caffeonspark.spark import Config, DataSource
from caffeonspark.spark.driver import run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = example_parser(
        __doc__.split("\n\n")[0], "data/examples/features",
        "folder for the nets (and the LeNet model when trained here)", 300,
        "LeNet's max_iter when it is trained here", "replace an existing output")
    parser.add_argument("--source", default=None,
                        help="LMDB whose rows get features (default: --data's mnist_test_lmdb)")
    parser.add_argument("--model", default=None,
                        help="trained LeNet .caffemodel (default work/lenet.caffemodel, "
                             "trained first when absent)")
    parser.add_argument("--features", default="ip1", help="comma-separated blob names")
    parser.add_argument("--format", default="parquet", choices=["parquet", "json"])
    parser.add_argument("--output", default=None,
                        help="where the features go (default work/<features>.<format>)")
    args = parser.parse_args(argv)
    work = Path(args.work)
    if args.model is None:
        args.model = str(work / "lenet.caffemodel")
    if args.output is None:
        args.output = str(work / f"{args.features.replace(',', '_')}.{args.format}")
    return args


def main(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Extract (training first if needed), write, read back, join; see the module docstring."""
    check_writable(args.output, args.overwrite)
    train_lmdb, test_lmdb = ensure_digits(args.data, args.train_count, args.test_count)
    source = Path(args.source).resolve() if args.source else test_lmdb
    solver = write_lenet(args.work, train_lmdb, source, max_iter=args.iterations,
                         display=max(args.iterations // 4, 1))
    model = Path(args.model).resolve()
    flags = [
        "-features", args.features, "-label", "label", "-outputFormat", args.format,
        "-conf", str(solver), "-model", f"file:{model}",
        "-clusterSize", str(args.cluster_size), "-devices", "1", "-connection", "ethernet",
    ]
    if not model.is_file():
        flags.insert(0, "-train")

    def extract_to(path: str) -> None:
        run(Config(spark, [*flags, "-output", f"file:{path}"]), spark)

    output = save_replacing(args.output, extract_to, args.overwrite)

    features = spark.read.format(args.format).load(str(output))
    inputs = DataSource.getSource(Config(spark, ["-conf", str(solver)]), False).dataframe(spark)
    joined = inputs.join(features.withColumnRenamed("label", "feature_label"),
                         inputs.id == features.SampleID)
    rows, matched = features.count(), joined.count()
    print(f"{rows} feature rows ({', '.join(features.columns)}) in {output} ({args.format})")
    print(f"{matched} of {inputs.count()} input rows joined on id")
    first = args.features.split(",")[0]
    joined.select("id", "label", "feature_label", first).show(5, truncate=60)
    return {"output": output, "rows": rows, "joined": joined, "model": model, "solver": solver}


def cli(argv: Sequence[str] | None = None) -> int:
    return run_main(main, parse_args(argv), Path(__file__).name)


if __name__ == "__main__":
    raise SystemExit(cli())
