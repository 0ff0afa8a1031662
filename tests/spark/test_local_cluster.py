"""Spark's local-cluster[2,1,1024] master from the pip-installed pyspark (tests/spark/
local_cluster_train.py, in a subprocess: one SparkContext per process, and the other Spark
tests hold a local[2] one): two executors in their own JVMs, their Python workers importing
the installed caffeonspark, train CaffeOnSpark's LeNet (com.yahoo.ml.caffe.LMDB source) with
-clusterSize 2 to the parameters the local launcher gives on the same shards and seed
(data/shard_rule.py). Skipped, with Spark's reason, only where the cluster cannot start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from spark_util import (
    PYTHON_DIR,
    TESTS_DIR,
    assert_same_model,
    lenet_parity_solvers,
    train_with_launcher,
)

from caffeonspark.data.convert_mnist import prepare_mnist_lmdb

N_TRAIN, ITERS = 651, 20


def scratch_spark_home(root) -> str:
    """A Spark home linking the installed pyspark's launch scripts, jars and Python files."""
    pyspark = pytest.importorskip("pyspark", reason="pyspark (the `spark` extra) is not installed")
    installed = os.path.dirname(pyspark.__file__)
    home = root / "spark_home"
    home.mkdir()
    for name in ("bin", "jars", "python", "sbin"):
        if os.path.isdir(os.path.join(installed, name)):
            (home / name).symlink_to(os.path.join(installed, name))
    return str(home)


def test_local_cluster_trains_the_launchers_model(anchors, tmp_path):
    pytest.importorskip("pandas", reason="pyspark's mapInArrow needs pandas")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime for Spark")
    home = scratch_spark_home(tmp_path)
    lmdb = prepare_mnist_lmdb(tmp_path / "digits", n_train=N_TRAIN, n_test=100)
    solvers = lenet_parity_solvers(tmp_path, anchors, "memory", f"file:{lmdb.train}",
                                   f"file:{lmdb.test}", max_iter=ITERS)
    launcher_model, initial = train_with_launcher(solvers, 2)
    model = tmp_path / "cluster.caffemodel"
    env = dict(os.environ, PYTHONPATH=f"{PYTHON_DIR}{os.pathsep}{TESTS_DIR}",
               SPARK_LOCAL_IP="127.0.0.1")
    done = subprocess.run(
        [sys.executable, str(TESTS_DIR / "local_cluster_train.py"), str(solvers.spark),
         str(model), home],
        env=env, capture_output=True, text=True, timeout=400,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result (exit {done.returncode}):\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1])
    if "unavailable" in result:
        pytest.skip(f"local-cluster[2,1,1024] cannot start here: {result['unavailable']}")
    assert "error" not in result, result["error"]
    assert [(s["rank"], s["iter"], s["rows"]) for s in result["summaries"]] == [
        (0, ITERS, N_TRAIN // 2), (1, ITERS, N_TRAIN - N_TRAIN // 2)
    ]
    print(f"local-cluster: executors up after {result['startup_seconds']:.1f} s, "
          f"trained after {result['seconds']:.1f} s")
    assert_same_model(model, launcher_model, initial)
