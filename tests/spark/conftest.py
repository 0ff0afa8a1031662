"""Fixture of the Spark tests: one local[2] SparkSession per module (skipped without pyspark
or Java); its Python workers import the caffeonspark under test and tests/spark."""

from __future__ import annotations

import os
import shutil

import pytest
from spark_util import PYTHON_DIR, TESTS_DIR


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark (the `spark` extra) is not installed")
    pytest.importorskip("pandas", reason="pyspark's mapInArrow needs pandas")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime for Spark")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("caffeonspark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.executorEnv.PYTHONPATH", f"{PYTHON_DIR}{os.pathsep}{TESTS_DIR}")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
