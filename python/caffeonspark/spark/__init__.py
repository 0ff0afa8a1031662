"""CaffeOnSpark's Spark API: Config (the original's flags), DataSource (a net's data layer as
a DataFrame) and CaffeOnSpark (train / test / features / trainWithValidation in barrier
mode). The names load on first use (so `python -m caffeonspark.spark.driver` runs the
driver module once), and pyspark (the `spark` extra) only when Spark work starts.

    config.py      flags, solver and net, checks            source.py   DataSource classes
    driver.py      CaffeOnSpark, run(), main()              placement.py ranks and slots
    train_task.py  the training barrier task                infer_task.py features / test
    seam.py        where the ring allreduce (caffeonspark.distributed) plugs in
    fault.py       retried attempts resume from the snapshot
    console.py     the driver's console: rank logs, progress, RankFailure
    reporter.py    a rank's side of the console; iteration timing
Docs: docs/SPARK.md. Tests: tests/spark/.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CaffeOnSpark", "Config", "DataSource", "TestMetrics", "RankFailure"]

_HOMES = {
    "CaffeOnSpark": "caffeonspark.spark.driver",
    "TestMetrics": "caffeonspark.spark.driver",
    "Config": "caffeonspark.spark.config",
    "DataSource": "caffeonspark.spark.source",
    "RankFailure": "caffeonspark.spark.console",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'caffeonspark.spark' has no attribute '{name}'")
    return getattr(importlib.import_module(home), name)
