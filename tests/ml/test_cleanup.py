"""What the Spark ML stages leave in the temporary directory (python/caffeonspark/ml/): fit
removes its working folder and keeps only the returned model's own folder (solver copy, and
the .caffemodel without modelUri); transform and save add nothing; the folder lives while the
model or a copy of it does and goes when they are collected or on close(); a saved model
loads and transforms after the original is gone."""

from __future__ import annotations

import gc
import os
import tempfile

import numpy as np
import pytest

ITERATIONS = 10


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The driver's temporary directory, this test's own (others share /tmp)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def predictions(df) -> dict:
    return {r["id"]: (r["features"].toArray(), r["prediction"])
            for r in df.select("id", "features", "prediction").collect()}


def test_fit_keeps_only_the_models_folder_until_it_is_collected(spark, digits, temp_dir,
                                                                tmp_path):
    from caffeonspark.ml import CaffeEstimator, CaffeModel

    model = CaffeEstimator(solver=str(digits.solver), maxIter=ITERATIONS).fit(digits.train)
    (folder,) = os.listdir(temp_dir)
    assert folder.startswith("caffe-model-")
    weights, *prototxts = sorted(os.listdir(temp_dir / folder))
    assert prototxts == ["net.prototxt", "solver.prototxt"] and weights.startswith("fit-")
    assert model.getOrDefault("modelUri") == str(temp_dir / folder / weights)

    before = predictions(model.transform(digits.test))
    model.save(str(tmp_path / "saved"))
    assert os.listdir(temp_dir) == [folder]  # transform and save left nothing

    copied = model.copy()
    del model
    gc.collect()
    assert os.listdir(temp_dir) == [folder]  # the copy still uses it
    del copied
    gc.collect()
    assert os.listdir(temp_dir) == []

    loaded = CaffeModel.load(str(tmp_path / "saved"))
    after = predictions(loaded.transform(digits.test))
    assert after.keys() == before.keys() and len(after) > 0
    for key, (features, prediction) in before.items():
        np.testing.assert_array_equal(after[key][0], features)
        assert after[key][1] == prediction
    assert os.listdir(temp_dir) == []


def test_with_model_uri_the_model_stays_and_close_removes_the_rest(spark, digits, temp_dir,
                                                                  tmp_path):
    from caffeonspark.errors import ConfigError
    from caffeonspark.ml import CaffeEstimator

    models = tmp_path / "models"
    models.mkdir()
    model = CaffeEstimator(solver=str(digits.solver), maxIter=ITERATIONS,
                           modelUri=str(models)).fit(digits.train)
    (folder,) = os.listdir(temp_dir)
    assert sorted(os.listdir(temp_dir / folder)) == ["net.prototxt", "solver.prototxt"]
    # the user's folder: the fit's model, and the solver's relative snapshot_prefix beside it
    weights, *snapshots = sorted(os.listdir(models))
    assert snapshots == ["mnist_lenet_iter_10.caffemodel", "mnist_lenet_iter_10.solverstate"]
    assert model.getOrDefault("modelUri") == str(models / weights)
    model.close()
    assert os.listdir(temp_dir) == [] and sorted(os.listdir(models)) == [weights, *snapshots]
    with pytest.raises(ConfigError, match="closed"):
        model.transform(digits.test)
