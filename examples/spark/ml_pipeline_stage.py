"""CaffeOnSpark as a Spark ML stage: a pyspark.ml Pipeline (CaffeEstimator -> LogisticRegression
on its ip1 features) whose learning rate a CrossValidator picks.

    python examples/spark/ml_pipeline_stage.py                 # embedded local[clusterSize]
    python examples/spark/ml_pipeline_stage.py --rates 0.001,0.02 --folds 3 --iterations 300
    spark-submit examples/spark/ml_pipeline_stage.py --data /shared/digits ...

Steps: generated MNIST-like digits in --data unless its two LMDBs exist, read as image-schema
DataFrames through the example LeNet (written to --work); a Pipeline of
CaffeEstimator(maxIter=--iterations, features ip1, its own prediction column renamed so it
does not clash with the regression's) and LogisticRegression; CrossValidator over the
estimator's baseLr (--rates, ParamGridBuilder) with --folds folds and
MulticlassClassificationEvaluator(accuracy); the best pipeline, refitted on all training rows,
is scored on the held-out digits and saved to --pipeline-model (a fresh path renamed into
place; an existing one is kept unless --overwrite). `main(spark, args)` returns the numbers
it prints.
Tests: tests/examples/test_ml_pipeline_stage.py.
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

from caffeonspark.spark import Config, DataSource


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = example_parser(
        __doc__.split("\n\n")[0], "data/examples/ml_stage",
        "folder for the nets and the fitted pipeline", 300, "LeNet's max_iter per fit",
        "replace an existing pipeline model")
    parser.add_argument("--rates", default="0.0005,0.02",
                        help="comma-separated base_lr values the CrossValidator tries")
    parser.add_argument("--folds", type=int, default=2, help="CrossValidator folds")
    parser.add_argument("--lr-iterations", type=int, default=50,
                        help="LogisticRegression maxIter")
    parser.add_argument("--pipeline-model", default=None,
                        help="where the best PipelineModel goes (default work/pipeline)")
    args = parser.parse_args(argv)
    if args.pipeline_model is None:
        args.pipeline_model = str(Path(args.work) / "pipeline")
    return args


def main(spark: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Cross-validate, refit, evaluate, save; returns the chosen rate, accuracies, paths."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from caffeonspark.ml import CaffeEstimator

    check_writable(args.pipeline_model, args.overwrite)  # before minutes of training
    rates = [float(r) for r in args.rates.split(",")]
    train_lmdb, test_lmdb = ensure_digits(args.data, args.train_count, args.test_count)
    work = Path(args.work).resolve()
    solver = write_lenet(work, train_lmdb, test_lmdb, display=max(args.iterations // 4, 1),
                         test_interval=100000)
    conf = Config(spark, ["-conf", str(solver), "-clusterSize", str(args.cluster_size)])
    train = DataSource.getSource(conf, True).dataframe(spark).cache()
    held_out = DataSource.getSource(conf, False).dataframe(spark).cache()

    caffe = CaffeEstimator(solver=str(solver), maxIter=args.iterations, features=["ip1"],
                           clusterSize=args.cluster_size, predictionCol="caffe_prediction")
    lr = LogisticRegression(maxIter=args.lr_iterations, regParam=0.01, family="multinomial")
    pipeline = Pipeline(stages=[caffe, lr])
    grid = ParamGridBuilder().addGrid(caffe.baseLr, rates).build()
    evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
    validator = CrossValidator(estimator=pipeline, estimatorParamMaps=grid, evaluator=evaluator,
                               numFolds=args.folds, seed=7)
    started = time.perf_counter()
    cv_model = validator.fit(train)
    seconds = time.perf_counter() - started

    best = cv_model.bestModel
    # CrossValidator's rule: the first grid point of the highest mean metric.
    chosen = rates[max(range(len(rates)), key=lambda i: cv_model.avgMetrics[i])]
    accuracy = evaluator.evaluate(best.transform(held_out))
    saved = save_replacing(args.pipeline_model, lambda path: best.save(path), args.overwrite)
    result = {
        "rates": rates,
        "cv_accuracy": list(cv_model.avgMetrics),
        "chosen_rate": chosen,
        "held_out_accuracy": accuracy,
        "pipeline_model": str(saved),
        "cv_seconds": seconds,
    }
    train.unpersist()
    held_out.unpersist()
    for rate, metric in zip(rates, cv_model.avgMetrics, strict=True):
        print(f"base_lr {rate:g}: mean {args.folds}-fold accuracy {metric:.4f}")
    print(f"chosen base_lr: {chosen:g} (cross-validation took {seconds:.1f} s)")
    print(f"held-out accuracy of the refitted pipeline: {accuracy:.4f}")
    print(f"PipelineModel saved to {saved}")
    return result


def cli(argv: Sequence[str] | None = None) -> int:
    return run_main(main, parse_args(argv), Path(__file__).name)


if __name__ == "__main__":
    raise SystemExit(cli())
