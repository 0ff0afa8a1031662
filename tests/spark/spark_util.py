"""Helpers of the Spark tests (and of tests/examples): the local[2] session they share,
CaffeOnSpark's LeNet nets (shared/anchors/caffeonspark) written next to small generated digit
sets, and the same training for Spark and for the local launcher (test_parity.py,
test_local_cluster.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

import caffeonspark
from caffeonspark import model_io

# Where the caffeonspark under test lives (the checkout's python/ in development, the
# environment's site-packages after `pip install`): Spark's Python workers import it too.
PYTHON_DIR = Path(caffeonspark.__file__).resolve().parents[1]
REPO_DIR = Path(__file__).resolve().parents[2]
TESTS_DIR = Path(__file__).resolve().parent


def skip_without_spark() -> None:
    """Skip the calling test without pyspark, pandas (mapInArrow) or a Java runtime."""
    pytest.importorskip("pyspark", reason="pyspark (the `spark` extra) is not installed")
    pytest.importorskip("pandas", reason="pyspark's mapInArrow needs pandas")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime for Spark")


def local_session(app_name: str, *worker_paths: Path) -> Any:
    """A local[2] SparkSession whose Python workers import the caffeonspark under test and
    the given folders."""
    from pyspark.sql import SparkSession

    python_path = os.pathsep.join(str(p) for p in (PYTHON_DIR, *worker_paths))
    session = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.executorEnv.PYTHONPATH", python_path)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def write_lenet(
    root: Path,
    anchors: Path,
    kind: str,
    train_source: str,
    test_source: str,
    **solver: object,
) -> Path:
    """CaffeOnSpark's lenet_<kind> solver and net in `root`, reading the given sources, on
    the CPU, with solver fields replaced (max_iter=..., display=...); returns the solver."""
    root.mkdir(parents=True, exist_ok=True)
    net = (anchors / "caffeonspark" / f"lenet_{kind}_train_test.prototxt").read_text()
    train_at = net.index('source: "', net.index("phase: TRAIN"))
    test_at = net.index('source: "', net.index("phase: TEST"))
    for at, source in sorted([(test_at, test_source), (train_at, train_source)], reverse=True):
        end = net.index('"', at + len('source: "'))
        net = net[:at] + f'source: "{source}' + net[end:]
    (root / f"lenet_{kind}_train_test.prototxt").write_text(net)
    lines = []
    text = (anchors / "caffeonspark" / f"lenet_{kind}_solver.prototxt").read_text()
    solver = {"solver_mode": "CPU", "random_seed": 7, **solver}
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in solver:
            continue
        lines.append(line)
    for key, value in solver.items():
        lines.append(f"{key}: {value}")
    path = root / "solver.prototxt"
    path.write_text("\n".join(lines) + "\n")
    return path


class ParitySolvers(NamedTuple):
    launcher: Path  # snapshots the final model as <root>/launcher/lenet_iter_<max_iter>
    spark: Path  # no snapshots: -model is the result
    max_iter: int


def lenet_parity_solvers(
    root: Path, anchors: Path, kind: str, train_source: str, test_source: str, max_iter: int
) -> ParitySolvers:
    """CaffeOnSpark's lenet_<kind> (random_seed 7) for the launcher and for Spark: the same
    training; no display, no tests (test_interval past max_iter)."""
    common = {"max_iter": max_iter, "display": 0, "test_interval": 100000,
              "test_initialization": "false"}
    launcher = write_lenet(root / "launcher", anchors, kind, train_source, test_source,
                           snapshot_prefix=f'"{root}/launcher/lenet"', **common)
    spark = write_lenet(root / "spark", anchors, kind, train_source, test_source,
                        snapshot_after_train="false", **common)
    return ParitySolvers(launcher, spark, max_iter)


def train_with_launcher(solvers: ParitySolvers, world_size: int) -> tuple[Path, Path]:
    """(final model, initial weights) of `caffeonspark train -solver S -world_size N` with one
    engine thread per rank; the initial weights are rank 0's, as its solver fills them."""
    from caffeonspark.distributed.launcher import launch
    from caffeonspark.solver import Solver

    initial = solvers.launcher.parent / "initial.caffemodel"
    solver = Solver(str(solvers.launcher))
    solver.net.save(str(initial))
    for net in (solver.net, *solver.test_nets):
        net.close()
    result = launch(str(solvers.launcher), world_size, threads=1, comm_timeout=60.0)
    assert result.returncode == 0, result.first_error
    return solvers.launcher.parent / f"lenet_iter_{solvers.max_iter}.caffemodel", initial


def params(path) -> dict[str, list[np.ndarray]]:
    """Layer name -> its parameter blobs, read from a .caffemodel."""
    net = model_io.read_caffemodel(path)
    return {layer.name: [model_io.blob_to_array(b) for b in layer.blobs]
            for layer in net.layer if layer.blobs}


def assert_same_model(spark_model, launcher_model, initial) -> None:
    # Both paths run the same float32 engine code on the same batches in the same order (one
    # engine thread per rank, the same ring and bucket order): measured bit-identical. The
    # tolerance admits only last-digit rounding (~10 ulps); Spark shuffling its shard as
    # "0 of 1" instead of "r of 2" moved conv1 by 2.5e-3 (30 iterations), and training moved every layer by
    # more than 1e-3 (checked below), so the comparison cannot pass by accident.
    got, want, start = params(spark_model), params(launcher_model), params(initial)
    assert got.keys() == want.keys() == {"conv1", "conv2", "ip1", "ip2"}
    for name in want:
        for g, w, s in zip(got[name], want[name], start[name], strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7, err_msg=name)
            assert np.abs(w - s).max() > 1e-3, f"{name} did not train"
