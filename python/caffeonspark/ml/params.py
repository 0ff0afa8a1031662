"""The pyspark.ml Params of CaffeEstimator and CaffeModel, and their checks.

Shared (CaffeParams): solver (solver prototxt), net (optional net prototxt replacing the
solver's), features (blob names concatenated into the features vector), outputBlob (the
blob whose argmax is the prediction; empty: the TEST net's last InnerProduct top),
featuresCol and predictionCol (the output columns' names). The estimator adds clusterSize,
devices, connection (the driver's -clusterSize -devices -connection), baseLr and maxIter
(the solver's base_lr / max_iter, overridden when set), label (the input column holding the
label) and modelUri (folder the fits write their models in); the model adds modelUri (its
.caffemodel). A bad value is a ConfigError (a ValueError) naming the stage and the param.
Tests: tests/ml/test_stages.py.
"""

from __future__ import annotations

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasFeaturesCol, HasPredictionCol

from caffeonspark.errors import ConfigError
from caffeonspark.proto import caffe_pb2
from caffeonspark.spark.config import CONNECTIONS, Config

__all__ = ["CaffeParams", "TrainParams", "output_blob"]


class CaffeParams(HasFeaturesCol, HasPredictionCol):
    """What both stages need to run the net."""

    solver: Param[str] = Param(Params._dummy(), "solver", "path of the solver prototxt",
                               typeConverter=TypeConverters.toString)
    net: Param[str] = Param(Params._dummy(), "net", "net prototxt replacing the solver's net",
                            typeConverter=TypeConverters.toString)
    features: Param[list[str]] = Param(
        Params._dummy(), "features", "blobs concatenated into the features vector",
        typeConverter=TypeConverters.toListString)
    outputBlob: Param[str] = Param(
        Params._dummy(), "outputBlob",
        "blob whose argmax is the prediction (empty: the TEST net's last InnerProduct top)",
        typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(features=["ip1"], outputBlob="", featuresCol="features",
                         predictionCol="prediction")

    def _check_common(self) -> None:
        if not self.isDefined(self.solver):
            raise ConfigError(f"{self._owner()}: param solver (the solver prototxt) is not set")
        blobs = self.getOrDefault(self.features)
        if not blobs or any(not b for b in blobs):
            raise ConfigError(f"{self._owner()}: param features must name at least one blob "
                              f"(got {blobs!r})")
        if self.getOrDefault(self.featuresCol) == self.getOrDefault(self.predictionCol):
            raise ConfigError(f"{self._owner()}: params featuresCol and predictionCol are both "
                              f"'{self.getOrDefault(self.featuresCol)}'")

    def _owner(self) -> str:
        return type(self).__name__


class TrainParams(CaffeParams):
    """The estimator's own Params."""

    clusterSize: Param[int] = Param(Params._dummy(), "clusterSize", "training ranks",
                                    typeConverter=TypeConverters.toInt)
    devices: Param[int] = Param(Params._dummy(), "devices", "devices per rank",
                                typeConverter=TypeConverters.toInt)
    connection: Param[str] = Param(Params._dummy(), "connection", "ethernet or infiniband",
                                   typeConverter=TypeConverters.toString)
    baseLr: Param[float] = Param(Params._dummy(), "baseLr", "the solver's base_lr, overridden",
                                 typeConverter=TypeConverters.toFloat)
    maxIter: Param[int] = Param(Params._dummy(), "maxIter", "the solver's max_iter, overridden",
                                typeConverter=TypeConverters.toInt)
    label: Param[str] = Param(Params._dummy(), "label", "input column holding the label",
                              typeConverter=TypeConverters.toString)
    modelUri: Param[str] = Param(
        Params._dummy(), "modelUri",
        "folder (path or URI the executors see) each fit writes its .caffemodel in "
        "(default: a fresh local temporary folder)", typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(clusterSize=1, devices=1, connection="ethernet", label="label")

    def check(self) -> None:
        """ConfigError naming the first bad param."""
        self._check_common()
        for param in (self.clusterSize, self.devices):
            if self.getOrDefault(param) < 1:
                raise ConfigError(f"{self._owner()}: param {param.name} must be at least 1 "
                                  f"(got {self.getOrDefault(param)})")
        if self.getOrDefault(self.connection) not in CONNECTIONS:
            raise ConfigError(f"{self._owner()}: param connection must be one of "
                              f"{', '.join(CONNECTIONS)} (got '{self.getOrDefault(self.connection)}')")
        if self.isDefined(self.baseLr) and not self.getOrDefault(self.baseLr) > 0:
            raise ConfigError(f"{self._owner()}: param baseLr must be positive "
                              f"(got {self.getOrDefault(self.baseLr)})")
        if self.isDefined(self.maxIter) and self.getOrDefault(self.maxIter) < 1:
            raise ConfigError(f"{self._owner()}: param maxIter must be at least 1 "
                              f"(got {self.getOrDefault(self.maxIter)})")
        if not self.getOrDefault(self.label):
            raise ConfigError(f"{self._owner()}: param label must name the label column")


def output_blob(stage: CaffeParams, conf: Config) -> str:
    """The prediction's blob: outputBlob, or the TEST net's last InnerProduct top."""
    chosen = stage.getOrDefault(stage.outputBlob)
    if chosen:
        return chosen
    tops = [layer.top[0] for layer in conf.phase_net(caffe_pb2.TEST).layer
            if layer.type == "InnerProduct" and layer.top]
    if not tops:
        raise ConfigError(f"{type(stage).__name__}: the TEST net has no InnerProduct layer; set "
                          "param outputBlob to the blob whose argmax is the prediction")
    return tops[-1]

