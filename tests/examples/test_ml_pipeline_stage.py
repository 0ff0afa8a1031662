"""examples/spark/ml_pipeline_stage.py, quick: 600 generated digits, 40 LeNet iterations per
fit, a 2-fold CrossValidator over base_lr 0.0005 and 0.02: the rate with the higher mean
fold accuracy is chosen (0.02: measured 0.708 against 0.682), the refitted pipeline scores
the held-out digits above 0.7 (measured 0.775), and the saved PipelineModel, loaded back
(CaffeModel's reader included), scores them identically."""

from __future__ import annotations

import pytest

from .conftest import example


@pytest.fixture(scope="module")
def stage_run(spark, tmp_path_factory):
    stage = example("ml_pipeline_stage")
    root = tmp_path_factory.mktemp("ml_stage")
    args = stage.parse_args(["--data", str(root / "digits"), "--work", str(root / "work"),
                             "--train-count", "600", "--test-count", "200",
                             "--iterations", "40", "--rates", "0.0005,0.02", "--folds", "2"])
    return args, stage.main(spark, args)


def test_cross_validation_picks_the_better_rate(stage_run):
    _, result = stage_run
    low, high = result["cv_accuracy"]
    assert result["rates"] == [0.0005, 0.02]
    assert high > low and result["chosen_rate"] == 0.02, result
    assert result["held_out_accuracy"] >= 0.7, result


def test_saved_pipeline_scores_the_same(stage_run, spark):
    from pyspark.ml import PipelineModel
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    from caffeonspark.spark import Config, DataSource

    args, result = stage_run
    loaded = PipelineModel.load(result["pipeline_model"])
    assert [type(s).__name__ for s in loaded.stages] == ["CaffeModel", "LogisticRegressionModel"]
    conf = Config(spark, ["-conf", str(loaded.stages[0].getOrDefault("solver"))])
    held_out = DataSource.getSource(conf, False).dataframe(spark)
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(
        loaded.transform(held_out))
    assert accuracy == result["held_out_accuracy"]
