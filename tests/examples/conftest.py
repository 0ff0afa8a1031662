"""Fixtures of the example tests (examples/spark/): one local[2] SparkSession for the whole
folder (package scope, tests/spark's settings), the examples importable as modules, one set
of generated digits, the MLlib pipeline run once (its LeNet reused by the other tests), and
the engine's own ip1 / ip2 of the held-out digits as the reference."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = TESTS_DIR.parent / "examples" / "spark"
sys.path.insert(0, str(TESTS_DIR / "spark"))  # spark_util: the Spark tests' session settings
sys.path.insert(0, str(EXAMPLES_DIR))  # the examples import their sibling example_support

from spark_util import local_session, skip_without_spark  # noqa: E402

# The mllib_pipeline defaults: held-out accuracy 0.964 (>= 0.95 asked), LR train 0.980.
N_TRAIN, N_TEST, ITERATIONS = 30000, 2000, 700


def example(name: str) -> ModuleType:
    """examples/spark/<name>.py as a module."""
    return importlib.import_module(name)


@pytest.fixture(scope="package")
def spark():
    skip_without_spark()
    session = local_session("caffeonspark-example-tests", EXAMPLES_DIR)
    yield session
    session.stop()


@pytest.fixture(scope="package")
def digits(tmp_path_factory) -> Path:
    """The folder of mnist_train_lmdb (N_TRAIN digits) and mnist_test_lmdb (N_TEST)."""
    folder = tmp_path_factory.mktemp("digits")
    example("example_support").ensure_digits(folder, N_TRAIN, N_TEST)
    return folder


@pytest.fixture(scope="package")
def pipeline(spark, digits, tmp_path_factory) -> tuple[Any, dict[str, Any]]:
    """mllib_pipeline run once: (its arguments, its result)."""
    mllib = example("mllib_pipeline")
    work = tmp_path_factory.mktemp("mllib")
    args = mllib.parse_args(["--data", str(digits), "--work", str(work),
                             "--iterations", str(ITERATIONS), "--cluster-size", "1"])
    return args, mllib.main(spark, args)


@pytest.fixture(scope="package")
def engine_features(pipeline, digits) -> dict[str, Any]:
    """The TEST net run by the engine on every held-out digit with the pipeline's LeNet:
    {"ids": LMDB keys, "label": labels, "ip1": ..., "ip2": ...} in key order."""
    from caffeonspark import engine
    from caffeonspark.data.sources.lmdb_source import LmdbSource
    from caffeonspark.proto import caffe_pb2
    from caffeonspark.spark import Config

    args, result = pipeline
    conf = Config(["-conf", str(Path(args.work) / "lenet_memory_solver.prototxt")])
    net_param = conf.phase_net(caffe_pb2.TEST)
    layer = next(layer for layer in net_param.layer if layer.type == "MemoryData")
    layer.ClearField("source_class")
    layer.memory_data_param.ClearField("source")
    batch = 500
    layer.memory_data_param.batch_size = batch
    net = engine.Net(net_param, phase=engine.TEST)
    net.copy_from(result["lenet_model"])
    out: dict[str, list] = {"ids": [], "label": [], "ip1": [], "ip2": []}
    try:
        with LmdbSource(digits / "mnist_test_lmdb", chunk_size=batch) as source:
            for chunk in source.epoch(0):
                net.memory_data_feeder(layer.name).push(chunk.data, chunk.labels)
                blobs = net.forward(blobs=["ip1", "ip2"])
                out["ids"] += source.record_keys(chunk.ids)
                out["label"].append(chunk.labels.astype(np.float64))
                out["ip1"].append(np.array(blobs["ip1"]).reshape(batch, -1))
                out["ip2"].append(np.array(blobs["ip2"]).reshape(batch, -1))
    finally:
        net.close()
    reference = {k: v if k == "ids" else np.concatenate(v) for k, v in out.items()}
    assert len(reference["ids"]) == N_TEST
    return reference
