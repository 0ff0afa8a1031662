"""tests/cluster/ reuses the Spark tests' helpers (tests/spark/spark_util.py: the LeNet
solver files, the pyspark / Java checks)."""

from __future__ import annotations

import sys
from pathlib import Path

SPARK_TESTS = str(Path(__file__).resolve().parents[1] / "spark")
if SPARK_TESTS not in sys.path:
    sys.path.insert(0, SPARK_TESTS)
