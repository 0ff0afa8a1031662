"""examples/spark/mllib_pipeline.py: LeNet trained with CaffeOnSpark on generated digits, ip1
extracted for the training and the held-out rows, a pyspark.ml LogisticRegression fitted on
the training features; the held-out accuracy reaches 95%, and the saved model, loaded back,
scores the engine's own ip1 of the held-out digits to the same accuracy (NumPy float64)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import N_TEST, N_TRAIN, example


def test_held_out_accuracy_reaches_95_percent(pipeline):
    _, result = pipeline
    assert result["train_rows"] == N_TRAIN and result["held_out_rows"] == N_TEST
    assert result["held_out_accuracy"] >= 0.95, result


def test_saved_model_scores_the_engine_features_the_same(pipeline, engine_features):
    from pyspark.ml.classification import LogisticRegressionModel

    _, result = pipeline
    model = LogisticRegressionModel.load(result["lr_model"])
    assert (model.numClasses, model.numFeatures) == (10, 500)
    weights = model.coefficientMatrix.toArray().astype(np.float64)
    logits = engine_features["ip1"].astype(np.float64) @ weights.T + model.interceptVector.toArray()
    predicted = logits.argmax(axis=1)
    accuracy = float(np.mean(predicted == engine_features["label"]))
    # The engine's ip1 and Spark's agree to ~1e-6: at most a near-tie may flip.
    assert accuracy == pytest.approx(result["held_out_accuracy"], abs=1.5 / N_TEST)
    assert accuracy >= 0.95


def test_an_existing_model_is_kept_unless_overwrite(pipeline, spark):
    args, result = pipeline
    before = sorted(p.name for p in result_files(result["lr_model"]))
    with pytest.raises(FileExistsError, match="lr_ip1 exists; pass --overwrite"):
        example("mllib_pipeline").main(spark, args)  # refused before any training
    assert sorted(p.name for p in result_files(result["lr_model"])) == before


def test_save_replacing_swaps_only_once_written(tmp_path):
    support = example("example_support")
    target = tmp_path / "model"
    target.mkdir()
    (target / "old").write_text("old")

    def fails(path: str) -> None:
        (tmp_path / path).mkdir()
        raise RuntimeError("write failed")

    with pytest.raises(RuntimeError):
        support.save_replacing(target, fails, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the partial write is gone
    assert (target / "old").read_text() == "old"

    def writes(path: str) -> None:
        (tmp_path / path).mkdir()
        (tmp_path / path / "new").write_text("new")

    support.save_replacing(target, writes, overwrite=True)
    assert [p.name for p in target.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # nothing left beside it


def result_files(path):
    from pathlib import Path

    return list(Path(path).rglob("*"))
