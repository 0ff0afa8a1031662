"""Spark ML stages (pyspark.ml): CaffeEstimator, whose fit(df) trains through CaffeOnSpark's
driver, and the CaffeModel Transformer it returns (features vector + prediction columns), both
saved and loaded with their solver, net and weights. pyspark (the `spark` extra) is imported
on first use of a name.

    params.py       the stages' Params and checks     solver_files.py  their solver + net copies
    estimator.py    CaffeEstimator                    model.py         CaffeModel
    persist.py      save / load                       owned.py         a fitted model's folder
Docs: docs/SPARK.md "Spark ML stages". Tests: tests/ml/.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CaffeEstimator", "CaffeModel"]

_HOMES = {
    "CaffeEstimator": "caffeonspark.ml.estimator",
    "CaffeModel": "caffeonspark.ml.model",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'caffeonspark.ml' has no attribute '{name}'")
    return getattr(importlib.import_module(home), name)
