"""Deep features into Spark MLlib: LeNet trained with CaffeOnSpark, its `ip1` layer extracted
as a DataFrame, and a pyspark.ml LogisticRegression fitted on those features.

    python examples/spark/mllib_pipeline.py                    # embedded local[clusterSize]
    python examples/spark/mllib_pipeline.py --iterations 500 --cluster-size 2
    spark-submit examples/spark/mllib_pipeline.py --data /shared/digits ...

Steps: generated MNIST-like digits in --data unless its two LMDBs exist; the example LeNet
(lenet_memory_*.prototxt beside this file) written to --work reading them; CaffeOnSpark
trains it (`-train -features ip1 -label label`) and writes work/lenet.caffemodel; `features()`
gives ip1 and the label for every training row (the training LMDB's rows fed through the TEST
net with `DataSource.fromDataFrame`) and for every held-out row (the TEST layer's LMDB, a
separate draw of digits); LogisticRegression is fitted on the training features and scored on
the held-out ones with MulticlassClassificationEvaluator; the fitted model is saved to
--lr-model (written to a fresh path, then renamed; an existing one is kept unless
--overwrite). `main(spark, args)` returns the numbers it prints.
Tests: tests/examples/test_mllib_pipeline.py.
"""

from __future__ import annotations

import argparse
import time
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

from caffeonspark.spark import CaffeOnSpark, Config, DataSource


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = example_parser(
        __doc__.split("\n\n")[0], "data/examples/mllib",
        "folder for the nets, the LeNet model and the LR model", 700, "LeNet's max_iter",
        "replace an existing LR model")
    parser.add_argument("--lr-iterations", type=int, default=50,
                        help="LogisticRegression maxIter")
    parser.add_argument("--lr-model", default=None,
                        help="where the fitted LogisticRegression goes (default work/lr_ip1)")
    args = parser.parse_args(argv)
    if args.lr_model is None:
        args.lr_model = str(Path(args.work) / "lr_ip1")
    return args


def main(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Train, extract, fit, evaluate, save; returns accuracy, row counts and paths."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    check_writable(args.lr_model, args.overwrite)  # before minutes of training
    train_lmdb, test_lmdb = ensure_digits(args.data, args.train_count, args.test_count)
    work = Path(args.work).resolve()
    solver = write_lenet(work, train_lmdb, test_lmdb, max_iter=args.iterations,
                         display=max(args.iterations // 4, 1))
    model = work / "lenet.caffemodel"
    conf = Config(spark, [
        "-train", "-features", "ip1", "-label", "label",
        "-conf", str(solver), "-model", f"file:{model}",
        "-clusterSize", str(args.cluster_size), "-devices", "1", "-connection", "ethernet",
        "-output", f"file:{work}/unused-output",  # features() returns them; nothing written
    ])
    cos = CaffeOnSpark(spark)

    started = time.perf_counter()
    train_source = DataSource.getSource(conf, True)
    cos.train(train_source)
    trained_s = time.perf_counter() - started

    # ip1 of the training rows (through the TEST net, no shuffling) and of the held-out rows.
    train_rows = train_source.dataframe(spark)
    train_features = cos.features(DataSource.fromDataFrame(conf, train_rows, isTrain=False))
    held_out_features = cos.features(DataSource.getSource(conf, False))

    def as_mllib(features: Any) -> Any:
        # -label comes back as a double already; ip1 (array<float>) becomes a DenseVector.
        return features.select(
            cos.floatarray2doublevectorUDF("ip1").alias("features"), "label"
        ).cache()

    train_vectors = as_mllib(train_features)
    held_out_vectors = as_mllib(held_out_features)
    lr = LogisticRegression(maxIter=args.lr_iterations, regParam=0.01, family="multinomial")
    lr_model = lr.fit(train_vectors)
    predictions = lr_model.transform(held_out_vectors)
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(predictions)
    train_accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(
        lr_model.transform(train_vectors)
    )
    saved = save_replacing(args.lr_model, lambda path: lr_model.save(path), args.overwrite)
    result = {
        "held_out_accuracy": accuracy,
        "train_accuracy": train_accuracy,
        "train_rows": train_vectors.count(),
        "held_out_rows": held_out_vectors.count(),
        "lenet_model": str(model),
        "lr_model": str(saved),
        "train_seconds": trained_s,
    }
    train_vectors.unpersist()
    held_out_vectors.unpersist()
    print(f"LeNet: {args.iterations} iterations in {trained_s:.1f} s -> {model}")
    print(f"LogisticRegression on ip1: {result['train_rows']} training rows "
          f"(accuracy {train_accuracy:.4f}), {result['held_out_rows']} held-out rows")
    print(f"held-out accuracy: {accuracy:.4f}")
    print(f"LogisticRegression model saved to {saved}")
    return result


def cli(argv: Sequence[str] | None = None) -> int:
    return run_main(main, parse_args(argv), Path(__file__).name)


if __name__ == "__main__":
    raise SystemExit(cli())
