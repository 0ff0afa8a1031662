"""CaffeOnSpark's Spark API: Config (the original's flags), DataSource (a net's data layer as
a DataFrame) and CaffeOnSpark (train / test / features / trainWithValidation in barrier
mode). pyspark (the `spark` extra) is imported only when Spark work starts.

    config.py      flags, solver and net, checks            source.py   DataSource classes
    driver.py      CaffeOnSpark, run(), main()              placement.py ranks and slots
    train_task.py  the training barrier task                infer_task.py features / test
    seam.py        where the ring allreduce (caffeonspark.distributed) plugs in
Tests: tests/spark/.
"""

from caffeonspark.spark.config import Config
from caffeonspark.spark.driver import CaffeOnSpark, TestMetrics
from caffeonspark.spark.source import DataSource

__all__ = ["CaffeOnSpark", "Config", "DataSource", "TestMetrics"]
