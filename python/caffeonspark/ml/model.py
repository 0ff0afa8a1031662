"""CaffeModel: a trained net as a pyspark.ml Transformer. `transform(df)` runs the TEST net
over the rows (CaffeOnSpark.features, the rows in the image schema the estimator trained on,
joined back on their unique `id`) and adds featuresCol (the `features` blobs concatenated, a
pyspark.ml.linalg DenseVector, for VectorAssembler / LogisticRegression) and predictionCol
(the argmax of outputBlob, a double; the first index on ties, as NumPy's argmax).
A fitted model owns the folder of its solver copy and, without the estimator's modelUri, its
.caffemodel (owned.py): removed when the model and all its copies are garbage-collected, or by
close(); save() it to keep the weights. A DataFrame transform returned keeps the folder too,
but one derived from it does not: evaluate it while the model is referenced.
Tests: tests/ml/test_stages.py, tests/ml/test_cleanup.py.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any

from pyspark.ml import Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import MLReadable, MLWritable

from caffeonspark.errors import ConfigError
from caffeonspark.ml.owned import OwnedFolder
from caffeonspark.ml.params import CaffeParams, output_blob
from caffeonspark.ml.persist import StageReader, StageWriter
from caffeonspark.ml.solver_files import write_solver

__all__ = ["CaffeModel"]

_ID = "__caffe_sample_id"


class CaffeModel(Model, CaffeParams, MLWritable, MLReadable):
    """The model CaffeEstimator.fit returns (or CaffeModel(solver=..., modelUri=...))."""

    _saves_weights = True

    modelUri: Param[str] = Param(Params._dummy(), "modelUri",
                                 ".caffemodel the net runs with (path or URI)",
                                 typeConverter=TypeConverters.toString)

    def __init__(self, *, solver: str | None = None, net: str | None = None,
                 modelUri: str | None = None, features: list[str] | None = None,
                 outputBlob: str | None = None, featuresCol: str | None = None,
                 predictionCol: str | None = None) -> None:
        super().__init__()
        given = {"solver": solver, "net": net, "modelUri": modelUri, "features": features,
                 "outputBlob": outputBlob, "featuresCol": featuresCol,
                 "predictionCol": predictionCol}
        self._set(**{k: v for k, v in given.items() if v is not None})
        # The fit's files (estimator.py), shared with this model's copies; None otherwise.
        self._files: OwnedFolder | None = None

    def _conf(self, spark: Any) -> tuple[Any, str]:
        """The -features Config of the transform, and the prediction's blob."""
        from caffeonspark.spark import Config

        self._check_common()
        if not self.isDefined(self.modelUri):
            raise ConfigError("CaffeModel: param modelUri (the .caffemodel) is not set")
        if self._files is not None and not self._files.alive:
            raise ConfigError("CaffeModel: closed (its fitted files are removed); save() a "
                              "model before closing it to keep using it")
        net = self.getOrDefault(self.net) if self.isDefined(self.net) else None
        # Config reads the solver and net at once, so the stage's copy lives only here.
        with tempfile.TemporaryDirectory(prefix="caffe-model-") as folder:
            solver, _ = write_solver(folder, self.getOrDefault(self.solver), net,
                                     owner="CaffeModel")
            conf = Config(conf=solver)
            out = output_blob(self, conf)
            blobs = list(dict.fromkeys([*self.getOrDefault(self.features), out]))
            # features() refuses an existing -output; nothing is written there.
            unused = os.path.join(tempfile.gettempdir(),
                                  f"caffe-model-unused-{secrets.token_hex(6)}")
            return Config(spark, ["-features", ",".join(blobs), "-conf", solver,
                                  "-model", self.getOrDefault(self.modelUri), "-output", unused,
                                  "-clusterSize", "1"]), out

    def close(self) -> None:
        """Remove the fitted files now (the model and its copies no longer transform);
        without close they go when the model and its copies are garbage-collected."""
        if self._files is not None:
            self._files.release()

    def _transform(self, dataset: Any) -> Any:
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql import functions as F

        from caffeonspark.spark import CaffeOnSpark, DataSource

        features_col = self.getOrDefault(self.featuresCol)
        prediction_col = self.getOrDefault(self.predictionCol)
        for param, name in (("featuresCol", features_col), ("predictionCol", prediction_col)):
            if name in dataset.columns:
                raise ConfigError(f"CaffeModel: param {param} '{name}' is already a column "
                                  "of the DataFrame")
        if "id" not in dataset.columns:
            raise ConfigError("CaffeModel.transform: the DataFrame needs a unique `id` column "
                              "(the image schema's key) to join the net's outputs back on")
        spark = dataset.sparkSession
        conf, out = self._conf(spark)
        blobs = self.getOrDefault(self.features)
        extracted = CaffeOnSpark(spark).features(
            DataSource.fromDataFrame(conf, dataset, isTrain=False))
        joined = F.concat(*[F.col(b) for b in blobs]) if len(blobs) > 1 else F.col(blobs[0])
        scores = F.col(out)
        outputs = extracted.select(
            F.col("SampleID").alias(_ID),
            array_to_vector(joined).alias(features_col),
            (F.array_position(scores, F.array_max(scores)) - 1).cast("double").alias(
                prediction_col),
        )
        result = dataset.join(outputs, dataset["id"] == outputs[_ID]).drop(_ID)
        # The executors read modelUri when the result is evaluated: it keeps the files too.
        result._caffeonspark_files = self._files
        return result

    def write(self) -> StageWriter:
        return StageWriter(self)

    @classmethod
    def read(cls) -> StageReader:
        return StageReader(cls)
