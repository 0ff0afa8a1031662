"""CaffeEstimator: CaffeOnSpark training as a pyspark.ml Estimator. `fit(df)` writes the
stage's solver (baseLr / maxIter / net applied, solver_files.py) in a fresh local folder,
trains it through the driver (CaffeOnSpark.train over DataSource.fromDataFrame(df): rows in
the image schema, the `label` column renamed to "label" for the data layer) and returns a
CaffeModel over the .caffemodel it wrote (modelUri/fit-<random>.caffemodel, so that the
fits of a CrossValidator never overwrite each other).
Tests: tests/ml/test_stages.py.
"""

from __future__ import annotations

import secrets
import tempfile
from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.util import MLReadable, MLWritable

from caffeonspark.errors import ConfigError
from caffeonspark.ml.model import CaffeModel
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
        folder = tempfile.mkdtemp(prefix="caffe-estimator-")
        solver, _ = write_solver(
            folder, get(self.solver), get(self.net) if self.isDefined(self.net) else None,
            get(self.baseLr) if self.isDefined(self.baseLr) else None,
            get(self.maxIter) if self.isDefined(self.maxIter) else None)
        models = get(self.modelUri) if self.isDefined(self.modelUri) else folder
        model = storage.join(models, f"fit-{secrets.token_hex(6)}.caffemodel")
        conf = Config(dataset.sparkSession, [
            "-train", "-conf", solver, "-model", model,
            "-clusterSize", str(get(self.clusterSize)), "-devices", str(get(self.devices)),
            "-connection", get(self.connection)])
        label = get(self.label)
        if label != "label":
            if label not in dataset.columns:
                raise ConfigError(f"CaffeEstimator: param label names '{label}', which is "
                                  f"not a column (columns: {', '.join(dataset.columns)})")
            dataset = dataset.drop("label").withColumnRenamed(label, "label")
        CaffeOnSpark(dataset.sparkSession).train(DataSource.fromDataFrame(conf, dataset, True))
        fitted = CaffeModel(solver=solver, modelUri=model)
        for param in ("features", "outputBlob", "featuresCol", "predictionCol"):
            fitted._set(**{param: get(self.getParam(param))})
        return fitted

    def write(self) -> StageWriter:
        return StageWriter(self)

    @classmethod
    def read(cls) -> StageReader:
        return StageReader(cls)
