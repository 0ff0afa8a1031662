"""Fixture of the Spark tests: one local[2] SparkSession per module (skipped without pyspark
or Java); its Python workers import the caffeonspark under test and tests/spark."""

from __future__ import annotations

import pytest
from spark_util import TESTS_DIR, local_session, skip_without_spark


@pytest.fixture(scope="module")
def spark():
    skip_without_spark()
    session = local_session("caffeonspark-tests", TESTS_DIR)
    yield session
    session.stop()
