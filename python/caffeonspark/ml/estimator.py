"""CaffeEstimator: CaffeOnSpark training as a pyspark.ml Estimator. `fit(df)` writes the
stage's solver (baseLr / maxIter / net applied, solver_files.py) in a fresh local folder,
trains it through the driver (CaffeOnSpark.train over DataSource.fromDataFrame(df): rows in
the image schema, the `label` column renamed to "label" for the data layer) and returns a
CaffeModel over the .caffemodel it wrote (modelUri/fit-<random>.caffemodel, so that the
fits of a CrossValidator never overwrite each other). That folder is removed after training;
the model's solver copy (and, without modelUri, its .caffemodel) move to a folder the
returned CaffeModel owns (owned.py: removed when the model and its copies are collected, or
by model.close()).
Tests: tests/ml/test_stages.py, tests/ml/test_cleanup.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.util import MLReadable, MLWritable

from caffeonspark.errors import ConfigError
from caffeonspark.ml.model import CaffeModel
from caffeonspark.ml.owned import OwnedFolder
from caffeonspark.ml.params import TrainParams
from caffeonspark.ml.persist import StageReader, StageWriter
from caffeonspark.ml.solver_files import write_solver

__all__ = ["CaffeEstimator"]


class CaffeEstimator(Estimator, TrainParams, MLWritable, MLReadable):
    """CaffeEstimator(solver=..., baseLr=..., features=["ip1"], ...).fit(df) -> CaffeModel."""

    def __init__(self, **params: Any) -> None:
        super().__init__()
        unknown = sorted(set(params) - {p.name for p in self.params})
        if unknown:
            raise ConfigError(f"CaffeEstimator: unknown param(s) {', '.join(unknown)}")
        self._set(**{k: v for k, v in params.items() if v is not None})

    def _fit(self, dataset: Any) -> CaffeModel:
        from caffeonspark.spark import CaffeOnSpark, Config, DataSource, storage

        self.check()
        get = self.getOrDefault
        label = get(self.label)
        if label != "label":
            if label not in dataset.columns:
                raise ConfigError(f"CaffeEstimator: param label names '{label}', which is "
                                  f"not a column (columns: {', '.join(dataset.columns)})")
            dataset = dataset.drop("label").withColumnRenamed(label, "label")
        name = f"fit-{secrets.token_hex(6)}.caffemodel"
        # The fit's solver copy, and without modelUri its model and snapshots: removed
        # after training, once what the model needs is in the model's own folder.
        with tempfile.TemporaryDirectory(prefix="caffe-estimator-") as work:
            solver, _ = write_solver(
                work, get(self.solver), get(self.net) if self.isDefined(self.net) else None,
                get(self.baseLr) if self.isDefined(self.baseLr) else None,
                get(self.maxIter) if self.isDefined(self.maxIter) else None)
            trained = storage.join(get(self.modelUri) if self.isDefined(self.modelUri)
                                   else work, name)
            conf = Config(dataset.sparkSession, [
                "-train", "-conf", solver, "-model", trained,
                "-clusterSize", str(get(self.clusterSize)), "-devices", str(get(self.devices)),
                "-connection", get(self.connection)])
            CaffeOnSpark(dataset.sparkSession).train(
                DataSource.fromDataFrame(conf, dataset, True))
            files = OwnedFolder("caffe-model-")
            kept, _ = write_solver(files.path, solver)
            model = trained
            if not self.isDefined(self.modelUri):
                model = os.path.join(files.path, name)
                shutil.move(trained, model)
        fitted = CaffeModel(solver=kept, modelUri=model)
        fitted._files = files
        for param in ("features", "outputBlob", "featuresCol", "predictionCol"):
            fitted._set(**{param: get(self.getParam(param))})
        return fitted

    def write(self) -> StageWriter:
        return StageWriter(self)

    @classmethod
    def read(cls) -> StageReader:
        return StageReader(cls)
