"""Fixtures of the Spark ML stage tests: one local[2] SparkSession per module (tests/spark's
settings; skipped without pyspark or Java), small generated digits, the example LeNet
(examples/spark) written next to them, and the digits as image-schema DataFrames."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = TESTS_DIR.parent / "examples" / "spark"
sys.path.insert(0, str(TESTS_DIR / "spark"))  # spark_util: the Spark tests' session settings
sys.path.insert(0, str(EXAMPLES_DIR))  # example_support: the example LeNet

from spark_util import local_session, skip_without_spark  # noqa: E402

N_TRAIN, N_TEST = 1000, 200


class Digits(NamedTuple):
    solver: Path  # the example LeNet reading the two LMDBs
    train_lmdb: Path
    test_lmdb: Path
    train: Any  # DataFrames in the image schema (id, label, ..., data), cached
    test: Any


@pytest.fixture(scope="module")
def spark():
    skip_without_spark()
    session = local_session("caffeonspark-ml-tests", EXAMPLES_DIR)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def digits(spark, tmp_path_factory) -> Digits:
    from example_support import ensure_digits, write_lenet

    from caffeonspark.spark import Config, DataSource

    root = tmp_path_factory.mktemp("ml")
    train_lmdb, test_lmdb = ensure_digits(root / "digits", N_TRAIN, N_TEST)
    solver = write_lenet(root / "lenet", train_lmdb, test_lmdb, display=0, test_interval=100000)
    conf = Config(spark, ["-conf", str(solver), "-clusterSize", "1"])
    train = DataSource.getSource(conf, True).dataframe(spark).cache()
    test = DataSource.getSource(conf, False).dataframe(spark).cache()
    return Digits(solver, train_lmdb, test_lmdb, train, test)
