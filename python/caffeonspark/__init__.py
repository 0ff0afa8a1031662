"""caffeonspark: distributed Caffe deep learning inside Spark applications.

`from caffeonspark import CaffeOnSpark, Config, DataSource` loads the Spark API
(caffeonspark/spark/) on first use; the engine alone needs no Spark.
"""

from typing import Any

_SPARK_NAMES = ("CaffeOnSpark", "Config", "DataSource")


def __getattr__(name: str) -> Any:
    if name in _SPARK_NAMES:
        from caffeonspark import spark

        return getattr(spark, name)
    raise AttributeError(f"module 'caffeonspark' has no attribute '{name}'")
